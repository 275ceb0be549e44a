"""The posterior of a refined fit sampled by MCMC: emcee's affine-invariant ensemble (Foreman-Mackey et al.
2013, PASP 125, 306), every walker's model rendered in one batch.

The log posterior of a lens's non-linear parameters p (physical, :attr:`ModelSpec.names`) is

    ln P(p) = -chi^2(p) / 2 - sum_k (p_k - mu_k)^2 / (2 s_k^2)   (the prior term only with the network's prior)

with the amplitudes and background solved for at every p (the profile likelihood, as the fit), -inf outside
the ranges the fit allows (:meth:`ModelSpec.in_bounds`). The walkers start from the Laplace approximation
N(p_best, C) of the fit, so the burn-in is short; the chain's medians and 68% / 95% intervals are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import emcee
import numpy as np
import torch
from tqdm.auto import tqdm

from lensnet.errors import LensnetValueError
from lensnet.refine.model import N_LENS_PARAMS, ImageData, ModelSpec, model_images

__all__ = ["Posterior", "sample_posterior"]

#: Walkers per parameter: emcee needs at least two; started from the Laplace approximation, two mix well
#: enough (the 68% widths within 20% of Laplace on a Gaussian posterior) at half the time of four.
WALKERS_PER_PARAM = 2


@dataclass
class Posterior:
    """Posterior summaries of B lenses, each (B, P) in the order of ``spec.names``.

    Attributes
    ----------
    median, lo68, hi68, lo95, hi95 : Tensor
        The 50th, 16th, 84th, 2.5th and 97.5th percentiles of each parameter.
    acceptance : Tensor, (B,)
        Mean acceptance fraction of the walkers (0.2-0.5 is healthy).
    samples : Tensor, (B, S, P)
        The chains after burn-in, flattened over walkers.
    """

    median: torch.Tensor
    lo68: torch.Tensor
    hi68: torch.Tensor
    lo95: torch.Tensor
    hi95: torch.Tensor
    acceptance: torch.Tensor
    samples: torch.Tensor

    @property
    def sigma(self) -> torch.Tensor:
        """Half the central 68% interval, (B, P): the 1-sigma of a Gaussian posterior."""
        return (self.hi68 - self.lo68) / 2


def sample_posterior(spec: ModelSpec, data: ImageData, params: torch.Tensor, covariance: torch.Tensor, *,
                     prior: tuple[torch.Tensor, torch.Tensor] | None = None, steps: int = 500, burn: int = 150,
                     walkers: int | None = None, supersample: int = 1, seed: int = 0,
                     progress: bool = False) -> Posterior:
    """Sample the posterior of each lens by emcee (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
        The model.
    data : ImageData
        B images (with the fit's final mask).
    params : Tensor, (B, P)
        The fit's optimum (physical parameters).
    covariance : Tensor, (B, P, P)
        Its Laplace covariance, where the walkers start; NaN or non-positive rows fall back to 1e-3 of the
        parameter.
    prior : (mu, s) of Tensors (B, 5), optional
        The network's Gaussian prior on the SIE parameters [None: flat].
    steps, burn : int
        Steps per walker, and how many of them are discarded [500, 150].
    walkers : int, optional
        Walkers per lens [:data:`WALKERS_PER_PARAM` x P].
    supersample : int
        Sub-pixels per pixel side of the model [1].
    seed : int
        Seed of the walkers' starts and moves [0].
    progress : bool
        Show a progress bar over the lenses [False].

    Raises
    ------
    LensnetValueError
        If the steps, burn-in or walkers are not usable.
    """
    b, n_params = params.shape
    walkers = walkers or WALKERS_PER_PARAM * n_params + 2
    if not (int(steps) == steps and 0 <= burn < steps):
        raise LensnetValueError(f"steps = {steps}, burn = {burn}: expected 0 <= burn < steps")
    if walkers < 2 * n_params or walkers % 2:
        raise LensnetValueError(f"walkers = {walkers}: emcee needs an even number, at least 2 x {n_params} parameters")
    rng = np.random.default_rng(seed)
    chains, acceptance = [], []
    for i in tqdm(range(b), desc="sampling", unit="lens", disable=not progress):
        # The models in float32 (twice as fast), chi^2 summed in float64.
        batch = data.take(torch.full((walkers,), i)).to(torch.float32)
        # emcee asks for all walkers once, then half of them per move: each batch size copied once.
        sized = {walkers: batch, walkers // 2: batch.take(torch.arange(walkers // 2))}
        mu_s = None if prior is None else (prior[0][i:i + 1].double(), prior[1][i:i + 1].double())

        def log_prob(points: np.ndarray) -> np.ndarray:
            p = torch.from_numpy(points)
            ok = spec.in_bounds(p)
            with torch.no_grad():
                rows = sized[len(p)] if len(p) in sized else batch.take(torch.arange(len(p)))
                model, _, _ = model_images(torch.where(ok[:, None], p, params[i].double()).float(), rows, supersample,
                                           spec)
                value = -0.5 * (rows.weight * (rows.image - model) ** 2).double().sum((1, 2))
                if mu_s is not None:
                    value = value - 0.5 * (((p[:, :N_LENS_PARAMS] - mu_s[0]) / mu_s[1]) ** 2).sum(1)
            return torch.where(ok, value, -math.inf).numpy()

        start = _starts(params[i].double(), covariance[i].double(), walkers, spec, rng)
        sampler = emcee.EnsembleSampler(walkers, n_params, log_prob, vectorize=True)
        sampler.random_state = np.random.RandomState(int(rng.integers(2 ** 31))).get_state()
        sampler.run_mcmc(start, int(steps), progress=False)
        chains.append(torch.from_numpy(sampler.get_chain(discard=int(burn), flat=True)))
        acceptance.append(float(np.mean(sampler.acceptance_fraction)))
    samples = torch.stack(chains)
    q = torch.quantile(samples, torch.tensor([0.5, 0.16, 0.84, 0.025, 0.975], dtype=samples.dtype), dim=1)
    return Posterior(*q.unbind(0), torch.tensor(acceptance), samples)


def _starts(best: torch.Tensor, covariance: torch.Tensor, walkers: int, spec: ModelSpec,
            rng: np.random.Generator) -> np.ndarray:
    """Walkers (walkers, P) drawn from N(best, C) (a fallback diagonal where C is not usable), redrawn until
    every one is inside the model's ranges."""
    p = best.shape[0]
    fallback = torch.diag((1e-3 * best.abs() + 1e-4) ** 2)
    cov = torch.where(torch.isfinite(covariance), covariance, 0.0)
    chol, info = torch.linalg.cholesky_ex(cov + 1e-12 * torch.eye(p, dtype=cov.dtype))
    if info != 0 or not (torch.diagonal(cov) > 0).all():
        chol = torch.linalg.cholesky(fallback)
    out = np.empty((walkers, p))
    filled = 0
    for _ in range(100):
        draws = best + torch.from_numpy(rng.standard_normal((walkers, p))) @ chol.T
        good = draws[spec.in_bounds(draws)].numpy()[: walkers - filled]
        out[filled: filled + len(good)] = good
        filled += len(good)
        if filled == walkers:
            return out
        chol = chol / 2  # the Laplace ellipsoid crosses a bound: draw from a tighter one
    raise LensnetValueError("cannot start the MCMC walkers inside the model's ranges around the fit's optimum")
