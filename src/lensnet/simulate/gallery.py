"""Figures of simulated lenses: a gallery of training examples and one lens under each effect.

:func:`draw_gallery` is a grid of observed training images in the manner of Hezaveh et al. 2017,
Extended Data Fig. 1, each panel annotated with its Einstein radius, axis ratio and the effects it
received; :func:`draw_effects` shows one noiseless lens, then the same lens after each observational
effect alone and after all of them (the order of :mod:`lensnet.observe.pipeline`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.io.atomic import check_writable
from lensnet.observe.pipeline import ObservationConfig, observe
from lensnet.plotting import new_figure, save_png
from lensnet.simulate.config import PRESETS, SimulationConfig, get_preset
from lensnet.simulate.dataset import SimulatedDataset, read_dataset
from lensnet.simulate.seeds import batch_seed
from lensnet.simulate.simulator import LensSimulator

__all__ = ["draw_gallery", "draw_effects", "EFFECT_PANELS"]

#: Panels of :func:`draw_effects` after the clean one: (label, effects switched on, coloured noise).
EFFECT_PANELS = (
    ("PSF", ("psf",), False),
    ("Poisson", ("poisson",), False),
    ("Gaussian white", ("gaussian_noise",), False),
    ("Gaussian coloured", ("gaussian_noise",), True),
    ("cosmic rays", ("cosmic_rays",), False),
    ("hot pixels", ("hot_pixels",), False),
    ("bias", ("bias",), False),
    ("masks", ("masks",), False),
    ("all effects", ("psf", "poisson", "gaussian_noise", "cosmic_rays", "hot_pixels", "bias", "masks"), True),
)
_MAX_GALLERY = 100


def draw_gallery(source: LensSimulator | SimulationConfig | SimulatedDataset | str | os.PathLike, num: int = 16,
                 seed: int = 3, output: str | os.PathLike = "gallery.png", device=None) -> Path:
    """Draw ``num`` simulated training images in a grid, annotated, to a PNG.

    From a simulator, config or preset the lenses are simulated as one batch, so they are those of
    ``write_dataset(..., num=num, seed=seed)`` with a batch size of at least ``num``; from a dataset
    (a file written by :func:`~lensnet.simulate.dataset.write_dataset` or one read by
    :func:`~lensnet.simulate.dataset.read_dataset`) they are its first ``num`` lenses.
    Each panel shows the observed image in arc-peak units (for a dataset stored without the
    ``observed`` extra: the network input), first band, on a grey scale from the 0.5 and 99.5
    percentiles of its unmasked pixels; masks outlined in cyan, a 1" bar, the panel number, theta_E,
    q, PSF sigma, noise rms (w: white, c: coloured), the numbers of cosmic rays (CR) and hot pixels
    (HP) and the masked fraction.

    Parameters
    ----------
    source : LensSimulator, SimulationConfig, SimulatedDataset, str or os.PathLike
        What to show: a simulator, a config, a preset name, a dataset or a dataset file.
    num : int
        Number of lenses, 1 to 100 (fewer if the dataset holds fewer) [16].
    seed : int
        Dataset seed when simulating [3]; a dataset keeps its own.
    output : str or os.PathLike
        PNG to write (replaced if it exists) ["gallery.png"].
    device : str or torch.device, optional
        Where to simulate when given a config [cpu].

    Returns
    -------
    Path
        The PNG written.
    """
    if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= _MAX_GALLERY:
        raise LensnetRangeError("num", num, 1, _MAX_GALLERY, "one panel per lens")
    check_writable(output)
    g = _gallery_data(source, num, seed, device)
    num = len(g.images)
    cols = min(num, max(4, math.ceil(math.sqrt(num))), 8)
    rows = math.ceil(num / cols)
    fig = new_figure(2.0 * cols, 2.0 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    half = g.config.n_pix * g.config.pixel_scale / 2
    labels = _gallery_labels(g)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= num:
            continue
        valid = g.images[i][~g.masks[i]]
        lo, hi = np.percentile(valid, [0.5, 99.5]) if valid.size else (0.0, 1.0)
        _show(ax, g.images[i], g.masks[i], half, lo, hi)
        ax.text(0.03, 0.97, f"{i}", transform=ax.transAxes, ha="left", va="top", fontsize=8, color="white",
                fontweight="bold")
        ax.text(0.5, -0.02, labels[i], transform=ax.transAxes, ha="center", va="top", fontsize=5.5,
                linespacing=1.1)
    fig.suptitle(f"lensnet: {num} simulated {g.kind}, preset {g.config.name}, seed {g.seed} "
                 f"({g.config.n_pix}x{g.config.n_pix} px of {g.config.pixel_scale:g}\")", fontsize=9)
    fig.tight_layout(h_pad=1.6, w_pad=0.4)
    return save_png(fig, output, dpi=130)


def draw_effects(simulator_or_config: LensSimulator | SimulationConfig | str, seed: int = 3,
                 output: str | os.PathLike = "gallery_effects.png", device=None) -> Path:
    """Draw one lens noiseless, after each observational effect alone, and after all of them.

    Each panel runs :func:`lensnet.observe.pipeline.observe` on the noiseless image with a
    generator seeded alike and the effects shown switched on with probability 1 (the others off;
    white or coloured noise as labelled). Strengths are drawn from the config's ranges and written
    under each panel; the last panel draws its own (shot noise consumes a number of random draws
    that depends on the image). All panels share one linear grey scale in units of the arc peak;
    masks are outlined in cyan.

    Parameters
    ----------
    simulator_or_config : LensSimulator, SimulationConfig or str
        The simulator, its config or a preset name (the lens comes from its prior and sources).
    seed : int
        Seed of the lens and of the effects [3].
    output : str or os.PathLike
        PNG to write (replaced if it exists) ["gallery_effects.png"].
    device : str or torch.device, optional
        Where to simulate when given a config [cpu].

    Returns
    -------
    Path
        The PNG written.
    """
    check_writable(output)
    simulator = _simulator(simulator_or_config, device)
    config = simulator.config
    batch = simulator.simulate(1, batch_seed(seed, 0))
    clean = batch.clean / batch.clean.amax().clamp_min(1e-12)
    panels = [("noiseless", clean, torch.zeros_like(batch.masks), "")]
    for label, on, colored in EFFECT_PANELS:
        obs_config = _only(config.observation, on, colored)
        gen = torch.Generator(clean.device).manual_seed(int(seed))
        image, masks, record = observe(clean, obs_config, gen, config.pixel_scale)
        panels.append((label, image, masks, _effect_label(on, record, masks)))
    cols = math.ceil(len(panels) / 2)
    fig = new_figure(2.3 * cols + 0.8, 5.4, layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    half = config.n_pix * config.pixel_scale / 2
    for ax, (label, image, masks, detail) in zip(axes.flat, panels):
        ax.axis("off")
        im = _show(ax, image[0, 0].cpu().double().numpy(), masks[0, 0].cpu().numpy(), half, -0.25, 1.1)
        ax.set_title(label, fontsize=9)
        ax.text(0.5, -0.02, detail, transform=ax.transAxes, ha="center", va="top", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    lens = LensParams.from_tensor(batch.targets)
    q = lens.qphi()[0][0].item()
    fig.suptitle(f"lensnet: one lens under each observational effect (preset {config.name}, seed {seed}; "
                 f"θE = {lens.theta_E[0].item():.2f}″, q = {q:.2f}; grey scale in arc-peak units)", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, pad=0.01, label="flux / arc peak")
    return save_png(fig, output, dpi=130)


# -- internals ---------------------------------------------------------------------------------------


def _simulator(obj, device) -> LensSimulator:
    if isinstance(obj, LensSimulator):
        return obj
    config = get_preset(obj) if isinstance(obj, str) else obj
    if not isinstance(config, SimulationConfig):
        raise LensnetValueError("expected a LensSimulator, a SimulationConfig or a preset name, "
                                f"got {type(obj).__name__}")
    return LensSimulator(config, device=device)


@dataclasses.dataclass
class _GalleryData:
    """What a gallery shows, as numpy arrays: images (N, H, W), masks (N, H, W), targets (N, 5),
    record of (N,) arrays."""

    images: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    record: dict
    config: SimulationConfig
    seed: int
    kind: str


def _gallery_data(source, num: int, seed: int, device) -> _GalleryData:
    if isinstance(source, os.PathLike) or (isinstance(source, str) and source not in PRESETS):
        source = read_dataset(source, stop=num)
    if isinstance(source, SimulatedDataset):
        images = source.observed if source.observed is not None else source.images
        kind = "observed images" if source.observed is not None else "network inputs"
        images = (images[:num] if images.ndim == 3 else images[:num, 0]).astype(np.float64)  # first band
        return _GalleryData(images, source.masks[:num], source.targets[:num],
                            {k: v[:num] for k, v in source.record.items()}, source.config, source.seed, kind)
    simulator = _simulator(source, device)
    batch = simulator.simulate(num, batch_seed(seed, 0))
    arrays = {name: getattr(batch, name).detach().cpu().numpy() for name in ("observed", "masks", "targets")}
    return _GalleryData(arrays["observed"][:, 0].astype(np.float64), arrays["masks"][:, 0], arrays["targets"],
                        {k: v.detach().cpu().numpy() for k, v in batch.record.items()}, simulator.config, seed,
                        "training images")


def _only(observation: ObservationConfig, on: tuple[str, ...], colored: bool) -> ObservationConfig:
    """``observation`` with the effects ``on`` applied with probability 1 and every other one off."""
    changes = {}
    for f in dataclasses.fields(observation):
        effect = {"probability": 1.0 if f.name in on else 0.0}
        if f.name == "gaussian_noise":
            effect["colored_probability"] = 1.0 if colored else 0.0
        changes[f.name] = dataclasses.replace(getattr(observation, f.name), **effect)
    return dataclasses.replace(observation, **changes)


def _effect_label(on: tuple[str, ...], record: dict, masks: torch.Tensor) -> str:
    """What the effects of a one-lens panel drew, in a few words."""
    r = {k: v[0].item() for k, v in record.items()}
    parts = {
        "psf": _psf_text(r),
        "poisson": f"{r['poisson_counts']:.0f} counts at peak",
        "gaussian_noise": f"rms {r['noise_rms']:.3f}",
        "cosmic_rays": f"{r['n_cosmic_rays']} ray(s)",
        "hot_pixels": f"{r['n_hot_pixels']} hot px",
        "bias": f"offset {r['bias']:+.3f}",
        "masks": f"{r['n_masks']} disc(s), {masks.float().mean().item():.0%} masked",
    }
    return parts[on[0]] if len(on) == 1 else "all of the above, fresh draws"


def _psf_text(r: dict) -> str:
    if "psf_sigma_pix" in r:
        return f"σ = {r['psf_sigma_pix']:.2f} px"
    if "psf_fwhm_pix" in r:
        return f"FWHM {r['psf_fwhm_pix']:.2f} px, β {r['psf_moffat_beta']:.1f}"
    return f"kernel {r['psf_index']}"


def _gallery_labels(g: _GalleryData) -> list[str]:
    r, t = g.record, g.targets
    q = LensParams.from_tensor(torch.from_numpy(t)).qphi()[0].numpy()
    masked = g.masks.mean(axis=(1, 2))
    labels = []
    for i in range(len(t)):
        psf = _psf_text({k: v[i].item() for k, v in r.items() if k.startswith("psf")})
        psf = psf if r["psf_applied"][i] else "no PSF"
        noise = (f"rms {r['noise_rms'][i]:.3f}{'c' if r['noise_colored'][i] else 'w'}"
                 if r["noise_applied"][i] else "no noise")
        labels.append(f"θE {t[i, 0]:.2f}″  q {q[i]:.2f}  {psf}\n{noise}  CR {int(r['n_cosmic_rays'][i])}  "
                      f"HP {int(r['n_hot_pixels'][i])}  mask {masked[i]:.0%}")
    return labels


def _show(ax, image: np.ndarray, mask: np.ndarray, half: float, lo: float, hi: float):
    extent = (-half, half, -half, half)
    im = ax.imshow(image, origin="lower", extent=extent, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6),
                   interpolation="nearest")
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.6, origin="lower", extent=extent)
    bar = 1.0 if half > 1.25 else 0.5  # arcsec
    x0, y0 = half * 0.9 - bar, -half * 0.88
    ax.plot([x0, x0 + bar], [y0, y0], color="white", lw=1.5)
    ax.text(x0 + bar / 2, y0 + half * 0.04, f"{bar:g}″", color="white", fontsize=6, ha="center", va="bottom")
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    return im
