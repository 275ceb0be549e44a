"""Prior of the SIE parameters of simulated lenses (REFERENCE.md, from the paper's released code)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.conventions import LensParams, qphi_to_e1e2
from lensnet.errors import LensnetConfigError

__all__ = ["LensPrior"]


@dataclass(frozen=True)
class LensPrior:
    """Independent uniform priors on the SIE parameters.

    Parameters
    ----------
    theta_E_range : (float, float)
        Einstein radius, arcsec [0.1, 3.0].
    one_minus_q_range : (float, float)
        1 - q, q the axis ratio [0, 0.9].
    center_range : float
        Lens centre uniform in [-c, c] arcsec on each axis [0.28, the whole-pixel re-centring shifts
        of the released code].

    The major-axis angle is uniform in [0, pi).
    """

    theta_E_range: tuple[float, float] = (0.1, 3.0)
    one_minus_q_range: tuple[float, float] = (0.0, 0.9)
    center_range: float = 0.28

    def __post_init__(self):
        lo, hi = self.theta_E_range
        if not 0 < lo <= hi:
            raise LensnetConfigError(f"lens.theta_E_range = {list(self.theta_E_range)}: expected 0 < min <= max (arcsec)")
        lo, hi = self.one_minus_q_range
        if not 0 <= lo <= hi < 1:
            raise LensnetConfigError(f"lens.one_minus_q_range = {list(self.one_minus_q_range)}: "
                                     "expected 0 <= min <= max < 1 (q = 1 - value must stay positive)")
        if self.center_range < 0:
            raise LensnetConfigError(f"lens.center_range = {self.center_range}: expected >= 0 arcsec")

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32) -> LensParams:
        """Draw ``batch`` lenses on ``device`` (default: the generator's)."""
        device = device or generator.device
        u = torch.rand(batch, 5, generator=generator, device=device, dtype=dtype)
        span = lambda lo_hi, v: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * v  # noqa: E731
        theta_E = span(self.theta_E_range, u[:, 0])
        q = 1 - span(self.one_minus_q_range, u[:, 1])
        e1, e2 = qphi_to_e1e2(q, math.pi * u[:, 2])
        c = self.center_range
        return LensParams(theta_E, e1, e2, c * (2 * u[:, 3] - 1), c * (2 * u[:, 4] - 1))
