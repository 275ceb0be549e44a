"""Lens light removed from one band: an elliptical Sérsic profile fitted to the lens galaxy, arcs masked.

The model is a PSF-convolved elliptical Sérsic (:func:`lensnet.sources.sersic.sersic_profile`, the same
profile as lenstronomy's ``SERSIC_ELLIPSE``) plus a constant sky, fitted by weighted least squares with
torch's L-BFGS. Pixels that the model misses by more than ``clip`` sigma, dilated, are taken for arcs (or
other sources) and masked, and the fit repeated (``rounds`` times). What is left after subtracting the
model is the arc image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from astropy.stats import sigma_clipped_stats
from scipy.ndimage import binary_dilation

from lensnet.deblend.ica import lens_center
from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.observe.psf import convolve
from lensnet.sources.sersic import sersic_profile

__all__ = ["SersicFit", "fit_lens_light"]


@dataclass
class SersicFit:
    """The fitted lens light and the arcs left after subtracting it.

    Attributes
    ----------
    arcs, model : ndarray, (H, W)
        Data minus model (sky included), and the model (PSF-convolved Sérsic plus sky).
    params : dict
        amplitude (flux per pixel at R_sersic), R_sersic (arcsec), n_sersic, e1, e2, center_x, center_y (arcsec
        from the image centre), sky (flux per pixel).
    mask : ndarray of bool, (H, W)
        Pixels left out of the last fit (arcs, other sources, invalid).
    reduced_chi2 : float
        Of the last fit, over its unmasked pixels.
    """

    arcs: np.ndarray
    model: np.ndarray
    params: dict
    mask: np.ndarray
    reduced_chi2: float


def fit_lens_light(image: np.ndarray, pixel_scale: float, *, noise: np.ndarray | float | None = None,
                   psf: np.ndarray | None = None, mask: np.ndarray | None = None, rounds: int = 3,
                   clip: float = 3.0, steps: int = 200) -> SersicFit:
    """Fit an elliptical Sérsic lens light to one band and subtract it (see the module docstring).

    Parameters
    ----------
    image : ndarray, (H, W)
        The band, any flux unit per pixel.
    pixel_scale : float
        arcsec/pixel.
    noise : ndarray or float, optional
        1-sigma noise per pixel (a map, 0 where a pixel is unusable) [sigma-clipped rms of the image].
    psf : ndarray, optional
        PSF kernel (odd size) [none].
    mask : ndarray of bool, optional
        Pixels never to fit [none].
    rounds : int
        Fits, each masking the pixels the previous one missed [3].
    clip : float
        Residual, in sigma, above which a pixel counts as arc [3].
    steps : int
        L-BFGS iterations per fit [200].
    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise LensnetShapeError("image", data.shape, "(H, W), one band")
    if not pixel_scale > 0:
        raise LensnetValueError(f"pixel_scale = {pixel_scale!r}: expected a positive number of arcsec/pixel")
    valid = np.isfinite(data) & (np.ones(data.shape, bool) if mask is None else ~np.asarray(mask, bool))
    if noise is None:
        noise = sigma_clipped_stats(data[valid])[2]
    sigma = np.broadcast_to(np.asarray(noise, dtype=np.float64), data.shape)
    valid &= np.isfinite(sigma) & (sigma > 0)
    if valid.sum() < 50:
        raise LensnetValueError(f"only {valid.sum()} usable pixels to fit the lens light")
    h, w = data.shape
    x = torch.tensor((np.arange(w) - (w - 1) / 2) * pixel_scale)[None, :].expand(h, w)
    y = torch.tensor((np.arange(h) - (h - 1) / 2) * pixel_scale)[:, None].expand(h, w)
    kernel = None if psf is None else torch.tensor(np.asarray(psf, dtype=np.float64) / np.sum(psf))
    d = torch.tensor(np.where(valid, data, 0.0))
    inv_sigma = torch.tensor(np.where(valid, 1.0 / np.where(valid, sigma, 1.0), 0.0))
    cx, cy = lens_center(np.where(valid, data, 0.0))
    sky0 = float(np.median(data[valid]))
    peak = max(float(data[valid].max()) - sky0, 1e-12)
    theta = torch.tensor([math.log(peak * 0.05), math.log(0.5), 0.0, 0.0, 0.0,
                          (cx - (w - 1) / 2) * pixel_scale, (cy - (h - 1) / 2) * pixel_scale, sky0],
                         dtype=torch.float64, requires_grad=True)
    fit_mask = ~valid
    for _ in range(rounds):
        weights = inv_sigma * torch.tensor(~fit_mask)
        _minimise(theta, lambda t: ((weights * (_model(t, x, y, kernel) - d)) ** 2).sum(), steps)
        with torch.no_grad():
            residual = ((d - _model(theta, x, y, kernel)) * inv_sigma).numpy()
        fit_mask = ~valid | binary_dilation(residual > clip, iterations=2)
    with torch.no_grad():
        model = _model(theta, x, y, kernel).numpy()
        chi = ((d.numpy() - model) * inv_sigma.numpy())[~fit_mask]
    params = dict(zip(("amplitude", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y", "sky"),
                      (float(v) for v in _physical(theta.detach()))))
    return SersicFit(np.where(valid, data - model, 0.0), model, params, fit_mask,
                     float((chi**2).sum() / max(chi.size - len(params), 1)))


def _physical(t: torch.Tensor) -> list[torch.Tensor]:
    """Unconstrained fit variables to amplitude > 0, R in (0.01, 20)", n in (0.5, 8), |e| < 0.9, centre, sky."""
    amplitude, radius = torch.exp(t[0]), 0.01 + torch.exp(t[1]).clamp(max=20.0)
    n = 0.5 + 7.5 * torch.sigmoid(t[2])
    size = torch.sqrt(t[3] ** 2 + t[4] ** 2 + 1e-24)
    e1, e2 = 0.9 * torch.tanh(size) * t[3] / size, 0.9 * torch.tanh(size) * t[4] / size
    return [amplitude, radius, n, e1, e2, t[5], t[6], t[7]]


def _model(t: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    amplitude, radius, n, e1, e2, cx, cy, sky = (v.reshape(1) for v in _physical(t))
    light = sersic_profile(x, y, amplitude, radius, n, e1, e2, cx, cy)[0]
    if kernel is not None:
        light = convolve(light[None, None], kernel)[0, 0]
    return light + sky


def _minimise(theta: torch.Tensor, loss, steps: int) -> None:
    optimiser = torch.optim.LBFGS([theta], max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                  tolerance_change=1e-14)

    def closure():
        optimiser.zero_grad()
        value = loss(theta)
        value.backward()
        return value

    start = theta.detach().clone()
    optimiser.step(closure)
    with torch.no_grad():
        if not (torch.isfinite(theta).all() and torch.isfinite(loss(theta))):
            theta.copy_(start)  # a line search that diverged (an overflowing amplitude) keeps its start
