"""What a likelihood fit needs to know about a simulated batch: its noise, PSF and masks, as drawn."""

from __future__ import annotations

import math

import torch

from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.refine.model import ImageData
from lensnet.simulate.simulator import SimulatedBatch

__all__ = ["simulated_image_data"]


def simulated_image_data(batch: SimulatedBatch, grid: PixelGrid) -> ImageData:
    """:class:`ImageData` of a simulated batch (one band): the observed images, the drawn noise
    (Gaussian rms, plus the Poisson variance of the observed counts where shot noise was applied), the
    masks and each image's Gaussian PSF (a delta function where none was applied).

    Cosmic rays and hot pixels are not masked here: the fit's sigma clipping finds them, as it must on
    real data.
    """
    record = batch.record
    image = batch.observed[:, 0].double()
    rms = torch.where(record["noise_applied"], record["noise_rms"], 0.0).double()[:, None, None]
    counts = record["poisson_counts"].double()[:, None, None]
    shot = torch.where(record["poisson_applied"][:, None, None], image.clamp_min(0.0) / counts, 0.0)
    sigma = torch.sqrt(rms ** 2 + shot).clamp_min(1e-6)
    psf_sigma = torch.where(record["psf_applied"], record["psf_sigma_pix"], 1e-3).double()
    half = max(1, math.ceil(4 * float(psf_sigma.max())))
    return ImageData(image, sigma, batch.masks[:, 0].cpu(), gaussian_kernels(psf_sigma, half), grid)
