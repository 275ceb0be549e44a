r"""Simulated clumpy galaxies: a Sersic body plus up to five circular Gaussian clumps.

Hezaveh et al. (2017) used simulated clumpy star-forming galaxies for one third of their training
sources: 1-5 Gaussian clumps of widths 0.01-0.11 arcsec and amplitudes U[0, 1], spread on the
scale of the source. Here

.. math::  I(x, y) = I_\mathrm{Sersic}(x, y) + \sum_{k < N} A_k
           \exp\left(-\frac{(x - x_c - \delta x_k)^2 + (y - y_c - \delta y_k)^2}{2\sigma_k^2}\right),

with the clumps stored as offsets (delta x_k, delta y_k) from the body centre (x_c, y_c), so moving
the source moves its clumps. Every lens carries the same number of clump slots (:data:`MAX_CLUMPS`);
``n_clumps`` says how many are active, so the batch has no ragged shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.conventions import qphi_to_e1e2
from lensnet.errors import LensnetRangeError, LensnetShapeError, check_batch_vector, check_finite, check_range
from lensnet.sources.base import Source
from lensnet.sources.sersic import Sersic

__all__ = ["ClumpySource", "draw_clumpy_sources", "MAX_CLUMPS"]

#: Clump slots per source (the paper's maximum number of clumps).
MAX_CLUMPS = 5
_LOG2_E = 1 / math.log(2)


@dataclass(frozen=True)
class ClumpySource(Source):
    """A batch of B clumpy galaxies: a :class:`~lensnet.sources.sersic.Sersic` body plus K clumps.

    Parameters
    ----------
    body : Sersic
        The smooth component, batch B; its centre is the source centre.
    clump_dx, clump_dy : Tensor, (B, K), arcsec
        Clump centres relative to the body centre.
    clump_sigma : Tensor, (B, K), arcsec
        Gaussian standard deviation of each clump, > 0.
    clump_amplitude : Tensor, (B, K), flux / arcsec^2
        Peak surface brightness of each clump, >= 0 (same unit as the body's amplitude).
    n_clumps : Tensor, (B,), integer
        Number of active clumps, in [0, K]; slots k >= n_clumps are ignored.
    """

    body: Sersic
    clump_dx: torch.Tensor
    clump_dy: torch.Tensor
    clump_sigma: torch.Tensor
    clump_amplitude: torch.Tensor
    n_clumps: torch.Tensor

    def __post_init__(self):
        batch = self.body.batch_size
        first = self.clump_dx
        for name in ("clump_dx", "clump_dy", "clump_sigma", "clump_amplitude"):
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[0] != batch or value.shape != first.shape:
                raise LensnetShapeError(name, value.shape, f"({batch}, K) like clump_dx {tuple(first.shape)}")
            check_finite(name, value)
        check_range("clump_sigma", self.clump_sigma, min=0.0, min_open=True)
        check_range("clump_amplitude", self.clump_amplitude, min=0.0)
        n = torch.as_tensor(self.n_clumps)
        if n.shape != (batch,) or n.is_floating_point():
            raise LensnetShapeError("n_clumps", n.shape, f"({batch},) integer tensor")
        check_range("n_clumps", n, 0, first.shape[1])
        object.__setattr__(self, "n_clumps", n)

    @property
    def batch_size(self) -> int:
        return self.body.batch_size

    def active(self) -> torch.Tensor:
        """Boolean mask (B, K) of the active clump slots."""
        k = torch.arange(self.clump_dx.shape[1], device=self.n_clumps.device)
        return k[None, :] < self.n_clumps[:, None]

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Surface brightness (B, H, W), flux / arcsec^2, at source-plane x, y ((H, W) or (B, H, W), arcsec)."""
        out = self.body.surface_brightness(x, y)
        amp = self.clump_amplitude * self.active()  # inactive slots contribute exactly 0
        cx = self.body.center_x[:, None] + self.clump_dx
        cy = self.body.center_y[:, None] + self.clump_dy
        # exp(-r^2 / (2 sigma^2)) as 2^(r^2 * k): exp2 is several times faster than exp on the CPU.
        rate = -_LOG2_E / (2 * self.clump_sigma**2)
        expand = lambda t: t[:, None, None]  # noqa: E731 - (B,) -> (B, 1, 1)
        # A loop over the K slots (not over lenses) keeps memory at a few (B, H, W) buffers, updated
        # in place.
        for k in range(amp.shape[1]):
            dy = y - expand(cy[:, k])
            r2 = (x - expand(cx[:, k])).square_().addcmul_(dy, dy)
            out = out.addcmul_(expand(amp[:, k]), r2.mul_(expand(rate[:, k])).exp2_())
        return out

    def total_flux(self) -> torch.Tensor:
        """Total flux, (B,): the body's analytic flux plus 2 pi sigma_k^2 A_k for each active clump."""
        clumps = 2 * math.pi * self.clump_sigma**2 * self.clump_amplitude * self.active()
        return self.body.total_flux() + clumps.sum(1)

    def with_center(self, center_x: torch.Tensor, center_y: torch.Tensor) -> "ClumpySource":
        """The same galaxies (body and clumps) moved to new centres (B,), arcsec."""
        return ClumpySource(self.body.with_center(center_x, center_y), self.clump_dx, self.clump_dy,
                            self.clump_sigma, self.clump_amplitude, self.n_clumps)


def draw_clumpy_sources(
    batch: int,
    generator: torch.Generator,
    *,
    center_x: torch.Tensor | None = None,
    center_y: torch.Tensor | None = None,
    R_sersic_range: tuple[float, float] = (0.05, 0.3),
    n_sersic_range: tuple[float, float] = (0.5, 2.0),
    q_range: tuple[float, float] = (0.4, 1.0),
    n_clumps_range: tuple[int, int] = (1, MAX_CLUMPS),
    clump_sigma_range: tuple[float, float] = (0.01, 0.11),
    dtype: torch.dtype = torch.float32,
) -> ClumpySource:
    """Draw B random clumpy galaxies (on the generator's device).

    Body: R_sersic ~ U(R_sersic_range) arcsec, n ~ U(n_sersic_range) (disc-like, as clumpy
    star-forming galaxies are), q ~ U(q_range), orientation uniform, amplitude 1 (surface brightness
    at R_sersic). Clumps: N ~ U{n_clumps_range} (inclusive), offsets ~ Normal(0, R_sersic) per axis
    (the source scale), sigma ~ U(clump_sigma_range) arcsec, peak brightness U[0, 1] times the body's
    central brightness I_e e^{b_n}, so clumps are as prominent as the nucleus at most.

    Parameters
    ----------
    batch : int
        Number of sources B.
    generator : torch.Generator
        Source of randomness; its device is the device of the result.
    center_x, center_y : Tensor, (B,), arcsec, optional
        Source centres [0]; placement inside the caustics is done elsewhere (see ``with_center``).
    R_sersic_range, n_sersic_range, q_range, clump_sigma_range : (float, float)
        Uniform ranges described above.
    n_clumps_range : (int, int)
        Inclusive range of the number of clumps, within [0, MAX_CLUMPS].
    dtype : torch.dtype
        Floating-point type of the parameters [float32].

    Returns
    -------
    ClumpySource
    """
    lo, hi = n_clumps_range
    if not 0 <= lo <= hi <= MAX_CLUMPS:
        raise LensnetRangeError("n_clumps_range", n_clumps_range, 0, MAX_CLUMPS, "need 0 <= min <= max")
    if batch < 1:
        raise LensnetRangeError("batch", batch, 1, None, "must be a positive integer")
    device = generator.device
    kw = dict(device=device, dtype=dtype)

    def uniform(shape, bounds):
        return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(shape, generator=generator, **kw)

    zeros = torch.zeros(batch, **kw)
    center_x = zeros if center_x is None else check_batch_vector("center_x", center_x, batch)
    center_y = zeros if center_y is None else check_batch_vector("center_y", center_y, batch)
    R_sersic = uniform(batch, R_sersic_range)
    e1, e2 = qphi_to_e1e2(uniform(batch, q_range), uniform(batch, (0.0, math.pi)))
    body = Sersic(torch.ones(batch, **kw), R_sersic, uniform(batch, n_sersic_range), e1, e2, center_x, center_y)

    shape = (batch, MAX_CLUMPS)
    offsets = torch.randn((2,) + shape, generator=generator, **kw) * R_sersic[:, None]
    sigma = uniform(shape, clump_sigma_range)
    amplitude = uniform(shape, (0.0, 1.0)) * body.central_brightness()[:, None]
    n_clumps = torch.randint(lo, hi + 1, (batch,), generator=generator, device=device)
    return ClumpySource(body, offsets[0], offsets[1], sigma, amplitude, n_clumps)
