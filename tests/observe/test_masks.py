"""Random masks: the arc-flux limit always holds, masks are discs of the right size and are returned."""

import math

import pytest
import torch

from lensnet.errors import LensnetConfigError, LensnetRangeError
from lensnet.observe.masks import MaskConfig, random_masks


def _ring(b, n=64, dtype=torch.float32):
    y, x = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype), indexing="ij")
    r = ((x - n / 2) ** 2 + (y - n / 2) ** 2).sqrt()
    return torch.exp(-(((r - n / 4) / 2) ** 2))[None, None].repeat(b, 1, 1, 1)


@pytest.mark.parametrize("limit", [0.0, 0.1, 0.25])
def test_flux_limit_always_holds(generator, limit):
    arc = _ring(256)
    images = arc + 0.1
    cfg = MaskConfig(probability=1.0, max_flux_fraction=limit, on_arc_probability=1.0)
    out, mask, record = random_masks(images, arc, cfg, generator, pixel_scale=0.04)
    assert mask.shape == (256, 1, 64, 64) and mask.dtype == torch.bool
    covered = (arc * mask).sum(dim=(1, 2, 3)) / arc.sum(dim=(1, 2, 3))
    assert (covered <= limit + 1e-6).all()
    assert torch.allclose(covered, record["mask_flux_fraction"], atol=1e-6)
    hidden = mask.expand_as(out)
    assert (out[hidden] == 0).all() and torch.equal(out[~hidden], images[~hidden])
    assert (record["n_masks"] <= record["n_masks_drawn"]).all()
    if limit > 0:  # discs aimed at the arc fill the allowance
        assert covered.mean() > 0.6 * limit


def test_disc_size_follows_pixel_scale(generator):
    cfg = MaskConfig(probability=1.0, count_range=(1, 1), on_arc_probability=0.0)
    images = torch.zeros(64, 1, 64, 64)
    for pixel_scale in (0.04, 0.05):
        _, mask, record = random_masks(images, images, cfg, generator, pixel_scale=pixel_scale)
        area = mask.sum(dim=(1, 2, 3)).float()
        radius = 0.2 / pixel_scale
        assert (record["n_masks"] == 1).all()
        assert area.max().item() == pytest.approx(math.pi * radius**2, rel=0.2)  # lattice count of a disc
        assert area.median().item() == pytest.approx(math.pi * radius**2, rel=0.2)


def test_masks_only_where_applied(generator):
    arc = _ring(128)
    out, mask, record = random_masks(arc, arc, MaskConfig(), generator, pixel_scale=0.04)
    applied = record["masks_applied"]
    assert 0.35 < applied.float().mean() < 0.65
    assert not mask[~applied].any() and torch.equal(out[~applied], arc[~applied])
    n = record["n_masks_drawn"][applied]
    assert ((n >= 1) & (n <= 29)).all()


def test_bad_arguments(generator):
    with pytest.raises(LensnetConfigError, match="max_flux_fraction"):
        MaskConfig(max_flux_fraction=1.2)
    with pytest.raises(LensnetConfigError, match="radius_arcsec"):
        MaskConfig(radius_arcsec=0)
    with pytest.raises(LensnetRangeError, match="pixel_scale"):
        random_masks(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), MaskConfig(), generator, pixel_scale=0.0)
