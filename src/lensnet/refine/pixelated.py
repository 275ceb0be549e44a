"""A pixelated source: its surface brightness on a regular grid in the source plane, found for given lens
parameters by a regularised linear inversion; the lens is then fitted on the Bayesian evidence.

The image is linear in the source pixels s and the background b: d = L s + b + noise, where column j of L
is the PSF-blurred image of source pixel j, the traced rays of the image pixels interpolated bilinearly on
the source grid (the semi-linear inversion of Warren & Dye 2003, ApJ 590, 673). With a Gaussian prior of
precision lambda H on s, H = D_x^T D_x + D_y^T D_y + eps I (gradient regularisation; eps keeps H
invertible), and a flat prior on b, the most probable (s, b) solves (F + R) x = L'^T W d with
L' = [L, 1], F = L'^T W L', R = diag(lambda H, 0) and W the inverse noise variance. The evidence,
marginalised over s and b, is (Suyu et al. 2006, MNRAS 371, 983, eq. 19; constants dropped)

    -2 ln E = chi^2 + lambda s^T H s + ln det(F + R) - N_s ln lambda,

which :func:`refine_pixelated` minimises over the five SIE parameters and ln lambda: the evidence sets the
smoothing and penalises a source that fits the noise, so no profile has to describe the source's light.

Only the pixels whose rays land on the source grid (and those within the PSF's reach of them) enter the
fit (:func:`fit_region`): the grid is placed once, around the source of a converged Sersic fit
(:func:`source_grid_around`), and stays fixed while the lens moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lensnet.observe.psf import convolve
from lensnet.refine.model import (N_LENS_PARAMS, ImageData, lens_to_physical, lens_to_unconstrained,
                                  minimize_rows, trace_rays, traced_coordinates)
from lensnet.sources.sersic import sersic_profile

__all__ = ["Inversion", "PixelatedFit", "SourcePlaneGrid", "Window", "fit_region", "invert", "lensed_pixel_images", "refine_pixelated",
           "regularisation_matrix", "source_grid_around"]

#: Source pixels per side of the default grid: 16 x 16 = 256 pixels, about the resolution the arcs of a
#: source magnified a few times give; 24 is 2.5x the time per lens.
N_SIDE = 16
#: Weight of the identity in H relative to the gradient terms: small enough not to shrink the source, large
#: enough that H and F + R are positive definite however few pixels see a source pixel.
_EPS = 1e-3
#: Lenses fitted together: larger batches gain nothing per lens, and their 100 MB tensors make the system's
#: page zeroing dominate (4 s per lens more for 7 lenses at once than for 2, measured on 2 cores).
CHUNK = 2
#: Search range of ln lambda around the first guess (:func:`_start_log_lambda`), in steps of ln 10.
_LAMBDA_DECADES = range(-4, 4)


@dataclass
class SourcePlaneGrid:
    """A square grid of ``n_side`` x ``n_side`` source pixels per lens.

    Attributes
    ----------
    center : Tensor, (B, 2), arcsec
        Centre (x, y) of each grid in the source plane.
    half_width : Tensor, (B,), arcsec
        Half its side.
    n_side : int
        Pixels per side.
    """

    center: torch.Tensor
    half_width: torch.Tensor
    n_side: int = N_SIDE

    @property
    def pixel_scale(self) -> torch.Tensor:
        """Side of a source pixel (B,), arcsec."""
        return 2 * self.half_width / self.n_side

    def coordinates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Source-pixel centres (x, y), each (B, n_side, n_side), rows along y as in an image."""
        axis = torch.arange(self.n_side, dtype=self.center.dtype, device=self.center.device) + 0.5
        offsets = axis[None] * self.pixel_scale[:, None] - self.half_width[:, None]  # (B, n)
        x = self.center[:, 0, None, None] + offsets[:, None, :]
        y = self.center[:, 1, None, None] + offsets[:, :, None]
        return x.expand(-1, self.n_side, -1), y.expand(-1, -1, self.n_side)

    def take(self, index: torch.Tensor) -> "SourcePlaneGrid":
        return SourcePlaneGrid(self.center[index], self.half_width[index], self.n_side)


@dataclass
class Inversion:
    """The regularised inversion of B images for given lenses.

    Attributes
    ----------
    source : Tensor, (B, n_side, n_side)
        Most probable source surface brightness (flux / arcsec^2) on :class:`SourcePlaneGrid`.
    background : Tensor, (B,)
        Background per pixel.
    model : Tensor, (B, H, W)
        The model image L s + b on the whole image.
    chi2 : Tensor, (B,)
        chi^2 over the fitted pixels.
    objective : Tensor, (B,)
        -ln E (the evidence of the module docstring, halved; lower is better).
    effective_source_dof : Tensor, (B,)
        N_s - lambda tr((F + R)^-1 H): the source pixels the data actually constrain (Suyu et al. 2006).
    """

    source: torch.Tensor
    background: torch.Tensor
    model: torch.Tensor
    chi2: torch.Tensor
    objective: torch.Tensor
    effective_source_dof: torch.Tensor


def regularisation_matrix(n_side: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """H = D_x^T D_x + D_y^T D_y + eps I, (n_side^2, n_side^2), for first differences between neighbouring
    source pixels (row-major order, rows along y)."""
    eye = torch.eye(n_side, dtype=dtype, device=device)
    diff = (torch.eye(n_side, dtype=dtype, device=device)[1:] - eye[:-1])  # (n-1, n) first differences
    dx, dy = torch.kron(eye, diff), torch.kron(diff, eye)
    return dx.T @ dx + dy.T @ dy + _EPS * torch.eye(n_side * n_side, dtype=dtype, device=device)


def lensed_pixel_images(lens: torch.Tensor, data: ImageData, grid: SourcePlaneGrid, supersample: int = 1,
                        window: "Window | None" = None) -> torch.Tensor:
    """The PSF-blurred image of every source pixel at unit surface brightness, (B, N_s, H, W), flux per
    pixel: the columns of L. A ray's brightness is the bilinear interpolation of the source pixels around
    where it lands (zero outside the grid); sub-pixel rays are averaged over each image pixel. With a
    ``window``, only its pixels are computed, (B, N_s, S, S)."""
    if window is None:
        bx, by = traced_coordinates(lens, data.grid, supersample)  # (B, Hs, Ws)
    else:
        bx, by = trace_rays(lens, *window.coordinates(data.grid, supersample, lens.dtype), data.grid.pixel_scale)
    n = grid.n_side
    step = grid.pixel_scale[:, None, None]
    fx = (bx - grid.center[:, 0, None, None] + grid.half_width[:, None, None]) / step - 0.5
    fy = (by - grid.center[:, 1, None, None] + grid.half_width[:, None, None]) / step - 0.5
    ix, iy = fx.detach().floor(), fy.detach().floor()
    tx, ty = fx - ix, fy - iy
    ix, iy = ix.long(), iy.long()
    b, hs, ws = bx.shape
    columns = bx.new_zeros(b, n * n, hs * ws)
    for dx, dy, weight in ((0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)), (0, 1, (1 - tx) * ty), (1, 1, tx * ty)):
        jx, jy = ix + dx, iy + dy
        inside = (jx >= 0) & (jx < n) & (jy >= 0) & (jy < n)
        index = torch.where(inside, jy * n + jx, 0).reshape(b, 1, -1)
        columns = columns.scatter_add(1, index, torch.where(inside, weight, 0.0).reshape(b, 1, -1))
    images = columns.reshape(b, n * n, hs, ws)
    if supersample > 1:
        images = F.avg_pool2d(images, supersample)
    return convolve(images * data.grid.pixel_scale ** 2, data.psf)


@dataclass
class Window:
    """A square window of ``size`` pixels per side of each image, its corner at ``row``, ``col`` (B,): the
    part of the image a pixelated fit computes (the fitted pixels and the PSF's reach around them)."""

    row: torch.Tensor
    col: torch.Tensor
    size: int

    @classmethod
    def around(cls, region: torch.Tensor, margin: int) -> "Window":
        """The smallest common-size window holding each image's ``region`` (B, H, W) with ``margin`` pixels."""
        n = region.shape[-1]
        rows, cols = region.any(2), region.any(1)
        first = lambda m: torch.where(m.any(1), m.to(torch.int8).argmax(1), 0)  # noqa: E731
        last = lambda m: torch.where(m.any(1), n - 1 - m.flip(1).to(torch.int8).argmax(1), n - 1)  # noqa: E731
        r0, r1, c0, c1 = first(rows), last(rows), first(cols), last(cols)
        size = int(min(n, max(int((r1 - r0).max()), int((c1 - c0).max())) + 1 + 2 * margin))
        centre_r, centre_c = (r0 + r1) // 2, (c0 + c1) // 2
        return cls((centre_r - size // 2).clamp(0, n - size), (centre_c - size // 2).clamp(0, n - size), size)

    def _index(self) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.arange(self.size, device=self.row.device)
        return self.row[:, None] + offsets, self.col[:, None] + offsets

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """The window (B, S, S) of images (B, H, W)."""
        rows, cols = self._index()
        b = images.shape[0]
        picked = images.gather(1, rows[:, :, None].expand(b, self.size, images.shape[2]))
        return picked.gather(2, cols[:, None, :].expand(b, self.size, self.size))

    def coordinates(self, grid, supersample: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Sky (x, y) (B, S s, S s) of the window's (sub)pixel centres."""
        sub = (torch.arange(self.size * supersample, dtype=dtype) + 0.5) / supersample - 0.5
        centre = (grid.n_pix - 1) / 2
        y = (self.row[:, None].to(dtype) + sub - centre) * grid.pixel_scale
        x = (self.col[:, None].to(dtype) + sub - centre) * grid.pixel_scale
        n = sub.shape[0]
        return x[:, None, :].expand(-1, n, n), y[:, :, None].expand(-1, n, n)


def fit_region(lens: torch.Tensor, data: ImageData, grid: SourcePlaneGrid, psf_reach: int) -> torch.Tensor:
    """The pixels (B, H, W) a pixelated fit uses: unmasked, and within ``psf_reach`` pixels of one whose ray
    lands on the source grid under ``lens``."""
    bx, by = traced_coordinates(lens, data.grid)
    on_grid = ((bx - grid.center[:, 0, None, None]).abs() < grid.half_width[:, None, None]) & \
              ((by - grid.center[:, 1, None, None]).abs() < grid.half_width[:, None, None])
    reach = F.max_pool2d(on_grid[:, None].to(bx.dtype), 2 * psf_reach + 1, stride=1, padding=psf_reach)[:, 0] > 0
    return reach & ~data.mask


def source_grid_around(params: torch.Tensor, data: ImageData, n_side: int = N_SIDE,
                       level: float = 0.02) -> SourcePlaneGrid:
    """A source grid around the source of a Sersic fit ``params`` (B, 11): the square that holds, with a
    25% margin, where the image pixels brighter than ``level`` times the brightest (before the PSF) land."""
    bx, by = traced_coordinates(params[:, :N_LENS_PARAMS], data.grid)
    sb = sersic_profile(bx, by, torch.ones_like(params[:, 0]), *params[:, N_LENS_PARAMS:].unbind(1))
    bright = (sb > level * sb.flatten(1).amax(1)[:, None, None]) & ~data.mask
    big = torch.tensor(float("inf"), dtype=bx.dtype)
    x_lo, x_hi = torch.where(bright, bx, big).flatten(1).amin(1), torch.where(bright, bx, -big).flatten(1).amax(1)
    y_lo, y_hi = torch.where(bright, by, big).flatten(1).amin(1), torch.where(bright, by, -big).flatten(1).amax(1)
    center = torch.stack([(x_lo + x_hi) / 2, (y_lo + y_hi) / 2], 1)
    half = 1.25 * torch.maximum(x_hi - x_lo, y_hi - y_lo) / 2
    # A lens with no bright pixel (all masked) keeps the Sersic source's centre and a grid of twice its radius.
    fallback = ~torch.isfinite(half)
    center = torch.where(fallback[:, None], params[:, 9:11], center)
    half = torch.where(fallback, 2 * params[:, 5], half)
    return SourcePlaneGrid(center, half.clamp(2 * data.grid.pixel_scale, 0.5 * data.grid.fov), n_side)


class _Operator:
    """F, L'^T W d and what else the inversion needs of B images for fixed lenses, on the fitted pixels only."""

    def __init__(self, lens: torch.Tensor, data: ImageData, grid: SourcePlaneGrid, region: torch.Tensor,
                 supersample: int, window: Window):
        # Only the window is rendered and only the fitted pixels, gathered and padded to the largest region
        # with zero weight, enter the products: the cost is the region's size, not the image's.
        # The images in float32 (FFTs 10x faster than in float64), the products and the Cholesky in lens.dtype.
        grid32 = SourcePlaneGrid(grid.center.float(), grid.half_width.float(), grid.n_side)
        images = lensed_pixel_images(lens.float(), data, grid32, supersample, window).flatten(2).to(lens.dtype)
        region = window.crop(region).flatten(1)
        count = region.sum(1)
        order = torch.argsort((~region).to(torch.int8), dim=1, stable=True)[:, :int(count.max())]
        valid = torch.arange(order.shape[1], device=order.device)[None] < count[:, None]
        weight = torch.where(valid, window.crop(data.weight).flatten(1).gather(1, order), 0.0)
        self.columns = torch.cat([images.gather(2, order[:, None].expand(-1, images.shape[1], -1)),
                                  torch.ones_like(weight)[:, None]], 1)  # L'^T, (B, N_s + 1, R)
        self.data = window.crop(data.image).flatten(1).gather(1, order)
        self.weight = weight
        weighted = self.columns * weight[:, None]
        self.fisher = weighted @ self.columns.transpose(1, 2)  # F, (B, N_s + 1, N_s + 1)
        self.projection = (weighted @ self.data[..., None])[..., 0]  # L'^T W d
        self.h = regularisation_matrix(grid.n_side, lens.dtype, lens.device)
        self.n_source = grid.n_side ** 2

    def solve(self, log_lambda: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Most probable x = (s, b) (B, N_s + 1), -ln E (B,), the Cholesky factor of F + R and chi^2 (B,)."""
        lam = log_lambda.exp()
        r = torch.zeros_like(self.fisher)
        r[:, :self.n_source, :self.n_source] = lam[:, None, None] * self.h
        chol = torch.linalg.cholesky(self.fisher + r)
        x = torch.cholesky_solve(self.projection[..., None], chol)[..., 0]
        residual = self.data - (x[:, :, None] * self.columns).sum(1)
        chi2 = (self.weight * residual ** 2).sum(1)
        s = x[:, :self.n_source]
        penalty = lam * (s * (s @ self.h)).sum(1)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
        return x, 0.5 * (chi2 + penalty + log_det - self.n_source * log_lambda), chol, chi2

    def start_log_lambda(self) -> torch.Tensor:
        """ln lambda (B,) of the best evidence among decades around lambda0 = mean diag(F_ss) / mean diag(H)."""
        f_diag = torch.diagonal(self.fisher, dim1=1, dim2=2)[:, :self.n_source].mean(1)
        base = torch.log(f_diag.clamp_min(1e-30) / torch.diagonal(self.h).mean())
        trials = torch.stack([base + k * math.log(10) for k in _LAMBDA_DECADES])
        with torch.no_grad():
            values = torch.stack([self.solve(t)[1] for t in trials])
        return trials.gather(0, values.argmin(0)[None])[0]


def invert(lens: torch.Tensor, log_lambda: torch.Tensor | None, data: ImageData, grid: SourcePlaneGrid,
           region: torch.Tensor | None = None, supersample: int = 1) -> Inversion:
    """The regularised inversion (module docstring) of each image for the SIEs ``lens`` (B, 5).

    Parameters
    ----------
    lens : Tensor, (B, 5)
        SIE parameters, :data:`lensnet.PARAM_NAMES` order.
    log_lambda : Tensor, (B,), optional
        ln of the regularisation strength; None: the best of a decade search by the evidence.
    data : ImageData
        The images.
    grid : SourcePlaneGrid
        The source grids.
    region : Tensor of bool, (B, H, W), optional
        Pixels fitted [every unmasked pixel].
    supersample : int
        Rays per pixel side [1].
    """
    region = ~data.mask if region is None else region & ~data.mask
    operator = _Operator(lens, data, grid, region, supersample, Window.around(region, data.psf.shape[-1] // 2))
    if log_lambda is None:
        log_lambda = operator.start_log_lambda()
    x, objective, chol, chi2 = operator.solve(log_lambda)
    n = operator.n_source
    h_full = torch.zeros_like(operator.fisher)
    h_full[:, :n, :n] = operator.h
    trace = torch.diagonal(torch.cholesky_solve(h_full, chol), dim1=1, dim2=2).sum(1)
    model = torch.einsum("bj,bjhw->bhw", x[:, :n], lensed_pixel_images(lens, data, grid, supersample)) + x[:, n, None, None]
    b, side = lens.shape[0], grid.n_side
    return Inversion(x[:, :n].reshape(b, side, side), x[:, n], model, chi2, objective,
                     n - log_lambda.exp() * trace)


@dataclass
class PixelatedFit:
    """The evidence fit of :func:`refine_pixelated` for B lenses.

    Attributes
    ----------
    lens, lens_sigma : Tensor, (B, 5)
        Best SIE parameters and their Laplace 1-sigma, marginalised over the source and ln lambda (NaN where
        the curvature is not positive definite).
    log_lambda : Tensor, (B,)
        ln of the regularisation strength at the optimum.
    inversion : Inversion
        The source, background and model at the optimum.
    grid : SourcePlaneGrid
        The source grids.
    region : Tensor of bool, (B, H, W)
        The fitted pixels.
    """

    lens: torch.Tensor
    lens_sigma: torch.Tensor
    log_lambda: torch.Tensor
    inversion: Inversion
    grid: SourcePlaneGrid
    region: torch.Tensor

    @property
    def dof(self) -> torch.Tensor:
        """Degrees of freedom (B,): fitted pixels less the effective source pixels, the background, ln lambda
        and the five SIE parameters."""
        return self.region.flatten(1).sum(1) - self.inversion.effective_source_dof - 2 - N_LENS_PARAMS


def refine_pixelated(data: ImageData, sersic_params: torch.Tensor, scale: torch.Tensor, prior=None, *,
                     n_side: int = N_SIDE, max_iter: int = 30, supersample: int = 1) -> PixelatedFit:
    """Fit the SIE with a pixelated source, starting from a converged Sersic fit.

    The source grid is placed around the Sersic source (:func:`source_grid_around`), the fitted pixels are
    those it reaches (:func:`fit_region`), ln lambda starts at the best decade, then L-BFGS (strong Wolfe)
    minimises -ln E + prior over the unconstrained SIE coordinates and ln lambda of every lens at once.

    Parameters
    ----------
    data : ImageData
        The images (float64 advised: the evidence holds a log-determinant).
    sersic_params : Tensor, (B, 11)
        The Sersic fit's parameters (:data:`lensnet.refine.model.FIT_PARAM_NAMES`).
    scale : Tensor, (B, 5)
        Typical curvature sqrt(d^2 objective / du^2) of the SIE's unconstrained coordinates: the
        preconditioner (the Sersic fit's Gauss-Newton diagonal).
    prior : callable, optional
        Penalty (B,) of the physical parameters (B, >= 5) added to -ln E, with ``take(index)`` for a subset
        of the lenses [None].
    n_side, max_iter, supersample :
        Source pixels per side [16], L-BFGS iterations [30], rays per pixel side [1].
    """
    if len(sersic_params) > CHUNK:
        parts = []
        for index in torch.arange(len(sersic_params)).split(CHUNK):
            penalty = prior.take(index) if prior is not None else None
            parts.append(refine_pixelated(data.take(index), sersic_params[index], scale[index], penalty,
                                          n_side=n_side, max_iter=max_iter, supersample=supersample))
        return _concatenate(parts)
    lens0 = sersic_params[:, :N_LENS_PARAMS]
    grid = source_grid_around(sersic_params, data, n_side)
    reach = data.psf.shape[-1] // 2 + 2
    region = fit_region(lens0, data, grid, reach)
    window = Window.around(region, data.psf.shape[-1] // 2)
    with torch.no_grad():
        log_lambda0 = _Operator(lens0, data, grid, region, supersample, window).start_log_lambda()
    full_scale = torch.cat([scale, torch.ones_like(scale[:, :1])], 1)  # ln lambda: unit steps are natural
    u0 = torch.cat([lens_to_unconstrained(lens0), log_lambda0[:, None]], 1)

    def objective(u: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The objective (R,) of the lenses ``rows`` [all] at ``u`` (R, 6)."""
        rows = torch.arange(u.shape[0]) if rows is None else rows
        lens = lens_to_physical(u[:, :N_LENS_PARAMS])
        operator = _Operator(lens, data.take(rows), grid.take(rows), region[rows], supersample,
                             Window(window.row[rows], window.col[rows], window.size))
        value = operator.solve(u[:, N_LENS_PARAMS])[1]
        return value + prior.take(rows)(lens) if prior is not None else value

    v = minimize_rows(u0 * full_scale, lambda w, rows: objective(w / full_scale[rows], rows), max_iter)
    with torch.no_grad():
        trial = v / full_scale
        u = torch.where(torch.isfinite(trial).all(1, keepdim=True), trial, u0)
        # A lens whose evidence got worse than at the start (a line search lost in a kink) keeps the start.
        worse = objective(u) > objective(u0)
        u = torch.where(worse[:, None], u0, u)
    lens, log_lambda = lens_to_physical(u[:, :N_LENS_PARAMS]), u[:, N_LENS_PARAMS]
    with torch.no_grad():
        inversion = invert(lens, log_lambda, data, grid, region, supersample)
    sigma = _laplace_sigma(objective, u, full_scale)
    return PixelatedFit(lens, sigma, log_lambda, inversion, grid, region)


def _concatenate(parts: list[PixelatedFit]) -> PixelatedFit:
    cat = lambda name, items: torch.cat([getattr(item, name) for item in items])  # noqa: E731
    inversions = [part.inversion for part in parts]
    grids = [part.grid for part in parts]
    inversion = Inversion(*(cat(f, inversions) for f in ("source", "background", "model", "chi2", "objective",
                                                         "effective_source_dof")))
    grid = SourcePlaneGrid(cat("center", grids), cat("half_width", grids), grids[0].n_side)
    return PixelatedFit(cat("lens", parts), cat("lens_sigma", parts), cat("log_lambda", parts), inversion, grid,
                        cat("region", parts))


def _laplace_sigma(objective, u: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Laplace 1-sigma (B, 5) of the physical SIE parameters, marginalised over ln lambda: the objective's
    Hessian in u from central differences of its gradient (steps of 0.1 / scale, about a tenth of a sigma:
    the float32 images make smaller steps noisy; the lenses separate, so
    one perturbed evaluation per coordinate and sign serves every lens), mapped by the Jacobian of
    :func:`lens_to_physical`."""
    b, k = u.shape

    def gradient(point: torch.Tensor) -> torch.Tensor:
        point = point.detach().requires_grad_(True)
        return torch.autograd.grad(objective(point).sum(), point)[0]

    steps = 0.1 / scale
    columns = []
    for j in range(k):
        shift = torch.zeros_like(u)
        shift[:, j] = steps[:, j]
        columns.append((gradient(u + shift) - gradient(u - shift)) / (2 * steps[:, j, None]))
    hessian = torch.stack(columns, 2)
    hessian = 0.5 * (hessian + hessian.transpose(1, 2))
    chol, info = torch.linalg.cholesky_ex(hessian)
    cov_u = torch.cholesky_solve(torch.eye(k, dtype=u.dtype).expand_as(hessian), chol)[:, :N_LENS_PARAMS, :N_LENS_PARAMS]
    jacobian = torch.autograd.functional.jacobian(lambda t: lens_to_physical(t).sum(0), u[:, :N_LENS_PARAMS])
    jacobian = jacobian.permute(1, 0, 2)  # (B, 5 physical, 5 unconstrained)
    cov = jacobian @ cov_u @ jacobian.transpose(1, 2)
    sigma = torch.sqrt(torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0.0))
    return torch.where((info == 0)[:, None], sigma, torch.full_like(sigma, float("nan")))
