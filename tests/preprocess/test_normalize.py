"""Network-input normalisation: background to 0, smoothed peak to 1, masks excluded, the blur as conv2d's."""

import pytest
import torch
import torch.nn.functional as F

from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.preprocess.normalize import _gaussian_blur, normalize_images


def _arc_on_background(background=3.0, peak=5.0):
    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    arc = peak * torch.exp(-((x - 24) ** 2 + (y - 24) ** 2) / (2 * 4.0**2))
    return (arc + background)[None, None].double()


def test_background_and_peak():
    out = normalize_images(_arc_on_background())
    assert out[..., :6, :].abs().max() < 1e-3  # the border ring is the background
    assert out.max().item() == pytest.approx(1.0, rel=0.2)  # the smoothed peak is a little below the raw one


def test_masked_pixels_are_zero_and_ignored():
    images = _arc_on_background()
    masks = torch.zeros_like(images, dtype=torch.bool)
    masks[..., 20:28, 20:28] = True
    images[masks] = 1e6  # a masked cosmic ray must not set the scale
    out = normalize_images(images, masks)
    assert (out[masks] == 0).all() and out.max().item() > 0.5  # the scale comes from unmasked arc pixels


def test_blur_matches_conv2d_with_replicated_edges():
    images = torch.randn(2, 1, 20, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma, radius = 1.5, 5
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    want = F.conv2d(F.conv2d(padded, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    torch.testing.assert_close(_gaussian_blur(images, sigma), want)


def test_bad_input_is_named():
    with pytest.raises(LensnetShapeError, match="images"):
        normalize_images(torch.zeros(8, 8))
    with pytest.raises(LensnetShapeError, match="masks"):
        normalize_images(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(LensnetValueError, match="images"):
        normalize_images(torch.full((1, 1, 8, 8), float("nan")))
