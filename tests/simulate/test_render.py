"""Ray-shooting renderer against lenstronomy's ImageModel, flux and surface-brightness conservation."""

import importlib

import numpy as np
import pytest
import torch
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetShapeError
from lensnet.lensing import SIE, PixelGrid
from lensnet.simulate import render, render_unlensed
from lensnet.sources import Sersic, Source

F64 = torch.float64
# theta_E, e1, e2, center_x, center_y: round, elliptical, strongly elliptical and off-centre.
LENSES = [(1.0, 0.0, 0.0, 0.0, 0.0), (1.2, 0.1, -0.1, 0.05, 0.0), (0.7, -0.3, 0.25, -0.1, 0.12)]
# amp, R_sersic, n_sersic, e1, e2, center_x, center_y
SOURCES = [(1.5, 0.2, 1.5, 0.1, 0.05, 0.1, 0.05), (1.0, 0.1, 4.0, 0.0, 0.0, 0.0, 0.0),
           (2.0, 0.3, 0.7, -0.2, 0.3, -0.15, 0.2)]


def _batch(dtype=F64):
    lens = SIE(LensParams(*torch.tensor(LENSES, dtype=dtype).T))
    return lens, Sersic(*torch.tensor(SOURCES, dtype=dtype).T)


def _lenstronomy_model(grid: PixelGrid, supersample: int, lensed=True) -> ImageModel:
    n, scale = grid.n_pix, grid.pixel_scale
    corner = -(n - 1) / 2 * scale
    data = ImageData(image_data=np.zeros((n, n)), transform_pix2angle=np.diag([scale, scale]),
                     ra_at_xy_0=corner, dec_at_xy_0=corner)
    return ImageModel(data, PSF(psf_type="NONE"), lens_model_class=LensModel(["SIE"] if lensed else []),
                      source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                      kwargs_numerics={"supersampling_factor": supersample})


@pytest.mark.parametrize("supersample", [1, 2, 3])
def test_lensed_sersic_matches_lenstronomy(supersample):
    """float64, identical sub-pixel centres and binning: agreement to 1e-6 of each image's peak.

    The sole difference is the deflection, which matches lenstronomy's to ~5e-9 arcsec (lensnet's
    SIE takes the round lens as q = 1 - 1e-8). Times the source gradient this is ~3e-9 of the peak
    in most pixels, but ~1.4e-7 where a ray lands 0.002'' from the centre of the cuspy n = 1.5
    source behind the round lens (s = 1).
    """
    grid = PixelGrid(48, 0.06)
    lens, source = _batch()
    images = render(lens, source, grid, supersample)
    model = _lenstronomy_model(grid, supersample)
    for b, (kl, ks) in enumerate(zip(lens.params.to_lenstronomy(), source.to_lenstronomy())):
        ref = model.image(kwargs_lens=[kl], kwargs_source=[ks])
        np.testing.assert_allclose(images[b].numpy(), ref, rtol=0, atol=1e-6 * ref.max())


def test_lensed_sersic_float32_matches_lenstronomy():
    """float32 end to end: 1e-4 of the peak (float32 rounding of positions of ~1'' amplified by the
    source gradient, and of the exponent)."""
    grid = PixelGrid(48, 0.06)
    lens, source = _batch(torch.float32)
    images = render(lens, source, grid, 2)
    assert images.dtype == torch.float32
    model = _lenstronomy_model(grid, 2)
    for b, (kl, ks) in enumerate(zip(lens.params.to_lenstronomy(), source.to_lenstronomy())):
        ref = model.image(kwargs_lens=[kl], kwargs_source=[ks])
        np.testing.assert_allclose(images[b].numpy(), ref, rtol=0, atol=1e-4 * ref.max())


@pytest.mark.parametrize("supersample", [1, 3])
def test_unlensed_sersic_matches_lenstronomy(supersample):
    """Without a lens: lenstronomy's LightModel times the pixel area at s = 1, its ImageModel at s > 1."""
    grid = PixelGrid(32, 0.05)
    _, source = _batch()
    images = render_unlensed(source, grid, supersample)
    model = _lenstronomy_model(grid, supersample, lensed=False)
    x, y = (c.numpy() for c in grid.coordinates(dtype=F64))
    for b, ks in enumerate(source.to_lenstronomy()):
        if supersample == 1:
            ref = LightModel(["SERSIC_ELLIPSE"]).surface_brightness(x, y, [ks]) * grid.pixel_scale**2
        else:
            ref = model.image(kwargs_lens=[], kwargs_source=[ks])
        np.testing.assert_allclose(images[b].numpy(), ref, rtol=1e-12, atol=1e-14 * ref.max())


@pytest.mark.parametrize("n_sersic, supersample, rtol", [(0.5, 2, 1e-10), (1.0, 4, 1e-3)])
def test_unlensed_flux_equals_analytic_total_flux(n_sersic, supersample, rtol):
    """A compact source well inside the field: the pixel sum is its total flux.

    n = 0.5 (a Gaussian) is integrated exactly by the sub-pixel midpoint rule; the cusp of the
    n = 1 profile (R_e = 2 pixels) leaves a 1e-3 sampling error at s = 4.
    """
    one = torch.ones(2, dtype=F64)
    source = Sersic(one, 0.1 * one, n_sersic * one, torch.tensor([0.0, 0.3], dtype=F64),
                    torch.tensor([0.0, -0.2], dtype=F64), torch.tensor([0.0, 0.12], dtype=F64), 0.0 * one)
    flux = render_unlensed(source, PixelGrid(64, 0.05), supersample).sum((1, 2))
    torch.testing.assert_close(flux, source.total_flux(), rtol=rtol, atol=0)


class _Uniform(Source):
    def __init__(self, value, batch):
        self.value, self.batch_size = value, batch

    def surface_brightness(self, x, y):
        return torch.full_like(x.expand(self.batch_size, *x.shape[-2:]), self.value)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_lensing_conserves_surface_brightness(dtype):
    """A uniform source of surface brightness c gives c x pixel_scale^2 in every pixel."""
    lens, _ = _batch(dtype)
    grid = PixelGrid(32, 0.07)
    images = render(lens, _Uniform(2.5, 3), grid, 2)
    torch.testing.assert_close(images, torch.full((3, 32, 32), 2.5 * 0.07**2, dtype=dtype))


def test_total_magnification_of_a_compact_source_behind_an_sis():
    """SIS, source at beta < theta_E: two images of total magnification <2 theta_E / |beta|>,
    the average taken over the source light (computed here on a fine source-plane grid)."""
    one, zero = torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    lens = SIE(LensParams(one, zero, zero, zero, zero))
    source = Sersic(one, 0.05 * one, 0.5 * one, zero, zero, 0.5 * one, zero)
    grid = PixelGrid(64, 0.08)
    mu = render(lens, source, grid, 4).sum() / render_unlensed(source, grid, 4).sum()
    axis = (torch.arange(1000, dtype=F64) - 499.5) * 0.001
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    light = source.surface_brightness(x + 0.5, y)[0]
    expected = (light * 2 / torch.sqrt((x + 0.5) ** 2 + y**2)).sum() / light.sum()
    assert mu.item() == pytest.approx(expected.item(), rel=1e-5)


def test_tiling_does_not_change_the_result():
    """Any chunk size (here tiles of a few pixels, many per row) gives the same image."""
    lens, source = _batch()
    grid = PixelGrid(20, 0.1)
    whole = render(lens, source, grid, 2, chunk_elements=10**9)
    tiled = render(lens, source, grid, 2, chunk_elements=3 * 4 * 7)
    torch.testing.assert_close(tiled, whole, rtol=1e-13, atol=0)


def test_gradients_reach_the_lens_parameters():
    """Autograd through the tiled renderer (elliptical lenses: the SIE's e1, e2 -> q, phi has no
    gradient at e = 0)."""
    params = torch.tensor(LENSES[1:], dtype=F64).T.clone().requires_grad_(True)
    source = Sersic(*torch.tensor(SOURCES[1:], dtype=F64).T)
    render(SIE(LensParams(*params)), source, PixelGrid(16, 0.1), 2, chunk_elements=200).sum().backward()
    assert torch.isfinite(params.grad).all() and params.grad.abs().sum() > 0


@pytest.mark.parametrize("threshold", [1e-3, 1e-2])
def test_adaptive_supersampling_stays_within_its_threshold_of_lenstronomy(threshold):
    """Pixels left at their centre sample are faint: the image moves by at most 2 x threshold of its
    peak (the curvature term of a pixel that is itself below threshold) and its flux by less."""
    grid = PixelGrid(48, 0.06)
    lens, source = _batch()
    images = render(lens, source, grid, 2, threshold=threshold)
    model = _lenstronomy_model(grid, 2)
    for b, (kl, ks) in enumerate(zip(lens.params.to_lenstronomy(), source.to_lenstronomy())):
        ref = model.image(kwargs_lens=[kl], kwargs_source=[ks])
        np.testing.assert_allclose(images[b].numpy(), ref, rtol=0, atol=2 * threshold * ref.max())
        assert images[b].sum().item() == pytest.approx(ref.sum(), rel=threshold)


def test_adaptive_supersampling_with_a_tiny_threshold_is_exact(monkeypatch):
    """Every pixel brighter than 1e-12 of the peak supersampled: the exact image; grouping lenses
    (one per group or all together) changes nothing."""
    lens, source = _batch()
    grid = PixelGrid(24, 0.1)
    exact = render(lens, source, grid, 3)
    adaptive = render(lens, source, grid, 3, threshold=1e-12)
    torch.testing.assert_close(adaptive, exact, rtol=1e-12, atol=1e-14 * exact.max().item())
    # The module, not the function that the package exports under the same name.
    monkeypatch.setattr(importlib.import_module("lensnet.simulate.render"), "ADAPTIVE_GROUP", 1)
    torch.testing.assert_close(render(lens, source, grid, 3, threshold=1e-12, chunk_elements=50), adaptive,
                               rtol=1e-13, atol=0)


@pytest.mark.parametrize("threshold", [-0.1, 1.0, float("nan")])
def test_bad_threshold_raises(threshold):
    lens, source = _batch()
    with pytest.raises(LensnetRangeError, match="threshold"):
        render(lens, source, PixelGrid(8, 0.1), 2, threshold=threshold)


@pytest.mark.parametrize("supersample", [0, -1, 1.5, True])
def test_bad_supersample_raises(supersample):
    lens, source = _batch()
    with pytest.raises(LensnetRangeError, match="supersample"):
        render(lens, source, PixelGrid(8, 0.1), supersample)


def test_batch_mismatch_and_bad_chunk_raise():
    lens, source = _batch()
    with pytest.raises(LensnetShapeError, match="source"):
        render(lens, _Uniform(1.0, 2), PixelGrid(8, 0.1))
    with pytest.raises(LensnetRangeError, match="chunk_elements"):
        render(lens, source, PixelGrid(8, 0.1), chunk_elements=0)
