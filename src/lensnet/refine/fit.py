"""Maximum-likelihood lens modelling seeded by the network: batched L-BFGS over lenses and restarts.

For each lens the objective is

    chi^2(p) / 2  +  sum_k (p_k - mu_k)^2 / (2 s_k^2)    (the second term only with ``prior``)

over the non-linear parameters of a :class:`lensnet.refine.model.ModelSpec` (by default an SIE lensing a
Sersic source; optionally an EPL, an external shear and Sersic lens light; amplitudes and background solved
exactly inside), where mu, s are a Gaussian prior on the five SIE parameters: the network's estimate and
calibrated 1-sigma (the CNN-as-prior fit of Pearson et al. 2021, MNRAS 505, 4362), or, for the blind
baseline, a broad prior's mean with no penalty. Steps:

1. with lens light, its profiles are fitted alone first (the arcs are a small part of its light), from a
   round profile of the image's half-light radius on the lens centre;
2. the source starts where the brightest pixels of the image less that lens light map back to under the
   starting lens: their flux-weighted source-plane mean and spread give its centre and size (n = 1, round);
   an EPL starts isothermal, a shear at 0;
3. ``restarts`` starts per lens, the first at mu, the others' SIE parameters drawn from N(mu, s^2)
   (seeded), are optimised at once, each by its own L-BFGS (:func:`lensnet.refine.model.minimize_rows`),
   for one round on the image and model blurred by a Gaussian of
   :data:`BLUR_PIXELS` and binned 2 x 2 (:func:`_coarse`: wider basins, a quarter of the pixels); the
   best start of each lens goes on, on the image itself, for the remaining rounds; every round is
   preconditioned by the lens's Gauss-Newton curvature (:func:`_lbfgs`);
4. optionally pixels more than ``clip`` sigma off the best model (cosmic rays, hot pixels) are masked
   and the fit is polished for one more round from there; with lens light or a shear (:func:`_staged`),
   steps 3-4 fit the SIE and source to the image less the lens light first (with one more start, round on
   the lens light's centre at the radius that gathers the arcs in the source plane, :func:`_ring_starts`),
   then everything together from there, and a lens whose chi^2 then lies more than :data:`RETRY_SIGMA` above
   its expectation is searched again from round SIE starts and from the network's lens itself, and one whose
   mass centre lies more than :data:`OFFSET_LIMIT` from its lens light's from a round lens on the light, the
   lower objective kept;
5. the uncertainty is the Laplace approximation: the inverse of the objective's Gauss-Newton curvature at
   the optimum (the Fisher matrix J^T W J from central differences of the model images, all lenses at
   once); the reduced chi^2 is chi^2 / (unmasked pixels - non-linear - linear parameters), near 1 for a
   model that describes the data;
6. with ``source="pixelated"``, the SIE is then fitted again with a pixelated source, from the Sersic
   fit's lens and around its source (:func:`lensnet.refine.pixelated.refine_pixelated`), the fitted lens
   light held fixed, and its result replaces the lens's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import convolve, gaussian_kernels
from lensnet.refine.model import (N_LENS_PARAMS, SIE_SERSIC, ImageData, ModelSpec, adaptive_pixels, linear_solve,
                                  minimize_rows, model_images)
from lensnet.refine.pixelated import N_SIDE, PixelatedFit, refine_pixelated

__all__ = ["LENSED_DELTA_BIC", "RESTARTS", "SOURCE_MODELS", "RefineResult", "delta_bic", "fit_lens_light", "refine_lenses"]

#: The source models of a fit: ``sersic`` (fast, the default) and ``pixelated`` (a regularised inversion on a
#: source-plane grid, :mod:`lensnet.refine.pixelated`, for sources no profile describes; about 10x the time).
SOURCE_MODELS = ("sersic", "pixelated")

#: Linear parameters solved inside the fit (source amplitude, background): they count in the dof.
N_LINEAR = 2
#: Preconditioned L-BFGS rounds per fit (:func:`_lbfgs`).
ROUNDS = 3
#: Precision of the search: float32 is 2.4 times faster than float64 on CPUs and reaches 1e-3 on a noiseless
#: lens; the Laplace step and the reported chi^2 run in float64.
DTYPE = torch.float32
#: Gaussian blur (pixels, 1-sigma) of the image and the model in the first round (:func:`_coarse`): 4 found
#: more lenses' optimum than none or 8 on 16 Sersic test lenses.
BLUR_PIXELS = 4.0
#: Unmasked fraction of a pixel's blurred neighbourhood below which it is masked in the first round.
MIN_COVERAGE = 0.9
#: The least spread of a start (``start_sigma``: theta_E, e1, e2, center_x, center_y) taken as a prior; below
#: it, in any parameter, the start is searched from without one (the network's smallest 1-sigma on simulated
#: lenses: 0.006", 0.013, 0.013, 0.026", 0.026").
CREDIBLE_SPREAD = (0.002, 0.005, 0.005, 0.01, 0.01)
#: Starts per lens (``restarts``).
RESTARTS = 8
#: A joint fit whose chi^2 lies this many sigma (sqrt(2 dof)) above its expectation is searched again from two
#: more starts (:func:`refine_lenses`): 2 retries about 2% of right fits.
RETRY_SIGMA = 2.0
#: Smoothed signal-to-noise above which a pixel counts as arc for the ring start's radius (:func:`_ring_starts`).
RING_SNR = 3.0
#: Residual, in sigma, above which a pixel counts as arc when the lens light is first fitted alone.
ARC_CLIP = 3.0
#: A joint optimum whose mass centre lies further than this (arcsec; at least 2 pixels) from its lens light's is
#: searched again from the mass on the light.
OFFSET_LIMIT = 0.1
#: The lens light fitted alone: the spread of the Gaussian prior holding its first Sersic index near 4.
LIGHT_INDEX_SPREAD = 1.5
#: Starts of the unlensed model's Sersic at peaks of the image less the lens light (:func:`delta_bic`).
UNLENSED_STARTS = 4
#: Levenberg-Marquardt iterations that polish each lens's optimum (:func:`_levenberg_marquardt`).
LM_ITERATIONS = 20
#: The BIC difference (unlensed - lensed, :func:`delta_bic`) above which an image counts as lensed: 10 is
#: "very strong" evidence on Kass & Raftery's (1995) scale.
LENSED_DELTA_BIC = 10.0


@dataclass
class RefineResult:
    """Refined parameters of B lenses.

    Attributes
    ----------
    params, sigma : Tensor, (B, P)
        Best-fit parameters (``spec.names``) and their Laplace 1-sigma (NaN where the Hessian is not
        positive definite).
    amplitude : Tensor, (B, L)
        The light profiles' amplitudes at the optimum (source first, then the lens-light components).
    background : Tensor, (B,)
        The fitted background per pixel.
    chi2, reduced_chi2 : Tensor, (B,)
        chi^2 of the best model and chi^2 per degree of freedom.
    seconds : float
        Wall-clock time of the whole fit.
    spec : ModelSpec
        What was fitted.
    mask : Tensor of bool, (B, H, W)
        The pixels left out of the final fit (the data's mask and the clipped outliers).
    covariance : Tensor, (B, P, P), optional
        The Laplace covariance of ``params`` (the Sersic source's fit only).
    supersampled : Tensor, (B, K), optional
        The pixels the final fit rendered finely (:attr:`ImageData.supersampled`).
    pixelated : PixelatedFit, optional
        With the pixelated source: its fit (source image, grid, fitted pixels); ``params[:, :5]``,
        ``sigma[:, :5]``, ``background`` and the chi^2 are then its, the other columns those of the Sersic
        fit that placed the source grid (their sigma NaN) and the source amplitude NaN.
    prior : (Tensor, Tensor), (B, 5) each, optional
        The Gaussian prior (mu, s) the fit used on the SIE parameters, for a posterior of the same model: the
        start and its spread, s infinite where the start lay outside the cutout (no prior).
    """

    params: torch.Tensor
    sigma: torch.Tensor
    amplitude: torch.Tensor
    background: torch.Tensor
    chi2: torch.Tensor
    reduced_chi2: torch.Tensor
    seconds: float
    spec: ModelSpec = SIE_SERSIC
    mask: torch.Tensor | None = None
    pixelated: PixelatedFit | None = None
    covariance: torch.Tensor | None = None
    supersampled: torch.Tensor | None = None
    prior: tuple[torch.Tensor, torch.Tensor] | None = None

    def fitted(self, data: ImageData) -> ImageData:
        """``data`` as the final fit saw it: with its mask (clipped outliers included) and finely rendered
        pixels, for a posterior or a model comparison on the same likelihood."""
        return replace(data, mask=self.mask, supersampled=self.supersampled)

    @property
    def lens(self) -> torch.Tensor:
        """The SIE parameters (B, 5), :data:`lensnet.PARAM_NAMES` order."""
        return self.params[:, :N_LENS_PARAMS]

    @property
    def lens_sigma(self) -> torch.Tensor:
        return self.sigma[:, :N_LENS_PARAMS]

    def column(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The value and sigma (B,) of the parameter ``name`` (one of ``spec.names``)."""
        k = self.spec.index(name)
        return self.params[:, k], self.sigma[:, k]


def refine_lenses(data: ImageData, start: torch.Tensor, start_sigma: torch.Tensor, *, spec: ModelSpec = SIE_SERSIC,
                  prior: bool = True, restarts: int = RESTARTS, max_iter: int = 300, clip: float | None = 5.0,
                  supersample: int = 1, adaptive: bool = True, seed: int = 0, source: str = "sersic",
                  n_side: int = N_SIDE, arcs: ImageData | None = None) -> RefineResult:
    """Fit the model ``spec`` (:mod:`lensnet.refine.model`) to each image (see the module docstring), and with
    ``source="pixelated"`` then the SIE with a pixelated source (:mod:`lensnet.refine.pixelated`).

    Parameters
    ----------
    data : ImageData
        B images, noise, masks and PSFs.
    start, start_sigma : Tensor, (B, 5)
        Starting SIE parameters and their spread (the network's estimate and 1-sigma, or a broad prior's
        mean and width for a blind fit), :data:`lensnet.PARAM_NAMES` order.
    spec : ModelSpec
        The model [an SIE lensing a Sersic source]; it must have a mass and a source.
    prior : bool
        Add the Gaussian prior N(start, start_sigma^2) on the SIE parameters [True]; False: maximum
        likelihood, the starts only seed the search.
    restarts : int
        Starts per lens, >= 1 [8: on 16 Sersic test lenses 2 left six in a wrong minimum, 8 three, of
        which one the data cannot constrain].
    max_iter : int
        L-BFGS iterations of the search [300: 100 left a quarter of the large-theta_E test lenses short of
        the optimum]: a sixth of them for the starts' blurred round, the rest for the best start's
        :data:`ROUNDS` - 1 rounds on the image; the polish after clipping adds a third, the lens light's
        own fit a sixth.
    clip : float, optional
        Mask pixels this many sigma off the first best model and polish [5.0]; None: no clipping.
    supersample : int
        Sub-pixels per pixel side of the model [1; 2 is four times the cost].
    adaptive : bool
        Render the pixels where ``supersample`` is too coarse at 4 x 4 sub-pixels in the final fit, the
        Levenberg-Marquardt polish and the uncertainties (:func:`~lensnet.refine.model.adaptive_pixels`) [True;
        the Sersic source only]. Without, a lens light's cusp and compact arcs rendered at pixel centres
        biased the joint fit by 1-2 sigma on lenses simulated at 3 x 3 sub-pixels.
    seed : int
        Seed of the random restarts [0].
    source : str
        Source model, one of :data:`SOURCE_MODELS` ["sersic"]; "pixelated" needs an SIE without shear.
    n_side : int
        Source pixels per side of the pixelated source [16].
    arcs : ImageData, optional
        The same images with the lens light removed (ICA of two filters, say), on which a model with lens
        light, a shear or an EPL fits the SIE and the source first [the images less the lens light fitted
        alone].

    Raises
    ------
    LensnetShapeError
        If the tensors' shapes disagree.
    LensnetValueError
        If an image is entirely masked, a noise value is not positive, a start is not finite, or the
        options cannot go together.
    """
    t0 = time.perf_counter()
    _check(data, start, start_sigma, restarts)
    if source not in SOURCE_MODELS:
        raise LensnetValueError(f"source = {source!r}: expected one of {', '.join(SOURCE_MODELS)}")
    if source == "pixelated" and (int(n_side) != n_side or n_side < 2):
        raise LensnetValueError(f"n_side = {n_side!r}: expected an integer >= 2 source pixels per side")
    if not (spec.lensed and spec.source):
        raise LensnetValueError(f"refine_lenses fits a lensed source; the model {spec.describe()!r} has none")
    if source == "pixelated" and (spec.mass != "sie" or spec.shear):
        raise LensnetValueError("the pixelated source is fitted with an SIE and no shear: use the Sersic source "
                                "for an EPL or a shear")
    given = data
    data = data.to(DTYPE)
    mu, s = start.to(DTYPE), start_sigma.to(DTYPE)
    b = mu.shape[0]
    # A start the cutout cannot hold (the network's estimate of an image unlike its training set: theta_E 5.5",
    # the centre 30" off a 5" cutout) is no prior: it would pull that lens's search, and the restarts drawn
    # around it, off the image. Such a lens is searched unpenalised from a round lens on the cutout's centre,
    # theta_E at most a quarter of the field, restarts drawn a quarter of the field and 0.3 in e around that.
    half_width = data.grid.n_pix * data.grid.pixel_scale / 2
    outside = (mu[:, 0] > half_width) | (mu[:, 3:5].abs() > half_width).any(1)
    inside = torch.zeros_like(mu)
    inside[:, 0] = mu[:, 0].clamp(0.05, half_width / 2)
    mu = torch.where(outside[:, None], inside, mu)
    broad = torch.tensor([half_width / 4, 0.3, 0.3, half_width / 4, half_width / 4], dtype=DTYPE)
    # So is a collapsed spread (a network 1-sigma of 0.001" on the centre, where on lenses it gives 0.026" and
    # more): as a prior it pinned a lens of the 0.1" benchmark to an estimate 0.47" long in theta_E, 0.77" off
    # centre. Such a lens is searched unpenalised from its start, the restarts drawn as broadly.
    untrusted = outside | (s < torch.tensor(CREDIBLE_SPREAD, dtype=DTYPE)).any(1)
    spread = torch.where(untrusted[:, None], broad, s)
    s = torch.where(untrusted[:, None], torch.inf, s)
    generator = torch.Generator().manual_seed(int(seed))
    draws = torch.randn(restarts - 1, b, N_LENS_PARAMS, generator=generator, dtype=DTYPE)
    lens_starts = _clamped(torch.cat([mu[None], mu[None] + spread[None] * draws]).reshape(restarts * b, N_LENS_PARAMS),
                           half_width)
    per_round = max(1, max_iter // ROUNDS)
    light, residual = fit_lens_light(data, mu[:, 3:5], spec.lens_light, max(1, per_round // 2), supersample,
                                     theta_e=mu[:, 0], theta_e_spread=spread[:, 0])
    index = torch.arange(b).repeat(restarts)
    penalty = _Prior(mu, s) if prior else None
    if spec == SIE_SERSIC:
        starts = _starts(spec, lens_starts, data.take(index), residual[index], None)
        u, data = _search(spec, spec.to_unconstrained(starts), data, penalty, restarts, max_iter, clip, supersample)
    else:
        if arcs is None:
            arcs = ImageData(residual, data.sigma, data.mask, data.psf, data.grid)
        else:
            arcs = arcs.to(DTYPE)
        staged = dict(restarts=restarts, max_iter=max_iter, clip=clip, supersample=supersample,
                      adaptive=adaptive and source == "sersic")
        searched = data
        u, data, _ = _staged(spec, searched, arcs, lens_starts, residual, light, penalty, **staged)
        # A fit whose chi^2 lies more than RETRY_SIGMA above its expectation is searched again, the SIE's starts
        # made round, and the joint search also from the network's lens itself: where the network's ellipticity
        # is far off (|e| 0.95 for 0.21) the staged search stays near it (a minimum 700 in chi^2 above the
        # truth's), and where the SIE fitted to the arcs left by the lens light fitted alone ends far off (a
        # small ring in the light's residual), so does the joint search from there (3 of 48 simulated lenses,
        # 2.8-37 sigma); so the ring start goes on to the joint search itself (see _staged).
        poor = (_chi2_excess(spec, u, data, supersample) > RETRY_SIGMA).nonzero().flatten()
        if poor.numel():
            round_starts = lens_starts.reshape(restarts, b, N_LENS_PARAMS)[:, poor].clone()
            round_starts[..., 1:3] -= mu[poor][None, :, 1:3]
            round_starts = _clamped(round_starts.reshape(-1, N_LENS_PARAMS), half_width)
            again, light_again = searched.take(poor), None if light is None else light[poor]
            network = _starts(spec, _clamped(mu[poor], half_width), again, residual[poor], light_again)
            u2, data2, _ = _staged(spec, again, arcs.take(poor), round_starts, residual[poor], light_again,
                                   None if penalty is None else penalty.take(poor), also=[network], ring_joint=True,
                                   **staged)
            u, data = _keep_better(spec, u, data, poor, u2, data2, penalty, supersample)
        if spec.n_light:
            # Mass follows light: an optimum whose mass centre lies off its lens light's is searched again from
            # a lens on the light, its source placed anew. At 0.1" pixels 3 of 48 simulated lenses ended with the
            # mass 0.3-0.4" off the light, 30-800 in chi^2 above the truth's optimum.
            p = spec.to_physical(u)
            shift = spec.block(p, "light")[:, :2] - p[:, 3:5]
            far = (shift.norm(dim=1) > max(OFFSET_LIMIT, 2 * data.grid.pixel_scale)).nonzero().flatten()
            if far.numel():
                # Nearly round (exactly round, the ellipticity's gradient vanishes), no shear: the wrong optimum's
                # ellipticity and shear, kept, led back to it.
                lens = torch.cat([p[far, :1], torch.full_like(p[far, :1], 0.01), torch.zeros_like(p[far, :1]),
                                  p[far, 3:5] + shift[far]], 1)
                tied = _starts(spec, lens, searched.take(far), residual[far], spec.block(p[far], "light"))
                u2, data2, _ = _joint_search(spec, [tied], searched.take(far), None if penalty is None else
                                             penalty.take(far), max_iter, clip, supersample, staged["adaptive"])
                u, data = _keep_better(spec, u, data, far, u2, data2, penalty, supersample)
    u = u.double()
    data = ImageData(given.image.double(), given.sigma.double(), data.mask, given.psf.double(), data.grid)
    if adaptive and source == "sersic":
        data = replace(data, supersampled=adaptive_pixels(spec, spec.to_physical(u), data, supersample))
    if penalty is not None:
        penalty = _Prior(penalty.mu.double(), penalty.s.double())
    u = _levenberg_marquardt(spec, u, data, penalty, supersample)
    with torch.no_grad():
        p = spec.to_physical(u)
        model, amplitude, background = model_images(p, data, supersample, spec)
        chi2 = (data.weight * (data.image - model) ** 2).sum((1, 2))
    if source == "pixelated":
        return _pixelated(spec, u, p, amplitude, data, penalty, n_side, supersample, t0)
    covariance, sigma = _laplace_covariance(spec, u, data, penalty, supersample)
    dof = (~data.mask).sum((1, 2)).to(u.dtype) - spec.n_params - spec.n_linear
    return RefineResult(p, sigma, amplitude, background, chi2, chi2 / dof.clamp_min(1.0), time.perf_counter() - t0,
                        spec, data.mask, covariance=covariance, supersampled=data.supersampled,
                        prior=None if penalty is None else (penalty.mu, penalty.s))


def delta_bic(data: ImageData, result: RefineResult, *, max_iter: int = 200, supersample: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Is it lensed at all? The Bayesian information criterion of the best unlensed model less that of the
    lensed fit ``result``, on the same pixels (its final mask): BIC = chi^2 + k ln N, k the fitted parameters
    (non-linear and linear), N the fitted pixels (Schwarz 1978).

    The unlensed model is the lens light (the lensed model's, at least one Sersic) plus a Sersic profile in the
    image plane where the source was: a lone galaxy, a star, a companion or noise is described as well by it,
    and the lensed model, which holds it as the limit theta_E -> 0, then loses by its extra parameters. A
    positive value favours the lens; :data:`LENSED_DELTA_BIC` is the threshold of ``lensed``.

    Returns
    -------
    delta_bic, chi2_unlensed : Tensor, (B,)
    """
    spec = ModelSpec(mass="none", lens_light=result.spec.lens_light if result.spec.n_light else "sersic")
    work = result.fitted(data).to(DTYPE)
    per_round = max(1, max_iter // ROUNDS)
    light, residual = fit_lens_light(work, result.lens[:, 3:5].to(DTYPE), spec.lens_light, per_round, supersample)
    blank = torch.zeros(len(light), spec.n_params - light.shape[1], dtype=DTYPE)
    # Starts of the unlensed Sersic: the centroid of the brightest light left, and the UNLENSED_STARTS brightest
    # peaks of the blurred residual (a companion is often not the brightest thing the lens light leaves).
    starts = [_source_start(spec, torch.cat([blank, light], 1), work, residual)]
    starts += _peak_starts(residual, work, UNLENSED_STARTS)
    # Each start is searched to the end (a blurred first round picked starts on a lens light's core instead of
    # a companion), the lowest chi^2 kept.
    double = work.to(torch.float64)
    chi2 = torch.full((len(light),), math.inf, dtype=torch.float64)
    for source in starts:
        u, _ = _search(spec, spec.to_unconstrained(torch.cat([source, light], 1)), work, None, 1, max_iter, None,
                       supersample, coarse=False)
        with torch.no_grad():
            model, _, _ = model_images(spec.to_physical(u.double()), double, supersample, spec)
            chi2 = torch.minimum(chi2, (double.weight * (double.image - model) ** 2).sum((1, 2)))
    n = (~result.mask).sum((1, 2)).to(torch.float64).clamp_min(2.0)
    k_lensed = result.spec.n_params + result.spec.n_linear
    k_unlensed = spec.n_params + spec.n_linear
    return chi2 + k_unlensed * n.log() - (result.chi2 + k_lensed * n.log()), chi2


def _peak_starts(residual: torch.Tensor, data: ImageData, count: int) -> list[torch.Tensor]:
    """Round Sersic starts (B, 6) of 2 pixels' radius at the ``count`` brightest local maxima of ``residual``
    blurred by a Gaussian of 2 pixels (unmasked pixels only), brightest first."""
    blur = gaussian_kernels(torch.full((1,), 2.0, dtype=residual.dtype), 8)
    smooth = convolve(torch.where(data.mask, 0.0, residual)[:, None], blur)[:, 0]
    peaks = smooth == F.max_pool2d(smooth[:, None], 5, stride=1, padding=2)[:, 0]
    score = torch.where(peaks & ~data.mask, smooth, -math.inf).flatten(1)
    order = score.argsort(1, descending=True)[:, :count]
    x, y = data.grid.coordinates(1, dtype=residual.dtype)
    radius = torch.full((len(residual),), 2 * data.grid.pixel_scale, dtype=residual.dtype)
    one, zero = torch.ones_like(radius), torch.zeros_like(radius)
    return [torch.stack([radius, one, 0.05 * one, zero, x.flatten()[order[:, k]], y.flatten()[order[:, k]]], 1)
            for k in range(order.shape[1])]


def fit_lens_light(data: ImageData, center: torch.Tensor, lens_light: str, max_iter: int, supersample: int = 1,
                   theta_e: torch.Tensor | None = None, theta_e_spread: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The lens light's profiles fitted alone (a Sersic or two and the background, no source), from a round profile
    of the image's half-light radius at ``center`` (B, 2). The arcs would pull the profiles out into a halo: with
    ``theta_e`` (B,), an estimate of the Einstein radius, the first fit leaves out the annulus 0.5-1.5 theta_e where
    they lie, out to theta_e + ``theta_e_spread`` (B,; the estimate's uncertainty) where that is farther (arcs at
    1.58" outside the annulus of a network's 0.97 +- 0.45" pulled a Sersic 2" off the lens, to R 10" and n 8, and
    every start that followed, to a joint optimum 0.43" short); then pixels more than :data:`ARC_CLIP` sigma above
    the first fit, and their neighbours, are left out of a second fit (as
    :func:`lensnet.deblend.sersic_fit.fit_lens_light` does). Both fits hold the first Sersic's index near 4 and its
    radius near the start's (Gaussian priors of :data:`LIGHT_INDEX_SPREAD` and of the start's radius): with the arcs
    fitted as lens light, or masked, R and n are degenerate (chi^2 within 10-100 of the truth's at R 5", n 7), and 7
    of 8 simulated lenses ran to the bounds (R 10", n 8), from where the joint fit of 1 or 2 in 8 ended in a wrong
    minimum.

    Returns
    -------
    light : Tensor (B, 2 + 4 K) or None
        The lens-light block of :class:`ModelSpec` (None for ``lens_light="none"``).
    residual : Tensor, (B, H, W)
        The image less the fitted lens light (the image itself without lens light).
    """
    if lens_light == "none":
        return None, data.image
    spec = ModelSpec(mass="none", lens_light=lens_light, source=False)
    start = _light_start(data, center, spec.n_light)
    first = data
    if theta_e is not None:
        x, y = data.grid.coordinates(1, dtype=data.image.dtype)
        r = torch.sqrt((x - center[:, 0, None, None]) ** 2 + (y - center[:, 1, None, None]) ** 2)
        outer = 1.5 * theta_e if theta_e_spread is None else torch.maximum(1.5 * theta_e, theta_e + theta_e_spread)
        ring = (r > 0.5 * theta_e[:, None, None]) & (r < outer[:, None, None])
        first = replace(data, mask=data.mask | ring)
    # The first component's radius and index held near a de Vaucouleurs profile of the start's radius: on its
    # own, under arcs or with them masked, a Sersic's R and n are degenerate and ran to their bounds. _Prior acts
    # on a model's first five parameters: for the lens light alone, its centre, R, n and e1 (the others left free).
    wide = torch.full_like(start[:, 0], 1e3)
    penalty = _Prior(torch.stack([start[:, 0], start[:, 1], start[:, 2], torch.full_like(wide, 4.0), start[:, 4]], 1),
                     torch.stack([wide, wide, start[:, 2], torch.full_like(wide, LIGHT_INDEX_SPREAD), wide], 1))
    u, _ = _lbfgs(spec, spec.to_unconstrained(start), first, penalty, max_iter, supersample, rounds=1)
    with torch.no_grad():
        model, _, _ = model_images(spec.to_physical(u), data, supersample, spec)
        above = ((data.image - model) > ARC_CLIP * data.sigma).to(data.image.dtype)
        arcs = F.max_pool2d(above[:, None], 5, stride=1, padding=2)[:, 0] > 0  # and 2 pixels around
    masked = replace(data, mask=data.mask | arcs)
    u, _ = _lbfgs(spec, u, masked, penalty, max_iter, supersample, rounds=1)
    light = spec.to_physical(u)
    with torch.no_grad():
        unit = spec.unit_images(light, masked, supersample)
        amplitude, _ = linear_solve(unit, masked)
    return light.detach(), data.image - (amplitude[:, :, None, None] * unit).sum(1)


def _light_start(data: ImageData, center: torch.Tensor, n_light: int) -> torch.Tensor:
    """Round lens-light profiles at ``center`` (B, 2): one of the radius holding half the flux of the image's
    central disc (n = 4), or for two components a bulge of half that radius (n = 4) and an envelope of twice
    it (n = 1)."""
    x, y = data.grid.coordinates(1, dtype=data.image.dtype)
    r = torch.sqrt((x - center[:, 0, None, None]) ** 2 + (y - center[:, 1, None, None]) ** 2)
    image = torch.where(data.mask, 0.0, data.image)
    level = image.flatten(1).median(1).values[:, None, None]
    inside = r < 0.4 * data.grid.fov
    light = torch.where(inside, (image - level).clamp_min(0.0), 0.0).flatten(1)
    order = r.flatten(1).argsort(1)
    cumulative = light.gather(1, order).cumsum(1)
    half = (cumulative < 0.5 * cumulative[:, -1:]).sum(1)
    radius = r.flatten(1).gather(1, order)[torch.arange(len(r)), half].clamp(2 * data.grid.pixel_scale, 5.0)
    zero = torch.zeros_like(radius)
    components = [(radius, 4.0)] if n_light == 1 else [(0.5 * radius, 4.0), (2.0 * radius, 1.0)]
    columns = [center[:, 0], center[:, 1]]
    for size, index in components:
        columns += [size, torch.full_like(size, index), zero + 0.01, zero]
    return torch.stack(columns, 1)


def _starts(spec: ModelSpec, lens: torch.Tensor, data: ImageData, residual: torch.Tensor,
            light: torch.Tensor | None) -> torch.Tensor:
    """Physical starting parameters (N, P) of ``spec`` from the SIE starts ``lens`` (N, 5): an EPL isothermal,
    no shear, the source from the lensed light (:func:`_source_start`), the lens light as fitted alone."""
    n = lens.shape[0]
    mass = [lens] + ([torch.full((n, 1), 2.0, dtype=lens.dtype)] if spec.mass == "epl" else [])
    mass += [torch.zeros(n, 2, dtype=lens.dtype)] if spec.shear else []
    mass = torch.cat(mass, 1)
    # The source's start needs only the deflectors: the other blocks are placeholders until it is known.
    blank = torch.zeros(n, spec.n_params - mass.shape[1], dtype=lens.dtype)
    source = _source_start(spec, torch.cat([mass, blank], 1), data, residual)
    return torch.cat([mass, source] + ([light] if light is not None else []), 1)


def _ring_starts(arcs: ImageData, center: torch.Tensor) -> torch.Tensor:
    """Nearly round SIE starts (B, 5) at ``center`` (B, 2) whose Einstein radius gathers the arcs best in the
    source plane: for a singular isothermal sphere a pixel at x = r n maps to x - theta_E n, and the
    flux-weighted spread of the arcs' pixels there, Var(x) - 2 theta_E Cov(x, n) + theta_E^2 Var(n), is least
    at theta_E = Cov(x, n) / Var(n) (r for a ring; between an arc and its counter-image for a pair, where the
    arcs' median radius leans to the brighter, outer one). The arcs' pixels are those of ``arcs`` (the image less
    the lens light) more than :data:`RING_SNR` sigma above its median once smoothed by a Gaussian of 2 pixels."""
    image = torch.where(arcs.mask, 0.0, arcs.image)
    kernel = gaussian_kernels(torch.full((1,), 2.0, dtype=image.dtype), 8)
    smooth = convolve(image[:, None], kernel)[:, 0]
    noise = convolve(torch.where(arcs.mask, 0.0, arcs.sigma ** 2)[:, None], kernel ** 2)[:, 0].clamp_min(1e-30).sqrt()
    signal = smooth - smooth.flatten(1).median(1).values[:, None, None]
    x, y = arcs.grid.coordinates(1, dtype=image.dtype)
    dx, dy = x - center[:, 0, None, None], y - center[:, 1, None, None]
    r = torch.sqrt(dx ** 2 + dy ** 2)
    arc = (signal > RING_SNR * noise) & ~arcs.mask & (r > 2 * arcs.grid.pixel_scale)
    w = torch.where(arc, signal, 0.0)
    total = w.sum((1, 2))
    w = w / total.clamp_min(1e-30)[:, None, None]

    def centred(v):
        return v - (w * v).sum((1, 2))[:, None, None]

    nx, ny = dx / r.clamp_min(1e-12), dy / r.clamp_min(1e-12)
    cov = (w * (centred(dx) * centred(nx) + centred(dy) * centred(ny))).sum((1, 2))
    var = (w * (centred(nx) ** 2 + centred(ny) ** 2)).sum((1, 2))
    theta_e = torch.where(var > 1e-3, cov / var.clamp_min(1e-3), (w * r).sum((1, 2)))
    # No arc pixel: the middle of the paper's prior.
    theta_e = torch.where(total > 0, theta_e, torch.ones_like(theta_e)).clamp(0.1, 3.0)
    # Exactly round, the SIE's ellipticity gradient vanishes and the search never leaves q = 1.
    return torch.stack([theta_e, torch.full_like(theta_e, 0.01), torch.zeros_like(theta_e), center[:, 0],
                        center[:, 1]], 1)


def _clamped(lens_starts: torch.Tensor, half_width: float) -> torch.Tensor:
    """SIE starts (N, 5) within what the cutout can measure (a draw from a broad prior, or a network's
    estimate of an image unlike its training set, can leave it): theta_E in [0.05", ``half_width``], the centre
    inside the field (``half_width``, arcsec, its half-side), |e| below the fit's bound."""
    lens_starts = lens_starts.clone()
    lens_starts[:, 0] = lens_starts[:, 0].clamp(0.05, half_width)
    radius = lens_starts[:, 1:3].norm(dim=1, keepdim=True).clamp_min(1e-12)
    lens_starts[:, 1:3] = lens_starts[:, 1:3] * (radius.clamp_max(0.9) / radius)
    lens_starts[:, 3:5] = lens_starts[:, 3:5].clamp(-half_width, half_width)
    return lens_starts


def _staged(spec: ModelSpec, data: ImageData, arcs: ImageData, lens_starts: torch.Tensor, residual: torch.Tensor,
            light: torch.Tensor | None, penalty, *, restarts: int, max_iter: int, clip: float | None,
            supersample: int, adaptive: bool, also: list[torch.Tensor] = (), ring_joint: bool = False):
    """The staged search, as modellers do it: the SIE and the source first, on the image less the lens light
    fitted alone (``arcs``; the restarts' search of the default model from ``lens_starts``, restart-major);
    then everything together from there (and from the starts ``also``). Searched jointly from the start, the
    shear and the lens light took up the arcs on real lenses (SDSS J2303+1422 ended at theta_E 0.80", q 0.21,
    the shear at its bound). With ``ring_joint`` the ring start, as placed and as fitted to the arcs, goes on to
    the joint search too, and so does a ring placed anew once the lens light is fitted alone again around it.

    Returns the optimum (B, P, unconstrained), the data with its clipped pixels masked, and the objective."""
    b = data.image.shape[0]
    index = torch.arange(b).repeat(restarts)
    starts = _starts(SIE_SERSIC, lens_starts, arcs.take(index), arcs.image[index], None)
    # Mass follows light: one more start, round, on the lens light's centre at the arcs' radius, skips the blurred
    # round, whose ranking of starts far from every optimum is close to chance.
    center = lens_starts[:b, 3:5] if light is None else light[:, :2]
    ring = _starts(SIE_SERSIC, _ring_starts(arcs, center), arcs, arcs.image, None)
    first, _ = _search(SIE_SERSIC, SIE_SERSIC.to_unconstrained(starts), arcs, penalty, restarts, max_iter, None,
                       supersample, also=SIE_SERSIC.to_unconstrained(ring))
    start = _joint_start(spec, first, data, residual, light)
    # Two starts for the lens light: as fitted alone, and the round profile that fit started from. A lens
    # light fitted alone under the arcs can run to its bounds (R 10", n 8), and the joint search from there
    # to a wrong minimum (a shear and ellipticity pair far from the truth, 950 in chi^2 above it).
    starts = [start]
    if spec.n_light:
        starts.append(start.clone())
        starts[1][:, spec.columns("light")] = _light_start(data, start[:, spec.columns("light")][:, :2],
                                                           spec.n_light)
    if ring_joint:
        # Where the arcs lie inside the lens light (theta_E 0.7" on 0.1" pixels), the image less the light fitted
        # alone is mostly the light's residual: the SIE fitted to it ran from a ring start 0.02-0.08" from the
        # true theta_E to 1.0-1.4" (or 0.24"), and the joint search from there to a minimum hundreds in chi^2
        # above the truth's. The ring goes on as placed and as fitted: each found the truth where the other did
        # not.
        ring_fit, _ = _search(SIE_SERSIC, SIE_SERSIC.to_unconstrained(ring), arcs, penalty, 1, max_iter, None,
                              supersample, coarse=False)
        starts += [_joint_start(spec, ring_fit, data, residual, light),
                   _joint_start(spec, SIE_SERSIC.to_unconstrained(ring), data, residual, light)]
        if spec.n_light:
            # And the lens light fitted alone again, the arcs' annulus left out at the ring's radius instead of
            # the network's (0.25" for 0.69": the light had taken up the arcs), and a ring placed on what it
            # leaves (0.60" -> 0.77").
            light_r, residual_r = fit_lens_light(data, center, spec.lens_light, max(1, max_iter // ROUNDS // 2),
                                                 supersample, theta_e=ring[:, 0])
            arcs_r = replace(data, image=residual_r)
            ring_r = _starts(SIE_SERSIC, _ring_starts(arcs_r, center), arcs_r, residual_r, None)
            starts += [_joint_start(spec, SIE_SERSIC.to_unconstrained(ring_r), data, residual_r, light_r)]
    return _joint_search(spec, starts + list(also), data, penalty, max_iter, clip, supersample, adaptive)


def _joint_start(spec: ModelSpec, sie_source: torch.Tensor, data: ImageData, residual: torch.Tensor,
                 light: torch.Tensor | None) -> torch.Tensor:
    """A start (B, P) of ``spec`` from an SIE + Sersic source fit ``sie_source`` (B, 7, unconstrained): its lens
    and source, no shear, the lens light as fitted alone."""
    sie_source = SIE_SERSIC.to_physical(sie_source)
    start = _starts(spec, sie_source[:, :N_LENS_PARAMS], data, residual, light)
    start[:, spec.columns("source")] = sie_source[:, N_LENS_PARAMS:]
    return start


def _joint_search(spec: ModelSpec, starts: list[torch.Tensor], data: ImageData, penalty, max_iter: int,
                  clip: float | None, supersample: int, adaptive: bool):
    """Every start of ``starts`` (each (B, P) physical) searched in full, each lens's lowest objective kept:
    its optimum (B, P, unconstrained), the data with its clipped pixels masked, and the objective."""
    b = data.image.shape[0]
    every = torch.arange(b).repeat(len(starts))
    data = data.take(every)
    given = data.mask
    if adaptive:
        data = replace(data, supersampled=adaptive_pixels(spec, torch.cat(starts), data, supersample))
    each = None if penalty is None else penalty.take(every)
    u, data = _search(spec, spec.to_unconstrained(torch.cat(starts)), data, each, 1, max_iter, clip, supersample,
                      coarse=False)
    value = _capped_objective(spec, u, data, given, each, supersample, clip)
    best = value.reshape(len(starts), b).argmin(0) * b + torch.arange(b)
    return u[best], data.take(best), value[best]


def _keep_better(spec: ModelSpec, u: torch.Tensor, data: ImageData, index: torch.Tensor, u2: torch.Tensor,
                 data2: ImageData, penalty, supersample: int) -> tuple[torch.Tensor, ImageData]:
    """The optima ``u`` (B, P) and the data with its clipped pixels, the lenses ``index`` replaced by a second
    search's ``u2`` and ``data2`` where its objective is lower, compared on the pixels either kept: a wrong
    minimum clips the arcs it cannot fit, which are what tells the two apart."""
    both = replace(data.take(index), mask=data.mask[index] & data2.mask)
    prior = None if penalty is None else penalty.take(index)
    with torch.no_grad():
        better = (_objective(spec, spec.to_physical(u2), _refreshed(spec, u2, both, supersample), prior, supersample)
                  < _objective(spec, spec.to_physical(u[index]), _refreshed(spec, u[index], both, supersample), prior,
                               supersample))
    u, mask = u.clone(), data.mask.clone()
    u[index[better]], mask[index[better]] = u2[better], data2.mask[better]
    return u, replace(data, mask=mask)


def _capped_objective(spec: ModelSpec, u: torch.Tensor, data: ImageData, given: torch.Tensor, penalty,
                      supersample: int, clip: float | None) -> torch.Tensor:
    """The objective of each row's optimum ``u`` (B, P) for ranking the optima of different starts: on the
    pixels the data gave (``given``, its mask before clipping), each pixel's chi^2 capped at ``clip``^2, the
    linear amplitudes as solved on the row's own clipped pixels. Each on its own clipped pixels, a wrong minimum
    that clipped the arcs it missed (theta_E 1.39" for 0.75") ranked above the truth's; on the pixels any start
    kept, one that kept a few of the pixels a right one clipped made the right one pay for them in full."""
    data = _refreshed(spec, u, data, supersample)
    with torch.no_grad():
        p = spec.to_physical(u)
        model, _, _ = model_images(p, data, supersample, spec)
        chi2 = torch.where(given, 0.0, (data.image - model) ** 2 / data.sigma.clamp_min(1e-30) ** 2)
        value = 0.5 * (chi2 if clip is None else chi2.clamp_max(clip ** 2)).sum((1, 2))
    return value + penalty(p) if penalty is not None else value


def _refreshed(spec: ModelSpec, u: torch.Tensor, data: ImageData, supersample: int) -> ImageData:
    """``data`` with its finely rendered pixels chosen at ``u`` (those of a start can miss the optimum's arcs by
    hundreds in chi^2)."""
    if data.supersampled is None:
        return data
    return replace(data, supersampled=adaptive_pixels(spec, spec.to_physical(u), data, supersample))


def _chi2_excess(spec: ModelSpec, u: torch.Tensor, data: ImageData, supersample: int) -> torch.Tensor:
    """(chi^2 - dof) / sqrt(2 dof) of each lens at ``u``: how many sigma its chi^2 lies above a right model's."""
    with torch.no_grad():
        data = _refreshed(spec, u, data, supersample)
        model, _, _ = model_images(spec.to_physical(u), data, supersample, spec)
        chi2 = (data.weight * (data.image - model) ** 2).sum((1, 2))
    dof = ((~data.mask).sum((1, 2)).to(u.dtype) - spec.n_params - spec.n_linear).clamp_min(1.0)
    return (chi2 - dof) / (2 * dof).sqrt()


def _search(spec: ModelSpec, u0: torch.Tensor, data: ImageData, penalty, restarts: int, max_iter: int,
            clip: float | None, supersample: int, coarse: bool = True, also: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, ImageData]:
    """Steps 3 and 4 of the module docstring: the starts ``u0`` (restarts x B, P), restart-major, compete on
    the blurred image (skipped without ``coarse``, for one start), each lens's best goes on, beside the starts
    ``also`` (B, P) if given, the lower objective on the image kept; returns its optimum (B, P) and the data
    with the clipped pixels masked."""
    b = data.image.shape[0]
    index = torch.arange(b).repeat(restarts)
    per_round = max(1, max_iter // ROUNDS)
    u = u0
    if coarse:
        # The restarts compete for one round on the blurred image, whose wider basins forgive a start that
        # misplaces the arcs; the rest of the search goes to each lens's best start only.
        blurred = _coarse(data, BLUR_PIXELS).take(index)
        u, objective = _lbfgs(spec, u0, blurred, None if penalty is None else penalty.take(index),
                              max(1, per_round // 2), supersample, rounds=1)
        u = u[objective.reshape(restarts, b).argmin(0) * b + torch.arange(b)]
    candidates = u if also is None else torch.cat([u, also])
    k = candidates.shape[0] // b
    every = torch.arange(b).repeat(k)
    u, value = _lbfgs(spec, candidates, data.take(every), None if penalty is None else penalty.take(every),
                      max_iter - per_round, supersample, rounds=ROUNDS - 1)
    u = u[value.reshape(k, b).argmin(0) * b + torch.arange(b)]
    if clip is not None:
        with torch.no_grad():
            model, _, _ = model_images(spec.to_physical(u), data, supersample, spec)
        outliers = (data.image - model).abs() > clip * data.sigma
        data = replace(data, mask=data.mask | outliers)
        u, _ = _lbfgs(spec, u, data, penalty, per_round, supersample, rounds=1)
    return u, data


def _pixelated(spec: ModelSpec, u, p, amplitude, data: ImageData, penalty, n_side: int, supersample: int,
               t0: float) -> RefineResult:
    """Step 6: the SIE refitted with a pixelated source, on the image less the fitted lens light."""
    if spec.n_light:
        unit = spec.unit_images(p, data, supersample)
        data = ImageData(data.image - (amplitude[:, 1:, None, None] * unit[:, 1:]).sum(1), data.sigma, data.mask,
                         data.psf, data.grid)
    scale = _curvature_scale(spec, u, data, penalty, supersample)[:, :N_LENS_PARAMS]
    sersic = torch.cat([spec.block(p, "mass"), spec.block(p, "source")], 1)
    fit = refine_pixelated(data, sersic, scale, penalty, n_side=int(n_side), supersample=supersample)
    params, sigma = p.clone(), torch.full_like(p, float("nan"))
    params[:, :N_LENS_PARAMS], sigma[:, :N_LENS_PARAMS] = fit.lens, fit.lens_sigma
    amplitude = amplitude.clone()
    amplitude[:, 0] = float("nan")
    chi2 = fit.inversion.chi2
    return RefineResult(params, sigma, amplitude, fit.inversion.background, chi2, chi2 / fit.dof.clamp_min(1.0),
                        time.perf_counter() - t0, spec, data.mask, fit)


class _Prior:
    """Gaussian penalty sum_k (p_k - mu_k)^2 / (2 s_k^2) on the SIE parameters, per lens."""

    def __init__(self, mu: torch.Tensor, s: torch.Tensor):
        self.mu, self.s = mu, s

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (((p[:, :N_LENS_PARAMS] - self.mu) / self.s) ** 2).sum(1)

    def take(self, index: torch.Tensor) -> "_Prior":
        return _Prior(self.mu[index], self.s[index])


def _objective(spec: ModelSpec, p: torch.Tensor, data: ImageData, penalty, supersample: int) -> torch.Tensor:
    model, _, _ = model_images(p, data, supersample, spec)
    value = 0.5 * (data.weight * (data.image - model) ** 2).sum((1, 2))
    return value + penalty(p) if penalty is not None else value


def _lbfgs(spec: ModelSpec, u0: torch.Tensor, data: ImageData, penalty, max_iter: int, supersample: int,
           rounds: int):
    """L-BFGS on every row of ``u0``, each on its own (:func:`~lensnet.refine.model.minimize_rows`); returns the
    optimum and each row's objective.

    Each round whitens every lens's coordinates by its Gauss-Newton curvature H = L L^T at the round's start
    (u = u_r + L^-T w, :func:`_whitening`), so that every lens's problem is near-isotropic, correlations
    between parameters included, and L-BFGS's first step, unit length, is a Gauss-Newton step; then runs
    ``max_iter / rounds`` iterations afresh.
    """
    u = u0
    for _ in range(rounds):
        origin, factor = u, _whitening(spec, u, data, penalty, supersample)

        def unwhiten(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return origin[rows] + torch.linalg.solve_triangular(factor[rows], w[..., None], upper=True)[..., 0]

        def objective(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return _objective(spec, spec.to_physical(unwhiten(w, rows)), data.take(rows),
                              None if penalty is None else penalty.take(rows), supersample)

        w = minimize_rows(torch.zeros_like(u), objective, max(1, max_iter // rounds))
        with torch.no_grad():
            trial = unwhiten(w, torch.arange(u.shape[0]))
            finite = torch.isfinite(trial).all(1, keepdim=True)
            u = torch.where(finite, trial, u)  # a lens whose line search diverged keeps its start
    with torch.no_grad():
        return u, _objective(spec, spec.to_physical(u), data, penalty, supersample)


def _coarse(data: ImageData, sigma: float) -> ImageData:
    """The images and the PSF convolved with a Gaussian of ``sigma`` pixels, then binned 2 x 2 (when the
    image's side is even): a smoother likelihood, on a quarter of the pixels, for the search among starts.

    The images are blurred by normalised convolution (masked pixels add nothing), and a pixel is masked
    when more than 1 - :data:`MIN_COVERAGE` of its blurred neighbourhood is; the PSF, smooth after the
    blur, is sampled every second pixel. Each binned pixel gets the summed inverse variance of its four:
    the blur correlates the noise over about the area that it lowers its variance by, so chi^2 keeps about
    the information of the image.
    """
    half = math.ceil(4 * sigma)
    blur = gaussian_kernels(torch.full((1,), float(sigma), dtype=data.image.dtype), half)
    valid = (~data.mask).to(data.image.dtype)[:, None]
    blurred_valid = convolve(valid, blur)
    image = convolve(torch.where(data.mask, 0.0, data.image)[:, None], blur) / blurred_valid.clamp_min(1e-6)
    # The fraction of a pixel's blurred neighbourhood that is unmasked (the image's edge is not a mask): where
    # masked pixels weigh in, the blurred image is not the blurred model, so such pixels are masked too.
    coverage = blurred_valid / convolve(torch.ones_like(valid[:1]), blur)
    psf = convolve(F.pad(data.psf, (half,) * 4)[:, None], blur)[:, 0]
    if data.grid.n_pix % 2:
        sigma_map = data.sigma
        mask = data.mask | (coverage[:, 0] < MIN_COVERAGE)
        grid = data.grid
    else:
        image, coverage = F.avg_pool2d(image, 2), F.avg_pool2d(coverage * valid, 2)
        sigma_map = (4 * F.avg_pool2d(data.weight[:, None], 2)).clamp_min(1e-30).rsqrt()[:, 0]
        mask = coverage[:, 0] < MIN_COVERAGE
        centre = psf.shape[-1] // 2
        psf = psf[:, centre % 2::2, centre % 2::2]
        grid = PixelGrid(data.grid.n_pix // 2, 2 * data.grid.pixel_scale)
    return ImageData(image[:, 0], sigma_map, mask, psf / psf.sum((1, 2), keepdim=True), grid)


def _whitening(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int) -> torch.Tensor:
    """Upper-triangular L^T (B, P, P) with L L^T the Gauss-Newton curvature (:func:`_gauss_newton`),
    its correlation part regularised by 0.1 I: 1e-3 stretched near-degenerate directions so far that they
    set the shared step length (measured slower and less accurate on 48 test lenses)."""
    hessian, _ = _gauss_newton(spec, u, data, penalty, supersample)
    scale = torch.diagonal(hessian, dim1=1, dim2=2).clamp_min(1e-6).sqrt()
    correlation = hessian / (scale[:, :, None] * scale[:, None, :])
    eye = torch.eye(u.shape[1], dtype=u.dtype)
    chol, info = torch.linalg.cholesky_ex(correlation + 1e-1 * eye)
    chol = torch.where((info == 0)[:, None, None], chol, eye)  # not positive definite: the diagonal alone
    return chol.transpose(1, 2) * scale[:, None, :]


def _curvature_scale(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int) -> torch.Tensor:
    """sqrt of the diagonal of the Gauss-Newton curvature (B, P) (:func:`_gauss_newton`)."""
    hessian, _ = _gauss_newton(spec, u, data, penalty, supersample)
    return torch.diagonal(hessian, dim1=1, dim2=2).clamp_min(1e-6).sqrt()


def _gauss_newton(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective's Gauss-Newton curvature H = J^T W J (+ the prior's, likewise), (B, P, P), in the
    unconstrained coordinates, from central differences of the model images (2 P renderings, no backward
    pass), and the Jacobian (B, P, P) of :meth:`ModelSpec.to_physical`."""
    hessian, jacobian, _ = _linearise(spec, u, data, penalty, supersample, gradient=False)
    return hessian, jacobian


def _linearise(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int, gradient: bool = True):
    """:func:`_gauss_newton`'s curvature and Jacobian, and with ``gradient`` the objective's gradient (B, P)
    in u (one more rendering), else None."""
    h = 1e-4
    columns, jacobian = [], []
    with torch.no_grad():
        for k in range(u.shape[1]):
            shift = torch.zeros_like(u)
            shift[:, k] = h
            plus, minus = spec.to_physical(u + shift), spec.to_physical(u - shift)
            columns.append((model_images(plus, data, supersample, spec)[0]
                            - model_images(minus, data, supersample, spec)[0]) / (2 * h))
            jacobian.append((plus - minus) / (2 * h))
        columns, jacobian = torch.stack(columns, 1), torch.stack(jacobian, 2)
        weighted = columns * data.weight[:, None]
        hessian = torch.einsum("bkhw,blhw->bkl", weighted, columns)
        grad = None
        if gradient:
            p = spec.to_physical(u)
            model, _, _ = model_images(p, data, supersample, spec)
            grad = -torch.einsum("bkhw,bhw->bk", weighted, data.image - model)
        if penalty is not None:
            lens = jacobian[:, :N_LENS_PARAMS]  # d p_lens / d u
            hessian = hessian + torch.einsum("bik,bi,bil->bkl", lens, penalty.s ** -2, lens)
            if gradient:
                grad = grad + torch.einsum("bik,bi->bk", lens, (p[:, :N_LENS_PARAMS] - penalty.mu) / penalty.s ** 2)
    return hessian, jacobian, grad


def _levenberg_marquardt(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int,
                         max_iter: int = LM_ITERATIONS) -> torch.Tensor:
    """Polish every lens's optimum by Levenberg-Marquardt steps (Gauss-Newton with a per-lens damping): each
    lens gets its own step, which the shared line search of L-BFGS cannot give, so that a lens whose
    parameters are strongly correlated (lens light, shear and mass together) still reaches its minimum;
    near it the steps converge quadratically. A lens stops when a step lowers its objective by no more than
    1e-9 of it, or its damping reaches 1e6; only the lenses still moving are linearised again (the Jacobian,
    2 P renderings, is the step's cost)."""
    with torch.no_grad():
        value = _objective(spec, spec.to_physical(u), data, penalty, supersample)
        damping = torch.full_like(value, 1e-3)
        eye = torch.eye(u.shape[1], dtype=u.dtype)
        u, active = u.clone(), torch.arange(u.shape[0])
        for _ in range(max_iter):
            if len(active) == 0:
                break
            part, prior = data.take(active), None if penalty is None else penalty.take(active)
            hessian, _, grad = _linearise(spec, u[active], part, prior, supersample)
            diagonal = torch.diagonal(hessian, dim1=1, dim2=2).clamp_min(1e-12)
            system = hessian + damping[active, None, None] * torch.diag_embed(diagonal) + 1e-12 * eye
            step = torch.linalg.solve(system, -grad[..., None])[..., 0]
            trial = u[active] + torch.nan_to_num(step)
            new = _objective(spec, spec.to_physical(trial), part, prior, supersample)
            old = value[active]
            better = torch.isfinite(new) & (new < old)
            gain = torch.where(better, old - new, 0.0)
            u[active] = torch.where(better[:, None], trial, u[active])
            value[active] = torch.where(better, new, old)
            damping[active] = torch.where(better, damping[active] / 3, damping[active] * 4).clamp(1e-7, 1e7)
            done = (better & (gain <= 1e-9 * value[active].abs())) | (damping[active] >= 1e6)
            active = active[~done]
    return u


def _laplace_sigma(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int) -> torch.Tensor:
    """sqrt(diag(C)) (B, P) of the physical parameters' Laplace covariance C = J H^-1 J^T, with H the
    Gauss-Newton curvature in the unconstrained coordinates u and J the Jacobian of
    :meth:`ModelSpec.to_physical`; NaN where H, with a tiny ridge, is still not positive definite."""
    return _laplace_covariance(spec, u, data, penalty, supersample)[1]


def _laplace_covariance(spec: ModelSpec, u: torch.Tensor, data: ImageData, penalty, supersample: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The Laplace covariance (B, P, P) of the physical parameters and its sigma (B, P) (see
    :func:`_laplace_sigma`)."""
    hessian, jacobian = _gauss_newton(spec, u, data, penalty, supersample)
    # J^T W J is positive semi-definite; it is singular where a bounded parameter saturates (a Sersic index
    # at its limit, where u no longer moves the model): a ridge of 1e-9 of the diagonal, and 1 where it is
    # 0, gives that direction a huge variance in u, which the Jacobian of the saturated map, 0 or nearly,
    # turns into a finite one.
    diagonal = torch.diagonal(hessian, dim1=1, dim2=2)
    ridge = torch.diag_embed(torch.where(diagonal > 0, 1e-9 * diagonal, 1.0))
    chol, info = torch.linalg.cholesky_ex(hessian + ridge)
    cov_u = torch.cholesky_solve(torch.eye(u.shape[1], dtype=u.dtype).expand_as(hessian), chol)
    cov = jacobian @ cov_u @ jacobian.transpose(1, 2)
    sigma = torch.sqrt(torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0.0))
    return cov, torch.where((info == 0)[:, None], sigma, torch.full_like(sigma, float("nan")))


def _source_start(spec: ModelSpec, p: torch.Tensor, data: ImageData, image: torch.Tensor) -> torch.Tensor:
    """Source parameters (B, 6) from the pixels of ``image`` (the data less any lens light) above half the
    brightest: their flux-weighted mean and spread where the starting deflectors of ``p`` map them in the
    source plane."""
    x, y = data.grid.coordinates(1, dtype=p.dtype)
    bx, by = spec.trace(p, x, y, data.grid.pixel_scale)
    image = torch.where(data.mask, 0.0, image)
    level = image.flatten(1).median(1).values[:, None, None]
    signal = (image - level).clamp_min(0.0)
    peak = signal.flatten(1).amax(1)[:, None, None]
    w = torch.where(signal > 0.5 * peak, signal, 0.0)
    w = w / w.sum((1, 2), keepdim=True).clamp_min(1e-30)
    cx, cy = (w * bx).sum((1, 2)), (w * by).sum((1, 2))
    spread = torch.sqrt((w * ((bx - cx[:, None, None]) ** 2 + (by - cy[:, None, None]) ** 2)).sum((1, 2)))
    r = spread.clamp(2 * data.grid.pixel_scale, 1.0)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    return torch.stack([r, one, 0.05 * one, zero, cx, cy], 1)


def _check(data: ImageData, start: torch.Tensor, start_sigma: torch.Tensor, restarts: int) -> None:
    b, n = data.image.shape[0], data.grid.n_pix
    for name, value in (("image", data.image), ("sigma", data.sigma), ("mask", data.mask)):
        if value.shape != (b, n, n):
            raise LensnetShapeError(name, value.shape, f"({b}, {n}, {n}), one {n}x{n} image per lens")
    if data.psf.ndim != 3 or data.psf.shape[0] != b or data.psf.shape[1] % 2 == 0:
        raise LensnetShapeError("psf", data.psf.shape, f"({b}, K, K) with K odd")
    for name, value in (("start", start), ("start_sigma", start_sigma)):
        if value.shape != (b, N_LENS_PARAMS):
            raise LensnetShapeError(name, value.shape, f"({b}, {N_LENS_PARAMS}): theta_E, e1, e2, center_x, center_y")
        if not torch.isfinite(value).all():
            raise LensnetValueError(f"{name} holds NaN or infinite values")
    if not (start_sigma > 0).all():
        raise LensnetValueError("start_sigma must be positive")
    if int(restarts) != restarts or restarts < 1:
        raise LensnetValueError(f"restarts = {restarts}: expected a positive integer")
    if data.mask.flatten(1).all(1).any():
        raise LensnetValueError("an image is entirely masked: there is nothing to fit")
    valid = ~data.mask
    if not (torch.isfinite(data.sigma[valid]).all() and (data.sigma[valid] > 0).all()):
        raise LensnetValueError("the noise sigma must be positive and finite at every unmasked pixel "
                                "(give a noise map or the background rms)")
    if not torch.isfinite(data.image[valid]).all():
        raise LensnetValueError("the image holds NaN or infinite values at unmasked pixels: mask them")
