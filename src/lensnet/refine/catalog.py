"""FITS images to a catalogue of network estimates refined by the likelihood fit (``lensnet refine``).

Each file is read and brought to the model's grid as by ``lensnet predict``
(:mod:`lensnet.inference.catalog`) for the network. The fit then works on the image's own pixels
(:func:`lensnet.preprocess.native.read_native`): a square cutout of ``fit_size`` arcsec around the same
centre, with the noise and PSF the file carries (a 1-sigma or weight map, a PSF HDU or file; else the sky
rms plus Poisson noise from the gain or EXPTIME, and a Gaussian of the given FWHM), its masks, and the
network's estimate as the start and, its 1-sigma widened :data:`PRIOR_WIDTH` times, the prior. Files of the
same pixel grid are fitted together.

The catalogue holds the network's columns and, for each fitted parameter ``<p>`` (the model's
:attr:`~lensnet.refine.model.ModelSpec.names`), ``<p>_refined``, ``<p>_refined_sigma`` and the 95% interval
``<p>_refined_lo95``, ``<p>_refined_hi95`` (Laplace: -+ 1.96 sigma; MCMC: the posterior's median, half its
68% width and its 2.5th and 97.5th percentiles; :data:`SYSTEMATIC_FLOOR` added in quadrature), and
``<p>_refined_sigma_stat``, the noise's part alone; ``q_refined``, ``phi_refined`` (degrees from +x),
``pa_refined`` (east of north, 0-180 degrees) and ``ra_refined``, ``dec_refined`` (from the WCS), with a
shear ``gamma_ext`` and ``phi_ext``, with lens light per component ``lightK_q``, ``lightK_phi`` and
``lightK_flux`` (the Sérsic's total flux, data units); ``chi2``, ``reduced_chi2``, ``delta_bic`` and
``lensed`` (:func:`lensnet.refine.fit.delta_bic`; NaN and False for the pixelated source), ``n_fit_pixels``,
``noise_source``, ``psf_source`` and ``refine_seconds``. A file that cannot be fitted (no PSF, say) keeps its
network columns and gets the reason in ``error``. With ``figures``, each lens also gets a figure of the data,
the best model and the residual in sigma (``<figures>/<fitted file's stem>_refined.png``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from astropy.table import Table

from lensnet.conventions import PARAM_NAMES, e1e2_to_qphi
from lensnet.deblend.figure import deblend_figure
from lensnet.errors import LensnetError, LensnetValueError
from lensnet.inference.catalog import (Z95, catalog_table, check_batching, estimate_items, fits_inputs, run_batches,
                                      run_identity)
from lensnet.io.atomic import output_folder
from lensnet.lensing import PixelGrid
from lensnet.lensing.shear import shear_cartesian_to_polar
from lensnet.preprocess.native import read_native
from lensnet.preprocess.real import ModelGrid, pixel_to_sky
from lensnet.refine.fit import LENSED_DELTA_BIC, RESTARTS, delta_bic, refine_lenses
from lensnet.refine.model import SIE_SERSIC, ImageData, ModelSpec, model_images
from lensnet.refine.pixelated import N_SIDE
from lensnet.refine.posterior import sample_posterior
from lensnet.sources.sersic import sersic_total_flux

__all__ = ["POSTERIORS", "PRIOR_WIDTH", "SYSTEMATIC_FLOOR", "BatchRefiner", "refine_fits"]

#: The fit's Gaussian prior is the network's estimate with its calibrated 1-sigma times this: the calibration
#: holds on the training distribution, and real images are off it (on lenstronomy-simulated lenses at 0.05"
#: with lens light, its 68% intervals held 31% of the theta_E truths). Measured on 48 such lenses
#: (benchmarks/bench_joint.py): with the 1-sigma as it is the joint fit's 68% intervals held 38-50% of the
#: truths; three times wider, 56-67%, as without a prior, and its errors were as small.
PRIOR_WIDTH = 3.0
#: A systematic error added in quadrature to the refined 1-sigma of these parameters (arcsec for theta_E and the
#: centre): the Sersic source, the lens light's profile and the search leave errors the noise does not explain.
#: Measured on lenstronomy-simulated lenses with real galaxies as sources (benchmarks/bench_joint.py --source
#: real, 48 lenses): the floor that brings the 95% intervals to cover 90% of them (theta_E 0.0121", e1 0.045,
#: e2 0.043, x 0.028", y 0.052", gamma1 0.024, gamma2 0.024; with adaptive supersampling and the two-start joint
#: stage theta_E 0.0079", e1 0.047, e2 0.041, x 0.029", y 0.047", gamma1 0.019, gamma2 0.029), the larger of
#: the two, rounded up and made the same for both components.
SYSTEMATIC_FLOOR = {"theta_E": 0.013, "e1": 0.048, "e2": 0.048, "center_x": 0.053, "center_y": 0.053,
                    "gamma1": 0.03, "gamma2": 0.03}

#: How the refined uncertainties are computed: the Laplace approximation at the optimum (fast), or the
#: posterior sampled by MCMC (:func:`lensnet.refine.posterior.sample_posterior`; tens of seconds per lens).
POSTERIORS = ("laplace", "mcmc")


def refine_fits(predictor, paths: Sequence, *, psf: str | None = None, psf_fwhm: float | None = None,
                noise: str | None = None, weight: str | None = None, gain: float | None = None,
                spec: ModelSpec = SIE_SERSIC, fit_size: float | None = None, prior: bool = True,
                restarts: int = RESTARTS, max_iter: int = 300, source: str = "sersic", n_side: int = N_SIDE,
                posterior: str = "laplace", systematic_floor: bool = True, fit_files: Sequence | None = None,
                fit_hdu: int | str | None = None,
                batch_size: int = 16, progress: bool = True, figures: str | Path | None = None,
                partial: str | Path | None = None, resume: bool = False, overwrite: bool = False, **options) -> Table:
    """Network estimates of FITS images refined by the likelihood fit; one catalogue row per file.

    Parameters
    ----------
    predictor : LensPredictor
        The network; its card gives the grid of its input.
    paths : sequence of str or Path
        Files, folders or glob patterns.
    psf : str, optional
        PSF image "FILE" or "FILE:HDU" for every file [a PSF HDU of each file, else ``psf_fwhm``].
    psf_fwhm : float, optional
        FWHM in arcsec of a Gaussian PSF, for files with no PSF of their own.
    noise, weight : str, optional
        1-sigma or inverse-variance map: an HDU of each file, "FILE" or "FILE:HDU" [HDUs found by name,
        else the sky rms plus Poisson noise].
    gain : float, optional
        Counts per data unit, for the Poisson noise of the sources when no noise map is given [EXPTIME
        from the header, for data in counts per second].
    spec : ModelSpec
        The model fitted [SIE + Sérsic source].
    fit_size : float, optional
        Side of the fitted cutout in arcsec [the network's field].
    prior : bool
        Use the network's estimate as a Gaussian prior, its 1-sigma widened :data:`PRIOR_WIDTH` times [True];
        False: it only starts the fit.
    restarts, max_iter, source, n_side :
        As :func:`lensnet.refine.refine_lenses` [8, 300, "sersic", 16].
    posterior : str
        One of :data:`POSTERIORS` ["laplace"]; with "mcmc" the refined values are the posterior medians and
        the intervals its percentiles (the pixelated source keeps Laplace errors).
    systematic_floor : bool
        Add :data:`SYSTEMATIC_FLOOR` in quadrature to the refined 1-sigma and 95% intervals [True]; the noise's
        part alone is in ``<p>_refined_sigma_stat`` either way.
    fit_files : sequence, optional
        The file the fit reads for each file of ``paths``, on the same pixel grid (the image with its lens light,
        when the network is given the arcs left by ``lensnet deblend``) [the files themselves].
    fit_hdu : int or str, optional
        The image HDU of ``fit_files`` [the ``hdu`` option].
    batch_size : int
        Images estimated together [16]; those sharing a pixel grid are fitted together.
    progress : bool
        Show a progress bar [True].
    figures : str or Path, optional
        Folder for each lens's figure of data, model and residual [None: no figures].
    partial, resume, overwrite :
        The partial catalogue each finished batch is appended to, and whether to continue or replace it, as in
        :func:`lensnet.inference.catalog.predict_fits` [none].
    **options
        ``hdu``, ``pixel_scale``, ``center``, ``sky_center``, ``mask``, ``cosmic_rays`` as in
        :func:`lensnet.inference.catalog.predict_fits`.

    Raises
    ------
    LensnetValueError
        If ``psf_fwhm``, ``gain`` or ``fit_size`` is not positive, ``batch_size``, ``restarts`` or ``max_iter``
        not a positive integer, or the model predicts no uncertainty to use as a prior.
    LensnetIOError
        If the ``figures`` folder cannot be created or written.
    LensnetInterrupted
        On SIGINT or SIGTERM, after the batch in flight (kept in ``partial``).
    """
    if posterior not in POSTERIORS:
        raise LensnetValueError(f"posterior = {posterior!r}: expected one of {', '.join(POSTERIORS)}")
    for name, value in (("psf_fwhm", psf_fwhm), ("gain", gain), ("fit_size", fit_size)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise LensnetValueError(f"{name} = {value!r}: expected a positive number")
    if prior and not predictor.predicts_variance:
        raise LensnetValueError("this model predicts no per-lens uncertainty to serve as a prior: use --no-prior (prior=False)")
    if figures is not None:
        output_folder(figures)
    check_batching(batch_size, 0)
    for name, value in (("restarts", restarts), ("max_iter", max_iter)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LensnetValueError(f"{name} = {value!r} (--{name.replace('_', '-')}): expected an integer >= 1")
    dataset = fits_inputs(predictor, paths, **options)
    refiner = BatchRefiner(predictor, dataset, psf=psf, psf_fwhm=psf_fwhm, noise=noise, weight=weight, gain=gain,
                           spec=spec, fit_size=fit_size, prior=prior, restarts=restarts, max_iter=max_iter,
                           source=source, n_side=n_side, posterior=posterior, systematic_floor=systematic_floor,
                           fit_files=fit_files, fit_hdu=fit_hdu, figures=figures)
    identity = run_identity("refine", predictor, dataset, mask=options.get("mask"), batch_size=batch_size,
                            **refiner.identity())
    records = run_batches(dataset, refiner, partial, identity, resume=resume, overwrite=overwrite,
                          batch_size=batch_size, num_workers=0, progress=progress, desc="estimating and fitting")
    return refiner.table(records)


class BatchRefiner:
    """A batch of :class:`~lensnet.inference.catalog.FitsInputs` items to records ``{"index", "row", "refined"}``:
    the network's row and the refined columns of each file (None where there is no fit); :meth:`table` turns
    the records of every file into the catalogue. Arguments as :func:`refine_fits`."""

    def __init__(self, predictor, dataset, *, psf=None, psf_fwhm=None, noise=None, weight=None, gain=None,
                 spec: ModelSpec = SIE_SERSIC, fit_size=None, prior=True, restarts=RESTARTS, max_iter=300,
                 source="sersic", n_side=N_SIDE, posterior="laplace", systematic_floor=True, fit_files=None,
                 fit_hdu=None, figures=None):
        if fit_files is not None and len(fit_files) != len(dataset):
            raise LensnetValueError(f"{len(fit_files)} file(s) to fit for {len(dataset)} input(s): give one per input")
        model_grid = ModelGrid.from_card(predictor.card)
        self.predictor, self.dataset, self.figures = predictor, dataset, figures
        self.fit_files, self.fit_hdu = fit_files, fit_hdu
        self.side = fit_size or model_grid.n_pix * model_grid.pixel_scale
        self.native = dict(noise=noise, weight=weight, psf=psf, psf_fwhm=psf_fwhm, gain=gain,
                           pixel_scale=dataset.pixel_scale, mask=dataset.mask, cosmic_rays=dataset.cosmic_rays,
                           neighbours=not dataset.keep_neighbours)
        self.fit = dict(spec=spec, prior=prior, restarts=restarts, max_iter=max_iter, source=source, n_side=n_side,
                        posterior=posterior, systematic_floor=systematic_floor)

    def identity(self) -> dict:
        """The fit's settings, for :func:`~lensnet.inference.catalog.run_identity`."""
        spec = self.fit["spec"]
        native = {k: v for k, v in self.native.items() if k in ("noise", "weight", "psf", "psf_fwhm", "gain")}
        return {**native, **{k: v for k, v in self.fit.items() if k != "spec"}, "side": self.side,
                "mass": spec.mass, "shear": spec.shear, "lens_light": spec.lens_light,
                "fit_files": None if self.fit_files is None else [str(f) for f in self.fit_files],
                "fit_hdu": self.fit_hdu}

    def __call__(self, items: list) -> list[dict]:
        batch_rows = estimate_items(self.predictor, items)
        cutouts = []
        for item, row in zip(items, batch_rows):
            if item[1] is None:
                continue
            try:
                cutouts.append((row, *self._cutouts(item[0], row["file"], item[3]["prepared"].center_pixel),
                                item[3]["prepared"]))
            except LensnetError as exc:
                row["error"] = f"refine: {exc}"
        refined = {}
        for group in _by_grid(cutouts):
            refined.update(_fit(group, self.fit, self.figures))
        return [{"index": row["index"], "row": row, "refined": refined.get(row["index"])} for row in batch_rows]

    def _cutouts(self, index: int, file: str, center):
        """The native cutout the fit reads, and the deblended arcs the network saw (None without ``fit_files``)."""
        dataset, side = self.dataset, self.side
        if self.fit_files is None:
            return read_native(file, hdu=dataset.hdu, side_arcsec=side, center=center, plane=dataset.plane,
                               **self.native), None
        cutout = read_native(self.fit_files[index], hdu=self.fit_hdu, side_arcsec=side, center=center, **self.native)
        # Only the deblended pixels and mask are used: a placeholder PSF for files without one.
        arcs = read_native(file, hdu=dataset.hdu, side_arcsec=side, center=center,
                           **{**self.native, "psf": None, "psf_fwhm": 1.0})
        return cutout, arcs

    def table(self, records: list[dict]) -> Table:
        """The catalogue of the records of every file (module docstring)."""
        spec, fit = self.fit["spec"], self.fit
        table = catalog_table([r["row"] for r in records], self.predictor.card)  # rows in the order of their index
        _add_columns(table, sorted(r["index"] for r in records),
                     {r["index"]: r["refined"] for r in records if r["refined"] is not None}, spec)
        described = spec.describe() if fit["source"] == "sersic" else spec.describe().replace(
            "Sersic source", f"{fit['n_side']}x{fit['n_side']} pixelated source")
        table.meta["refine"] = (f"{described}: likelihood fit on each image's own pixels ({self.side:.2f}\" cutouts; "
                                f"lensnet.refine), {'network prior' if fit['prior'] else 'no prior'}, "
                                f"{fit['restarts']} start(s)")
        return table


def _by_grid(cutouts: list[tuple]) -> list[list[tuple]]:
    """The (row, cutout, arcs, prepared) of each file grouped by pixel grid (side and scale): each group is one
    batch of the fit."""
    groups: dict[tuple[int, float], list] = {}
    for item in cutouts:
        groups.setdefault((item[1].image.shape[0], round(item[1].pixel_scale, 9)), []).append(item)
    return list(groups.values())


def _fit(group: list[tuple], fit: dict, figures) -> dict:
    """{file index: refined columns} of the cutouts of one pixel grid (with the deblended arcs the network saw,
    when the fit reads another file)."""
    t0 = time.perf_counter()
    cutouts = [item[1] for item in group]
    grid = PixelGrid(cutouts[0].image.shape[0], cutouts[0].pixel_scale)
    k = max(c.psf.shape[0] for c in cutouts)
    psf = torch.stack([torch.from_numpy(np.pad(c.psf, (k - c.psf.shape[0]) // 2)) for c in cutouts]).double()
    data = ImageData(torch.stack([torch.from_numpy(c.image) for c in cutouts]).double(),
                     torch.stack([torch.from_numpy(c.sigma) for c in cutouts]).double(),
                     torch.stack([torch.from_numpy(c.mask) for c in cutouts]), psf, grid)
    # The network's centre is relative to the requested centre; the cutout's grid to its central pixel.
    offset = torch.tensor([c.offset for c in cutouts], dtype=torch.float64)
    arcs = None
    if group[0][2] is not None:
        deblended = [item[2] for item in group]
        arcs = ImageData(torch.stack([torch.from_numpy(a.image) for a in deblended]).double(), data.sigma,
                         data.mask | torch.stack([torch.from_numpy(a.mask) for a in deblended]), psf, grid)
    start = torch.tensor([[item[0][n] for n in PARAM_NAMES] for item in group], dtype=torch.float64)
    start[:, 3:5] -= offset
    spread = PRIOR_WIDTH * torch.tensor([[item[0][f"{n}_sigma"] for n in PARAM_NAMES] for item in group],
                                        dtype=torch.float64)
    spec = fit["spec"]
    result = refine_lenses(data, start, spread, arcs=arcs,
                           **{k: v for k, v in fit.items() if k not in ("posterior", "systematic_floor")})
    value, sigma = result.params.clone(), result.sigma
    lo95, hi95 = value - Z95 * sigma, value + Z95 * sigma
    if fit["posterior"] == "mcmc" and result.pixelated is None:
        final = result.fitted(data)
        posterior = sample_posterior(spec, final, result.params, result.covariance,
                                     prior=result.prior)
        value, sigma, lo95, hi95 = posterior.median, posterior.sigma, posterior.lo95, posterior.hi95
    statistical = sigma.clone()
    if fit["systematic_floor"]:
        sigma, lo95, hi95 = _with_floor(spec, value, sigma, lo95, hi95)
    # The unlensed comparison fit gets no more iterations than the lensed one was given.
    bic = (delta_bic(data, result, max_iter=min(fit["max_iter"], 200))[0] if result.pixelated is None
              else torch.full((len(group),), math.nan, dtype=torch.float64))
    for name in ("center_x", "center_y", "source_center_x", "source_center_y", "light_center_x", "light_center_y"):
        if name in spec.names:
            shift = offset[:, int(name.endswith("_y"))]
            for column in (value, lo95, hi95):
                column[:, spec.index(name)] += shift
    seconds = (time.perf_counter() - t0) / len(group)
    if figures is not None:
        _figures(group, data, result, figures)
    out = {}
    for i, (row, cutout, _, prepared) in enumerate(group):
        columns = {name: tuple(float(c[i, j]) for c in (value, sigma, lo95, hi95, statistical))
                   for j, name in enumerate(spec.names)}
        for k in range(spec.n_light):
            r, n = columns[f"light{k + 1}_R_sersic"][0], columns[f"light{k + 1}_n_sersic"][0]
            flux = sersic_total_flux(result.amplitude[i, int(spec.source) + k], torch.tensor(r, dtype=torch.float64),
                                     torch.tensor(n, dtype=torch.float64))
            columns[f"light{k + 1}_flux"] = (float(flux), math.nan, math.nan, math.nan, math.nan)
        _, phi = e1e2_to_qphi(torch.tensor(columns["e1"][0]), torch.tensor(columns["e2"][0]))
        sky = prepared.sky_position(columns["center_x"][0], columns["center_y"][0])
        out[row["index"]] = dict(columns=columns, pa_refined=prepared.position_angle(math.degrees(float(phi))),
                                 ra_refined=sky[0] if sky else math.nan, dec_refined=sky[1] if sky else math.nan,
                                 chi2=float(result.chi2[i]), reduced_chi2=float(result.reduced_chi2[i]),
                                 delta_bic=float(bic[i]), n_fit_pixels=int((~result.mask[i]).sum()),
                                 noise_source=cutout.noise_source, psf_source=cutout.psf_source, seconds=seconds)
    return out


def _add_columns(table: Table, index: list[int], refined: dict, spec: ModelSpec) -> None:
    """The refined columns of the module docstring, NaN for files without a fit."""
    def column(name: str, part: int):
        return [refined[i]["columns"][name][part] if i in refined else math.nan for i in index]

    units = {"theta_E": "arcsec", "center_x": "arcsec", "center_y": "arcsec"}
    for name in spec.names:
        unit = units.get(name) or ("arcsec" if name.endswith(("_center_x", "_center_y", "R_sersic")) else None)
        for suffix, part in (("_refined", 0), ("_refined_sigma", 1), ("_refined_lo95", 2), ("_refined_hi95", 3),
                             ("_refined_sigma_stat", 4)):
            table[f"{name}{suffix}"] = column(name, part)
            table[f"{name}{suffix}"].unit = unit
    q, phi = _qphi(table["e1_refined"], table["e2_refined"])
    table["q_refined"], table["phi_refined"] = q, phi
    table["phi_refined"].unit = "deg"
    for name in ("pa_refined", "ra_refined", "dec_refined"):
        table[name] = [refined[i][name] if i in refined else math.nan for i in index]
        table[name].unit = "deg"
    if spec.shear:
        strength, angle = shear_cartesian_to_polar(torch.tensor(np.asarray(table["gamma1_refined"], dtype=float)),
                                                   torch.tensor(np.asarray(table["gamma2_refined"], dtype=float)))
        table["gamma_ext"], table["phi_ext"] = strength.numpy(), np.degrees(angle.numpy())
        table["phi_ext"].unit = "deg"
    for k in range(1, spec.n_light + 1):
        q, phi = _qphi(table[f"light{k}_e1_refined"], table[f"light{k}_e2_refined"])
        table[f"light{k}_q"], table[f"light{k}_phi"] = q, phi
        table[f"light{k}_phi"].unit = "deg"
        table[f"light{k}_flux"] = column(f"light{k}_flux", 0)
    for name, empty in (("chi2", math.nan), ("reduced_chi2", math.nan), ("delta_bic", math.nan), ("n_fit_pixels", -1),
                        ("noise_source", ""),
                        ("psf_source", ""), ("seconds", math.nan)):
        table["refine_seconds" if name == "seconds" else name] = [refined[i][name] if i in refined else empty
                                                                 for i in index]
    table["refine_seconds"].unit = "s"
    table["lensed"] = np.asarray(table["delta_bic"]) > LENSED_DELTA_BIC


def _with_floor(spec: ModelSpec, value, sigma, lo95, hi95):
    """1-sigma and 95% bounds (B, P) with :data:`SYSTEMATIC_FLOOR` added in quadrature where it applies."""
    floor = torch.tensor([SYSTEMATIC_FLOOR.get(name, 0.0) for name in spec.names], dtype=sigma.dtype)
    below, above = (value - lo95) ** 2 + (Z95 * floor) ** 2, (hi95 - value) ** 2 + (Z95 * floor) ** 2
    return (sigma ** 2 + floor ** 2).sqrt(), value - below.sqrt(), value + above.sqrt()


def _qphi(e1, e2) -> tuple[np.ndarray, np.ndarray]:
    q, phi = e1e2_to_qphi(torch.tensor(np.asarray(e1, dtype=float)), torch.tensor(np.asarray(e2, dtype=float)))
    return q.numpy(), np.degrees(phi.numpy())


def _figures(group, data: ImageData, result, figures) -> None:
    """Data, model and residual (and the source plane of a pixelated fit) of each lens of a group."""
    if result.pixelated is None:
        with torch.no_grad():
            model, _, _ = model_images(result.params, result.fitted(data), 1, result.spec)
        fitted, label = ~result.mask, "model"
    else:
        model, fitted, label = result.pixelated.inversion.model, result.pixelated.region, "SIE + pixelated source"
    for i, (row, cutout, _, _) in enumerate(group):
        fitted_file = Path(cutout.where.rsplit("[", 1)[0])
        residual = torch.where(fitted[i], (data.image[i] - model[i]) / data.sigma[i], 0.0).numpy()
        panels = [("data", data.image[i].numpy()), (label, model[i].numpy()), ("residual / sigma", residual)]
        if result.pixelated is not None:
            (cx, cy), half = result.pixelated.grid.center[i].tolist(), float(result.pixelated.grid.half_width[i])
            panels.append(("source plane", result.pixelated.inversion.source[i].numpy(),
                           (cx - half, cx + half, cy - half, cy + half)))
        title = (f"{fitted_file.name}: theta_E = {float(result.lens[i, 0]):.3f}\", reduced chi2 "
                 f"{float(result.reduced_chi2[i]):.2f} ({result.spec.describe()})")
        deblend_figure(panels, data.grid.pixel_scale, Path(figures) / f"{fitted_file.stem}_refined.png",
                       title=title, mask=result.mask[i].numpy(), residuals=("residual / sigma",),
                       critical=_jacobian_determinant(result.spec, result.params[i:i + 1], data.grid),
                       pixel_to_sky=pixel_to_sky(cutout.wcs), unit=f"{cutout.unit} per pixel".strip())


def _jacobian_determinant(spec: ModelSpec, params: torch.Tensor, grid: PixelGrid) -> np.ndarray:
    """det A = det(d beta / d theta) of the fitted mass over the image, on 2 x 2 sub-pixels: its zero line is
    the critical curve."""
    x, y = grid.coordinates(2, dtype=torch.float64)
    with torch.no_grad():
        bx, by = spec.trace(params.double(), x, y, grid.pixel_scale)
    step = grid.pixel_scale / 2
    dbx_dy, dbx_dx = torch.gradient(bx[0], spacing=step)
    dby_dy, dby_dx = torch.gradient(by[0], spacing=step)
    return (dbx_dx * dby_dy - dbx_dy * dby_dx).numpy()
