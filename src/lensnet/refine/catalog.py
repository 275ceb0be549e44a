"""FITS images to a catalogue of network estimates refined by the likelihood fit (``lensnet refine``).

Each file is read and brought to the model's grid as by ``lensnet predict``
(:mod:`lensnet.inference.catalog`); the network's estimate and calibrated 1-sigma start the fit of
:func:`lensnet.refine.refine_lenses` on that same prepared image, with its noise (the sigma-clipped sky
rms on the model's grid, plus the Poisson variance of the counts where a ``gain`` is given), its masks and
a Gaussian PSF of the given FWHM. The catalogue holds the network's columns and, for each SIE parameter,
``<p>_refined`` and ``<p>_refined_sigma`` (Laplace), ``q_refined``, ``phi_refined`` and
``reduced_chi2``. With ``figures``, each lens also gets a figure of the data, the best model and the
residual in sigma (``<figures>/<file stem>_refined.png``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from astropy.table import Table
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pathlib import Path

from lensnet.conventions import PARAM_NAMES, e1e2_to_qphi
from lensnet.deblend.figure import deblend_figure
from lensnet.errors import LensnetValueError
from lensnet.inference.catalog import catalog_table, estimate_items, fits_inputs
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.real import ModelGrid
from lensnet.refine.fit import RESTARTS, refine_lenses
from lensnet.refine.model import ImageData, model_images
from lensnet.refine.pixelated import N_SIDE

__all__ = ["FWHM_PER_SIGMA", "refine_fits"]

#: FWHM of a Gaussian in units of its sigma, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


def refine_fits(predictor, paths: Sequence, psf_fwhm: float, *, gain: float | None = None, prior: bool = True,
                restarts: int = RESTARTS, max_iter: int = 300, source: str = "sersic", n_side: int = N_SIDE,
                batch_size: int = 16, progress: bool = True, figures: str | Path | None = None, **options) -> Table:
    """Network estimates of FITS images refined by the likelihood fit; one catalogue row per file.

    Parameters
    ----------
    predictor : LensPredictor
        The network; its card gives the grid.
    paths : sequence of str or Path
        Files, folders or glob patterns.
    psf_fwhm : float
        FWHM of the (Gaussian) PSF in arcsec.
    gain : float, optional
        Counts per data unit, for the Poisson variance of the sources' counts [None: sky noise only].
    prior : bool
        Use the network's estimate as a Gaussian prior [True]; False: it only starts the fit.
    restarts, max_iter, source, n_side :
        As :func:`lensnet.refine.refine_lenses` [2, 300, "sersic", 16].
    batch_size : int
        Images fitted together [16].
    progress : bool
        Show a progress bar [True].
    figures : str or Path, optional
        Folder for each lens's figure of data, model and residual [None: no figures].
    **options
        ``hdu``, ``pixel_scale``, ``center``, ``sky_center``, ``mask``, ``cosmic_rays`` as in
        :func:`lensnet.inference.catalog.predict_fits`.

    Raises
    ------
    LensnetValueError
        If ``psf_fwhm`` or ``gain`` is not positive, or the model predicts no uncertainty to use as a prior.
    """
    if not (math.isfinite(psf_fwhm) and psf_fwhm > 0):
        raise LensnetValueError(f"psf_fwhm = {psf_fwhm!r}: the fit needs the PSF's FWHM in arcsec, > 0")
    if gain is not None and not (math.isfinite(gain) and gain > 0):
        raise LensnetValueError(f"gain = {gain!r}: expected counts per data unit, > 0")
    if prior and not predictor.predicts_variance:
        raise LensnetValueError("this model predicts no per-lens uncertainty to serve as a prior: use prior=False")
    dataset = fits_inputs(predictor, paths, **options)
    model_grid = ModelGrid.from_card(predictor.card)
    grid = PixelGrid(model_grid.n_pix, model_grid.pixel_scale)
    rows, refined = [], {}
    with tqdm(total=len(dataset), unit="file", desc="estimating and fitting", disable=not progress) as bar:
        for items in DataLoader(dataset, batch_size=int(batch_size), num_workers=0, collate_fn=list):
            batch_rows = estimate_items(predictor, items)
            rows += batch_rows
            good = [(item, row) for item, row in zip(items, batch_rows) if item[1] is not None]
            if good:
                refined.update(_fit(good, grid, psf_fwhm, gain, prior, restarts, max_iter, source, n_side, figures))
            bar.update(len(items))
    table = catalog_table(rows, predictor.card)  # rows in the order of their index
    index = sorted(r["index"] for r in rows)
    for k, name in enumerate(PARAM_NAMES):
        for suffix, column in (("_refined", 0), ("_refined_sigma", 1)):
            table[f"{name}{suffix}"] = [refined[i][column][k] if i in refined else math.nan for i in index]
            table[f"{name}{suffix}"].unit = table[name].unit
    e1 = torch.tensor(np.asarray(table["e1_refined"], dtype=float))
    e2 = torch.tensor(np.asarray(table["e2_refined"], dtype=float))
    q, phi = e1e2_to_qphi(e1, e2)
    table["q_refined"] = q.numpy()
    table["phi_refined"] = np.degrees(phi.numpy())
    table["phi_refined"].unit = "deg"
    table["reduced_chi2"] = [refined[i][2] if i in refined else math.nan for i in index]
    described = "elliptical Sersic source" if source == "sersic" else f"{n_side}x{n_side} pixelated source"
    table.meta["refine"] = (f"SIE + {described} likelihood fit (lensnet.refine), Gaussian PSF of FWHM "
                            f"{psf_fwhm}\"; {'network prior' if prior else 'no prior'}, {restarts} start(s)")
    return table


def _fit(good, grid: PixelGrid, psf_fwhm: float, gain, prior: bool, restarts: int, max_iter: int, source: str,
         n_side: int, figures: str | Path | None) -> dict:
    """{file index: (refined (5,), sigma (5,), reduced chi^2)} of the usable items of one batch."""
    images = torch.stack([item[1][0] for item, _ in good]).double()
    masks = torch.stack([item[2][0] for item, _ in good])
    rms = torch.tensor([item[3]["grid_noise_rms"] for item, _ in good], dtype=torch.float64)
    if not (torch.isfinite(rms).all() and (rms > 0).all()):
        raise LensnetValueError("a file has no usable noise estimate (a constant or empty sky): the fit needs one")
    variance = rms[:, None, None] ** 2 + (images.clamp_min(0.0) / gain if gain else torch.zeros_like(images))
    sigma_pix = torch.full((len(good),), psf_fwhm / FWHM_PER_SIGMA / grid.pixel_scale, dtype=torch.float64)
    psf = gaussian_kernels(sigma_pix, max(1, math.ceil(4 * float(sigma_pix[0]))))
    data = ImageData(images, variance.sqrt(), masks, psf, grid)
    start = torch.tensor([[row[n] for n in PARAM_NAMES] for _, row in good], dtype=torch.float64)
    spread = torch.tensor([[row[f"{n}_sigma"] for n in PARAM_NAMES] for _, row in good], dtype=torch.float64)
    result = refine_lenses(data, start, spread, prior=prior, restarts=restarts, max_iter=max_iter, source=source,
                           n_side=n_side)
    if figures is not None:
        Path(figures).mkdir(parents=True, exist_ok=True)
        if result.pixelated is None:
            with torch.no_grad():
                model, _, _ = model_images(result.params, data)
            fitted, label = ~data.mask, "SIE + Sersic model"
        else:
            model, fitted, label = result.pixelated.inversion.model, result.pixelated.region, "SIE + pixelated source"
        for i, (_, row) in enumerate(good):
            residual = torch.where(fitted[i], (data.image[i] - model[i]) / data.sigma[i], 0.0).numpy()
            panels = [("data", data.image[i].numpy()), (label, model[i].numpy()), ("residual / sigma", residual)]
            if result.pixelated is not None:
                (cx, cy), half = result.pixelated.grid.center[i].tolist(), float(result.pixelated.grid.half_width[i])
                panels.append(("source plane", result.pixelated.inversion.source[i].numpy(),
                               (cx - half, cx + half, cy - half, cy + half)))
            title = (f"{Path(row['file']).name}: theta_E = {float(result.lens[i, 0]):.3f}\", reduced chi2 "
                     f"{float(result.reduced_chi2[i]):.2f}")
            deblend_figure(panels, grid.pixel_scale, Path(figures) / f"{Path(row['file']).stem}_refined.png",
                           title=title, mask=data.mask[i].numpy(), residuals=("residual / sigma",))
    return {row["index"]: (result.lens[i].tolist(), result.lens_sigma[i].tolist(), float(result.reduced_chi2[i]))
            for i, (_, row) in enumerate(good)}
