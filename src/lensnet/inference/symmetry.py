"""The eight symmetries of a square lens image, and estimates averaged over them.

Rotating a square pixel grid by a multiple of 90 degrees or reflecting it about an axis or a
diagonal (the dihedral group D4) maps the grid onto itself, because the origin is the centre of the
image (:mod:`lensnet.conventions`). Each of the eight maps is a signed permutation M of sky
coordinates, r' = M r, and turns the image of a lens into the image of the transformed lens:

- Einstein radius: theta_E' = theta_E;
- centre: c' = M c;
- ellipticity, a spin-2 quantity: E' = M E M^T with E = [[e1, e2], [e2, -e1]]. A rotation by a
  turns 2 phi by 2 a; a reflection conjugates e1 + i e2.

So the parameters map by a 5 x 5 signed permutation P(M). A network is only approximately
equivariant; estimating each of the eight views and mapping the estimates back with P^T averages
out part of its error (test-time augmentation, e.g. Krizhevsky et al. 2012; for lenses, the
simulated sky is isotropic, so every view is as likely as the original).
"""

from __future__ import annotations

from typing import Callable

import torch

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetShapeError

__all__ = ["DIHEDRAL_GROUP", "parameter_map", "symmetrized_estimate", "transform_images", "transform_params"]

#: The eight signed 2 x 2 permutations M of (x, y): identity, rotations by 90, 180 and 270 degrees
#: counter-clockwise, and the reflections x -> -x, y -> -y and about the two diagonals.
DIHEDRAL_GROUP: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((1, 0), (0, 1)), ((0, -1), (1, 0)), ((-1, 0), (0, -1)), ((0, 1), (-1, 0)),
    ((-1, 0), (0, 1)), ((1, 0), (0, -1)), ((0, 1), (1, 0)), ((0, -1), (-1, 0)),
)


def transform_images(images: torch.Tensor, m) -> torch.Tensor:
    """The images (..., H, W) of the sky mapped by r' = M r: I'(r) = I(M^-1 r).

    Parameters
    ----------
    images : Tensor, (..., H, W)
        Images in lensnet's axis convention (x along columns, y along rows, origin at the centre).
    m : 2 x 2 nested sequence of int
        A signed permutation from :data:`DIHEDRAL_GROUP`.

    Raises
    ------
    LensnetShapeError
        If ``m`` swaps x and y and the images are not square.
    """
    (a, b), (c, d) = m
    if a == 0:  # x' = b y, y' = c x: transpose, then I'(x', y') = J(b x', c y')
        if images.shape[-1] != images.shape[-2]:
            raise LensnetShapeError("images", images.shape, "(..., N, N): a 90-degree rotation needs a square image")
        images = images.transpose(-2, -1)
        sx, sy = b, c
    else:  # x' = a x, y' = d y
        sx, sy = a, d
    dims = [dim for dim, sign in ((-1, sx), (-2, sy)) if sign < 0]
    return images.flip(dims) if dims else images


def parameter_map(m, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 5 x 5 signed permutation P with p' = P p for parameters in :data:`PARAM_NAMES` order."""
    mm = torch.tensor(m, dtype=torch.float64)
    p = torch.zeros(len(PARAM_NAMES), len(PARAM_NAMES), dtype=torch.float64)
    p[0, 0] = 1.0
    p[3:5, 3:5] = mm
    for column, (e1, e2) in ((1, (1.0, 0.0)), (2, (0.0, 1.0))):
        spin2 = mm @ torch.tensor([[e1, e2], [e2, -e1]], dtype=torch.float64) @ mm.T
        p[1, column], p[2, column] = spin2[0, 0], spin2[0, 1]
    return p.to(dtype=dtype, device=device)


def transform_params(params: torch.Tensor, m) -> torch.Tensor:
    """Parameters (B, 5) of the lenses whose images :func:`transform_images` gives."""
    return params @ parameter_map(m, params.dtype, params.device).T


def symmetrized_estimate(estimate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                         images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and 1-sigma uncertainties (B, 5) averaged over the eight views of ``images``.

    ``estimate`` maps images (B, C, N, N) to (mean, std), each (B, 5). The estimate of every view is
    mapped back to the original frame with P^T; the mean is the average of the eight means and the
    variance the average of the eight variances. The views share one realisation of the noise, so
    their spread is not an independent error: adding it (the variance of an equal mixture) made the
    shipped model's 68% intervals, already a little conservative, wider still on 1,000 test lenses.
    The result is exactly equivariant: the estimate for a transformed image is the transformed
    estimate.
    """
    means, variances = [], []
    for m in DIHEDRAL_GROUP:
        mean, std = estimate(transform_images(images, m))
        back = parameter_map(m, mean.dtype, mean.device)  # p = P^T p'
        means.append(mean @ back)
        variances.append((std ** 2) @ back.abs())
    return torch.stack(means).mean(0), torch.stack(variances).mean(0).sqrt()
