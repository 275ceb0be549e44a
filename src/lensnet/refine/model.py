"""The image model a likelihood fit compares with the data: an SIE lensing an elliptical Sersic source,
blurred by the PSF, plus a flat background.

Parameters of one lens, in this order (:data:`FIT_PARAM_NAMES`): the SIE's ``theta_E, e1, e2, center_x,
center_y`` (lensnet's convention, :mod:`lensnet.conventions`) and the source's ``R_sersic, n_sersic,
e1, e2, center_x, center_y`` (lenstronomy's ``SERSIC_ELLIPSE``). The source amplitude and the background
enter the model linearly: for any other parameters they are solved for exactly (weighted linear least
squares, the amplitude kept >= 0), so the fit searches 11 dimensions instead of 13 and the likelihood is
the profile likelihood over both.

The fit works in unconstrained coordinates u (:func:`to_physical`): theta_E = softplus, R_sersic = exp,
n_sersic in (0.3, 6) by a logistic, each ellipticity squashed radially into |e| < 0.95, centres free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lensnet.lensing import PixelGrid
from lensnet.lensing.sie import sie_deflection
from lensnet.observe.psf import convolve
from lensnet.sources.sersic import sersic_profile

__all__ = ["FIT_PARAM_NAMES", "N_LENS_PARAMS", "ImageData", "chi_square", "chi_square_at", "lens_to_physical",
           "lens_to_unconstrained", "linear_solve", "minimize_summed", "model_images", "to_physical", "to_unconstrained", "trace_rays", "traced_coordinates",
           "unit_images"]

#: The fitted parameters, the SIE's first.
FIT_PARAM_NAMES = ("theta_E", "e1", "e2", "center_x", "center_y",
                   "source_R_sersic", "source_n_sersic", "source_e1", "source_e2", "source_center_x",
                   "source_center_y")
N_LENS_PARAMS = 5
_MAX_E = 0.95
_N_RANGE = (0.3, 6.0)
_U_BOX = 30.0
#: Core of the fitted SIE in pixels (:func:`lensnet.lensing.sie.sie_deflection`): the deflection differs from
#: the SIE's by less than 1e-5 of a pixel, and its gradient stays finite at a sample on the lens centre.
_CORE = 1e-5


@dataclass
class ImageData:
    """A batch of B images with what their likelihood needs.

    Attributes
    ----------
    image : Tensor, (B, H, W)
        Data, any flux unit per pixel (background not necessarily subtracted: the model fits a constant).
    sigma : Tensor, (B, H, W)
        1-sigma noise of every pixel, same unit, > 0 where not masked.
    mask : Tensor of bool, (B, H, W)
        True where a pixel is ignored.
    psf : Tensor, (B, K, K), K odd
        PSF kernel of each image on its pixel grid, unit sum.
    grid : PixelGrid
        Pixel grid of the images (H = W = n_pix).
    """

    image: torch.Tensor
    sigma: torch.Tensor
    mask: torch.Tensor
    psf: torch.Tensor
    grid: PixelGrid

    @property
    def weight(self) -> torch.Tensor:
        """Inverse variance, 0 where masked, (B, H, W)."""
        return torch.where(self.mask, 0.0, 1.0 / self.sigma.clamp_min(1e-30) ** 2)

    def take(self, index: torch.Tensor) -> "ImageData":
        """The images at ``index`` (restarts repeat a lens)."""
        return ImageData(self.image[index], self.sigma[index], self.mask[index], self.psf[index], self.grid)


def _squash(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.sqrt(a * a + b * b + 1e-24)
    s = _MAX_E * torch.tanh(r) / r
    return a * s, b * s


def _unsquash(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.sqrt(e1 * e1 + e2 * e2 + 1e-24).clamp_max(_MAX_E * (1 - 1e-6))
    s = torch.atanh(r / _MAX_E) / r
    return e1 * s, e2 * s


def to_physical(u: torch.Tensor) -> torch.Tensor:
    """Unconstrained (B, 11) to physical parameters (B, 11), :data:`FIT_PARAM_NAMES` order.

    ``u`` is first clipped to a wide box (NaN to 0), so that a line search's trial step far out gives a finite
    model.
    """
    u = torch.nan_to_num(u).clamp(-_U_BOX, _U_BOX)
    r_sersic = torch.exp(u[:, 5])
    n_sersic = _N_RANGE[0] + (_N_RANGE[1] - _N_RANGE[0]) * torch.sigmoid(u[:, 6])
    se1, se2 = _squash(u[:, 7], u[:, 8])
    source = torch.stack([r_sersic, n_sersic, se1, se2, u[:, 9], u[:, 10]], 1)
    return torch.cat([lens_to_physical(u[:, :N_LENS_PARAMS]), source], 1)


def lens_to_physical(u: torch.Tensor) -> torch.Tensor:
    """The SIE's unconstrained (B, 5) to physical parameters (B, 5): the first five of :func:`to_physical`."""
    u = torch.nan_to_num(u).clamp(-_U_BOX, _U_BOX)
    e1, e2 = _squash(u[:, 1], u[:, 2])
    return torch.stack([F.softplus(u[:, 0]) + 1e-4, e1, e2, u[:, 3], u[:, 4]], 1)


def lens_to_unconstrained(p: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`lens_to_physical`."""
    theta_e = (p[:, 0] - 1e-4).clamp_min(1e-4)
    u0 = theta_e + torch.log(-torch.expm1(-theta_e))  # inverse softplus
    e1, e2 = _unsquash(p[:, 1], p[:, 2])
    return torch.stack([u0, e1, e2, p[:, 3], p[:, 4]], 1)


def to_unconstrained(p: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_physical`; values are first brought inside the allowed ranges."""
    lo, hi = _N_RANGE
    frac = ((p[:, 6] - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
    se1, se2 = _unsquash(p[:, 7], p[:, 8])
    source = torch.stack([torch.log(p[:, 5].clamp_min(1e-4)), torch.logit(frac), se1, se2, p[:, 9], p[:, 10]], 1)
    return torch.cat([lens_to_unconstrained(p[:, :N_LENS_PARAMS]), source], 1)


def traced_coordinates(lens: torch.Tensor, grid: PixelGrid, supersample: int = 1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Source-plane positions (B, H s, W s) in arcsec of the (sub)pixel centres of ``grid`` under the SIEs
    ``lens`` (B, 5): the lens equation beta = theta - alpha(theta)."""
    x, y = grid.coordinates(supersample, device=lens.device, dtype=lens.dtype)
    return trace_rays(lens, x, y, grid.pixel_scale)


def trace_rays(lens: torch.Tensor, x: torch.Tensor, y: torch.Tensor, pixel_scale: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Source-plane positions of image-plane positions x, y ((H, W) or (B, H, W), arcsec) under the SIEs
    ``lens`` (B, 5), with the fit's tiny core (:data:`_CORE` pixels of ``pixel_scale``)."""
    ax, ay = sie_deflection(x, y, *lens.unbind(1), core=_CORE * pixel_scale)
    return x - ax, y - ay


def unit_images(p: torch.Tensor, data: ImageData, supersample: int = 1) -> torch.Tensor:
    """PSF-blurred lensed images (B, H, W) of unit-amplitude sources for physical parameters ``p`` (B, 11)."""
    bx, by = traced_coordinates(p[:, :N_LENS_PARAMS], data.grid, supersample)
    sb = sersic_profile(bx, by, torch.ones_like(p[:, 0]), p[:, 5], p[:, 6], p[:, 7], p[:, 8], p[:, 9], p[:, 10])
    # Pixel averages of the surface brightness, times the pixel area: flux per pixel.
    sky = (F.avg_pool2d(sb[:, None], supersample)[:, 0] if supersample > 1 else sb) * data.grid.pixel_scale ** 2
    return convolve(sky[:, None], data.psf)[:, 0]


def linear_solve(unit: torch.Tensor, data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude (>= 0) and background, each (B,), minimising chi^2 of ``amplitude * unit + background``."""
    w = data.weight
    s_w, s_m, s_d = w.sum((1, 2)), (w * unit).sum((1, 2)), (w * data.image).sum((1, 2))
    s_mm, s_md = (w * unit * unit).sum((1, 2)), (w * unit * data.image).sum((1, 2))
    det = (s_mm * s_w - s_m * s_m).clamp_min(1e-30)
    amplitude = ((s_md * s_w - s_m * s_d) / det).clamp_min(0.0)
    background = (s_d - amplitude * s_m) / s_w.clamp_min(1e-30)
    return amplitude, background


def model_images(p: torch.Tensor, data: ImageData, supersample: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best model images (B, H, W) for parameters ``p``, with their amplitudes and backgrounds (B,)."""
    unit = unit_images(p, data, supersample)
    amplitude, background = linear_solve(unit, data)
    return amplitude[:, None, None] * unit + background[:, None, None], amplitude, background


def chi_square(p: torch.Tensor, data: ImageData, supersample: int = 1) -> torch.Tensor:
    """chi^2 (B,) of the best model for ``p``: the sum over unmasked pixels of ((data - model) / sigma)^2,
    amplitude and background solved for (:func:`linear_solve`)."""
    model, _, _ = model_images(p, data, supersample)
    return (data.weight * (data.image - model) ** 2).sum((1, 2))


def chi_square_at(p: torch.Tensor, amplitude: torch.Tensor, background: torch.Tensor, data: ImageData,
                  supersample: int = 1) -> torch.Tensor:
    """chi^2 (B,) of the model with the given source amplitude (flux / arcsec^2 at R_sersic, as
    :class:`lensnet.sources.Sersic`) and background (flux per pixel), each (B,)."""
    model = amplitude[:, None, None] * unit_images(p, data, supersample) + background[:, None, None]
    return (data.weight * (data.image - model) ** 2).sum((1, 2))


def minimize_summed(v0: torch.Tensor, objective, max_iter: int) -> torch.Tensor:
    """Minimise the sum over rows of ``objective(v)`` (B,) from ``v0`` (B, K) by torch's L-BFGS (strong-Wolfe
    line search, shared by all rows); returns the end point (B, K), detached.

    One row's trouble must not stop the others: a non-finite row value (an overflowing trial step) is made
    huge but finite, since the line search fails on a non-finite sum instead of backtracking, and NaN
    gradient entries are zeroed.
    """
    v = v0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([v], lr=1.0, max_iter=max(1, int(max_iter)), history_size=20, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = objective(v)
        total = torch.where(torch.isfinite(value), value, torch.finfo(value.dtype).max / 1e6).sum()
        total.backward()
        v.grad.nan_to_num_(0.0, 0.0, 0.0)
        return total

    optimizer.step(closure)
    return v.detach()
