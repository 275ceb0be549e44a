"""``lensnet demo``: simulated SIE lenses with their critical curves, caustics and cuts.

Draws lenses from the paper's prior (:class:`lensnet.simulate.prior.LensPrior`), places an
elliptical Sérsic source inside the grown caustic or the shrunk cut and keeps only lenses passing
the acceptance cuts (:func:`lensnet.simulate.placement.draw_accepted`), renders them noiselessly at
192 x 192 pixels of 0.04" with 2 x 2 supersampling (Hezaveh et al. 2017), then writes one panel per
lens and prints the parameters.

When trained weights ship with the package (:func:`lensnet.inference.list_pretrained`), the
demo then does the main job: it simulates :data:`DEMO_TEST_LENSES` test lenses with every
observational effect and source galaxies held out of training, estimates their parameters with the
shipped model, prints true and estimated values with 1-sigma uncertainties and the 68% errors beside
the paper's, and writes an estimate-against-truth figure next to the panels
(``<output>_estimates.png``). Then it measures the two real HST lenses that ship as example data
(:data:`REAL_LENSES`, ``lensnet/examples/``): lens light removed by ICA of two filters (SL2S
J0219-0829) or a Sérsic fit (SDSS J2303+1422), the arcs estimated by the network, then the joint model
(lens light, SIE + shear, source) fitted to each image on its own pixels, beside the published models, with
the deblending figures (``<output>_<lens>.png``) and the fits' (``<file>_refined.png``). Runs in about two
minutes on a CPU.
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path

import click
import torch
from matplotlib.colors import PowerNorm

from lensnet.conventions import PARAM_NAMES
from lensnet.deblend.files import critical_map, deblend_fits, deblended_figure, write_deblended
from lensnet.errors import LensnetRangeError
from lensnet.evaluate import evaluate_predictor, model_simulation_config
from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained, load_pretrained, training_images
from lensnet.inference.catalog import most_certain
from lensnet.refine.catalog import refine_fits
from lensnet.refine.model import ModelSpec
from lensnet.io.atomic import check_writable
from lensnet.lensing import PixelGrid, sie_caustic, sie_critical_curve, sie_cut
from lensnet.metrics import format_beside_table1
from lensnet.plotting import new_figure, plot_estimates, save_png
from lensnet.simulate.config import SourceConfig
from lensnet.simulate.placement import REGION_CUT, AcceptedLenses, draw_accepted, placement_regions
from lensnet.simulate.prior import LensPrior
from lensnet.sources.sersic import Sersic, draw_sersic_sources

__all__ = ["REAL_LENSES", "RealLens", "run_demo", "plot_lenses", "parameter_table", "estimate_test_lenses",
           "estimate_table", "measure_real_lenses"]

#: Grid and supersampling of the paper (Hezaveh et al. 2017, Methods).
DEMO_GRID = PixelGrid(n_pix=192, pixel_scale=0.04)
DEMO_SUPERSAMPLE = 2
_REGION_NAMES = ("caustic", "cut")
#: Test lenses the shipped model estimates, and how many of them the demo prints.
DEMO_TEST_LENSES = 64
DEMO_SHOWN = 6
EXAMPLES = Path(str(importlib.resources.files("lensnet") / "examples"))
#: The model the demo fits to the real lenses: SIE + external shear, Sersic lens light, Sersic source.
JOINT_MODEL = ModelSpec(shear=True, lens_light="sersic")


@dataclass(frozen=True)
class RealLens:
    """A real lens of the example data: its files, how its lens light is removed, its published model."""

    name: str
    slug: str
    band1: str
    band2: str | None
    mask: str | None
    theta_E: float
    q: float
    reference: str


#: The example lenses (``lensnet/examples/README.md``) and their published models.
REAL_LENSES = (
    RealLens("SL2S J0219-0829", "sl2sj0219-0829", "sl2sj0219-0829_F475X.fits", "sl2sj0219-0829_F600LP.fits",
             "sl2sj0219-0829_neighbours.fits", 1.285, 0.72, "power-law ellipsoid, Tan et al. 2024"),
    RealLens("SDSS J2303+1422", "sdssj2303+1422", "sdssj2303+1422.fits", None, None, 1.62, 0.61,
             "SIE, Bolton et al. 2008"),
)


def run_demo(num: int = 6, seed: int = 0, output: str | Path = "lensnet_demo.png") -> Path:
    """Simulate ``num`` lenses, write their panels to ``output`` and print their parameters.

    Parameters
    ----------
    num : int
        Number of lenses, 1 to 64 [6].
    seed : int
        Seed of every random draw [0].
    output : str or Path
        PNG to write (replaced if it exists) ["lensnet_demo.png"].

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    LensnetRangeError
        If ``num`` is outside [1, 64].
    """
    if isinstance(num, bool) or int(num) != num or not 1 <= num <= 64:
        raise LensnetRangeError("num", num, 1, 64, "the demo draws one panel per lens")
    output = check_writable(output)
    generator = torch.Generator().manual_seed(int(seed))
    drawn = draw_accepted(int(num), LensPrior(), _sersic_sources, DEMO_GRID, generator,
                          supersample=DEMO_SUPERSAMPLE)
    click.echo(f"Simulated {num} lenses ({DEMO_GRID.n_pix}x{DEMO_GRID.n_pix} pixels of {DEMO_GRID.pixel_scale}\", "
               f"supersampling {DEMO_SUPERSAMPLE}, Sersic sources, seed {seed}, {drawn.rounds} round(s) of "
               "acceptance cuts).")
    click.echo("theta_E, centres and source positions in arcsec; e1 + i e2 = (1-q)/(1+q) exp(2i phi) with phi "
               "counter-clockwise from +x; mu = total magnification.")
    click.echo(parameter_table(drawn))
    path = plot_lenses(drawn, DEMO_GRID, output, title=f"lensnet: simulated SIE lenses (seed {seed})")
    click.echo(f"Wrote {path}")
    if list_pretrained():
        click.echo("")
        estimate_test_lenses(DEMO_TEST_LENSES, seed, path.with_name(f"{path.stem}_estimates.png"))
        click.echo("")
        measure_real_lenses(path.with_suffix(""))
    else:
        click.echo("No trained weights are installed (lensnet/weights/ holds none), so the demo stops before "
                   "estimating parameters; evaluate a training checkpoint with `lensnet evaluate --checkpoint`.")
    return path


def estimate_test_lenses(num: int = DEMO_TEST_LENSES, seed: int = 0,
                         output: str | Path = "lensnet_demo_estimates.png", name: str = DEFAULT_PRETRAINED) -> Path:
    """Estimate the parameters of ``num`` simulated test lenses with a shipped model and report.

    The lenses come from the model's own simulation config, with every observational effect and
    real source galaxies of the held-out ``test`` split. Prints the first :data:`DEMO_SHOWN` lenses'
    true and estimated parameters and the 68% errors over all of them, and writes the
    estimate-against-truth figure.

    Parameters
    ----------
    num : int
        Test lenses [64].
    seed : int
        Seed of the test set [0].
    output : str or Path
        PNG to write (replaced if it exists).
    name : str
        Shipped model [``DEFAULT_PRETRAINED``].

    Returns
    -------
    Path
        The PNG written.
    """
    predictor = load_pretrained(name)
    result = evaluate_predictor(predictor, model_simulation_config(predictor.card), num=num, seed=seed, progress=False)
    card = predictor.card
    click.echo(f"Shipped model {name}: {card['model']['name']} trained on "
               f"{training_images(card):,} simulated lenses. It estimated {num} new test lenses "
               f"(all observational effects, held-out source galaxies, seed {seed}) in {result.inference_s:.2f} s "
               f"on the {result.device.upper()}:")
    click.echo(estimate_table(result.truth, result.mean, result.std, DEMO_SHOWN))
    paper = result.metrics["paper"]
    click.echo(f"\n68% errors over the {num} lenses (paper's convention: eps = (1-q)(cos a, sin a), a = phi + 90 deg), "
               "beside Table 1 of Hezaveh et al. 2017:")
    click.echo(format_beside_table1([(f"{name} (these lenses)", paper["err68"])], paper["prior_err68"]))
    cover = result.metrics["lensnet"]["cover68"]
    click.echo("Fraction of true values inside the predicted 68% intervals: "
               + ", ".join(f"{n} {cover[n]:.2f}" for n in PARAM_NAMES))
    path = plot_estimates(result.truth, result.mean, result.std, output,
                          title=f"lensnet: {name} on {num} simulated test lenses (seed {seed})")
    click.echo(f"Wrote {path}")
    return path


def measure_real_lenses(stem: str | Path, name: str = DEFAULT_PRETRAINED) -> list[dict]:
    """Remove the lens light of the example lenses, estimate them with a shipped model, fit the joint model to
    the images and print both beside the published models; writes ``<stem>_<lens>_arcs.fits`` (with two bands
    also the first band's Sérsic-fit arcs, ``<stem>_<lens>_arcs_sersic.fits``: the network reads the arcs whose θE
    it is surer of), the deblending figure ``<stem>_<lens>.png`` and the fit's ``<file>_refined.png`` beside them.

    Returns the catalogue row of each lens (a dict).
    """
    predictor = load_pretrained(name)
    click.echo("Two real HST lenses (lensnet/examples/): the shipped model on the arcs left by removing the lens "
               "light, then the joint model fitted to each image:")
    rows = []
    for lens in REAL_LENSES:
        deblended = deblend_fits(EXAMPLES / lens.band1, None if lens.band2 is None else EXAMPLES / lens.band2,
                                 method="sersic" if lens.band2 is None else "ica")
        (arcs,) = write_deblended(deblended, f"{stem}_{lens.slug}_arcs.fits", overwrite=True)
        if deblended.alternative is not None:  # ICA's arcs and the Sérsic fit's: the network keeps the surer
            candidates = [arcs, *write_deblended(deblended.alternative, f"{stem}_{lens.slug}_arcs_sersic.fits",
                                                 overwrite=True)]
            mask = None if lens.mask is None else EXAMPLES / lens.mask
            arcs = candidates[most_certain(predictor, candidates, mask=mask)[0]]
        # The network sees the arcs; the joint model (lens light, SIE + shear, source) is fitted to the image.
        table = refine_fits(predictor, [arcs], fit_files=[EXAMPLES / lens.band1], spec=JOINT_MODEL,
                            mask=None if lens.mask is None else EXAMPLES / lens.mask, figures=Path(stem).parent,
                            progress=False)
        row = dict(zip(table.colnames, table[0]))
        rows.append(row)
        figure = deblended_figure(deblended, f"{stem}_{lens.slug}.png",
                                  critical_map(deblended, [row[name] for name in PARAM_NAMES]),
                                  note="critical curve of the network's estimate")
        click.echo(f"  {lens.name}: {deblended.summary}")
        click.echo(f"    network: theta_E = {row['theta_E']:.2f} +- {row['theta_E_sigma']:.2f}\", q = {row['q']:.2f}; "
                   f"joint model: theta_E = {row['theta_E_refined']:.3f} +- {row['theta_E_refined_sigma']:.3f}\", "
                   f"q = {row['q_refined']:.2f}, reduced chi2 {row['reduced_chi2']:.2f}, delta_bic "
                   f"{row['delta_bic']:.0f}; published theta_E = {lens.theta_E}\", q = {lens.q} ({lens.reference})")
        fitted = Path(stem).parent / f"{Path(lens.band1).stem}_refined.png"
        click.echo(f"    wrote {arcs}, {figure} and {fitted}")
    return rows


def estimate_table(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, rows: int = DEMO_SHOWN) -> str:
    """The first ``rows`` lenses: true value and estimate +- 1 sigma of each parameter (all (N, 5))."""
    units = {"theta_E": '"', "center_x": '"', "center_y": '"'}
    head = f"{'#':>3} " + "".join(f"{n + units.get(n, ''):>24s}" for n in PARAM_NAMES)
    sub = "    " + "".join(f"{'true':>8s} {'estimate +- 1sig':>15s}" for _ in PARAM_NAMES)
    lines = [head, sub]
    for i in range(min(rows, truth.shape[0])):
        cells = (f"{truth[i, k].item():8.3f} {mean[i, k].item():7.3f} +-{std[i, k].item():5.3f}"
                 for k in range(len(PARAM_NAMES)))
        lines.append(f"{i:3d} " + "".join(cells))
    return "\n".join(lines)


def parameter_table(drawn: AcceptedLenses) -> str:
    """One line per lens: the five SIE parameters, q, phi (degrees), magnification and source placement."""
    params = drawn.params.to(device="cpu", dtype=torch.float64)
    q, phi = params.qphi()
    head = (f"{'#':>3} " + " ".join(f"{n:>9}" for n in PARAM_NAMES)
            + f" {'q':>6} {'phi_deg':>8} {'mu':>6} {'region':>8} {'src_x':>7} {'src_y':>7}")
    rows = [head]
    for i, values in enumerate(params.to_tensor().tolist()):
        rows.append(f"{i:3d} " + " ".join(f"{v:9.3f}" for v in values)
                    + f" {q[i].item():6.3f} {math.degrees(phi[i].item()):8.1f} {drawn.magnification[i].item():6.2f}"
                    f" {_REGION_NAMES[int(drawn.region[i])]:>8} {drawn.source_x[i].item():7.3f}"
                    f" {drawn.source_y[i].item():7.3f}")
    return "\n".join(rows)


def plot_lenses(drawn: AcceptedLenses, grid: PixelGrid, output: str | Path, title: str = "") -> Path:
    """Write one panel per lens: the image (north up, arcsec axes, square-root stretch) with the
    critical curve (image plane), the caustic, the cut, the placement region and the source
    centre (source plane) overplotted.

    Parameters
    ----------
    drawn : AcceptedLenses
        Lenses and their noiseless images on ``grid``.
    grid : PixelGrid
        Grid of the images.
    output : str or Path
        PNG to write (replaced if it exists).
    title : str
        Figure title [none].

    Returns
    -------
    Path
        The PNG written.
    """
    params = drawn.params.to(device="cpu", dtype=torch.float64)
    curves = {name: [c.numpy() for c in fn(params, 256)]
              for name, fn in (("critical", sie_critical_curve), ("caustic", sie_caustic), ("cut", sie_cut))}
    kx, ky, ux, uy = (v.numpy() for v in placement_regions(params))
    images = drawn.images.detach().cpu().double().numpy()
    n = params.batch_size
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    half = grid.fov / 2
    fig = new_figure(4.0 * cols, 4.1 * rows, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i], origin="lower", extent=(-half, half, -half, half), cmap="magma",
                  norm=PowerNorm(0.5, vmin=0.0, vmax=max(images[i].max(), 1e-12)))
        ax.plot(*_closed(curves["critical"], i), color="white", lw=1.0, label="critical curve (image plane)")
        ax.plot(*_closed(curves["caustic"], i), color="tab:cyan", lw=1.0, label="caustic (source plane)")
        ax.plot(*_closed(curves["cut"], i), color="tab:green", lw=1.0, ls="--", label="cut (source plane)")
        in_cut = int(drawn.region[i]) == REGION_CUT
        ax.plot(*_closed((ux, uy) if in_cut else (kx, ky), i), color="tab:gray", lw=0.8, ls=":",
                label="placement region")
        ax.plot(drawn.source_x[i].item(), drawn.source_y[i].item(), "+", color="tab:red", ms=9, mew=1.5,
                label="source centre")
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        q = params.qphi()[0][i].item()
        ax.set_title(f"#{i}  θE={params.theta_E[i].item():.2f}″  q={q:.2f}  μ={drawn.magnification[i].item():.1f}",
                     fontsize=10)
        ax.tick_params(labelsize=8)
        if i == 0:
            ax.legend(fontsize=8, loc="lower left", framealpha=0.6)
    for ax in axes[-1]:
        ax.set_xlabel("x [arcsec]", fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("y [arcsec]", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    return save_png(fig, output)


def _sersic_sources(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> Sersic:
    """Unit-amplitude Sérsic sources centred on (x, y), shapes uniform in the default source ranges."""
    cfg = SourceConfig()
    return draw_sersic_sources(x, y, generator, cfg.sersic_radius_arcsec, cfg.sersic_index, cfg.sersic_q)


def _closed(curve, i):
    """Vertices of lens ``i`` of a (B, K) polygon, with the first repeated to close it."""
    x, y = curve[0][i], curve[1][i]
    return list(x) + [x[0]], list(y) + [y[0]]
