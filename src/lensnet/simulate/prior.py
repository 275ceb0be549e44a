"""Prior of the SIE parameters of simulated lenses (Hezaveh et al. 2017, Methods, and its released code).

theta_E ~ U[0.1, 3.0] arcsec; 1 - q ~ U[0, 0.9]; major-axis angle phi ~ U[0, pi); lens centre uniform
in a square of half-side 0.28 arcsec about the image centre (the paper's network sees the lens
within about that distance, from whole-pixel re-centring shifts). No external shear. The draws are
converted to lensnet's (e1, e2) with :func:`lensnet.conventions.qphi_to_e1e2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.conventions import LensParams, qphi_to_e1e2
from lensnet.errors import LensnetRangeError, LensnetValueError

__all__ = ["LensPrior"]


@dataclass(frozen=True)
class LensPrior(Config):
    """Independent uniform priors on the SIE parameters.

    Parameters
    ----------
    theta_E_range : (float, float)
        Einstein radius interval, arcsec, 0 < min <= max [0.1, 3.0].
    one_minus_q_range : (float, float)
        Interval of 1 - q, q the axis ratio (minor/major), 0 <= min <= max < 1 [0, 0.9].
    center_range : float
        Half-side of the square in which the lens centre is uniform, arcsec, >= 0 [0.28].

    Raises
    ------
    LensnetConfigError
        If a range is malformed or outside its allowed interval; the message names the field.

    Notes
    -----
    The major-axis angle phi is uniform in [0, pi) (an ellipse is symmetric under phi -> phi + pi),
    so (e1, e2) is isotropic and ``|e| = (1 - q) / (1 + q)``.

    Examples
    --------
    >>> import torch
    >>> params = LensPrior().sample(4, torch.Generator().manual_seed(0))
    >>> params.batch_size, bool((params.theta_E >= 0.1).all())
    (4, True)
    """

    theta_E_range: tuple[float, float] = setting((0.1, 3.0), min=0.0, min_open=True)
    one_minus_q_range: tuple[float, float] = setting((0.0, 0.9), min=0.0, max=1.0, max_open=True)
    center_range: float = setting(0.28, min=0.0)

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32) -> LensParams:
        """Draw ``batch`` lenses.

        Parameters
        ----------
        batch : int
            Number of lenses B, >= 1.
        generator : torch.Generator
            Source of randomness; must live on ``device``.
        device : str or torch.device, optional
            Where to put the parameters [the generator's device].
        dtype : torch.dtype
            Floating-point dtype [float32].

        Returns
        -------
        LensParams
            theta_E, e1, e2, center_x, center_y, each (B,), arcsec where dimensional.

        Raises
        ------
        LensnetRangeError
            If ``batch`` is not a positive integer.
        LensnetValueError
            If ``dtype`` is not floating point or the generator is on another device.
        """
        if isinstance(batch, bool) or int(batch) != batch or batch < 1:
            raise LensnetRangeError("batch", batch, 1, None, "the number of lenses must be a positive integer")
        device = torch.device(device) if device is not None else generator.device
        if not dtype.is_floating_point:
            raise LensnetValueError(f"dtype must be a floating-point dtype, got {dtype}")
        if generator.device.type != device.type:
            raise LensnetValueError(f"generator is on {generator.device} but the parameters go to {device}; "
                                    "create the generator on the same device")
        u = torch.rand(int(batch), 5, generator=generator, device=device, dtype=dtype)
        theta_E = _lerp(self.theta_E_range, u[:, 0])
        q = 1 - _lerp(self.one_minus_q_range, u[:, 1])
        e1, e2 = qphi_to_e1e2(q, math.pi * u[:, 2])
        c = self.center_range
        return LensParams(theta_E, e1, e2, c * (2 * u[:, 3] - 1), c * (2 * u[:, 4] - 1))


def _lerp(interval: tuple[float, float], u: torch.Tensor) -> torch.Tensor:
    """Map U[0, 1) draws ``u`` onto [min, max)."""
    lo, hi = interval
    return lo + (hi - lo) * u
