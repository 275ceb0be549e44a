"""The pixelated source: its lensed images are lenstronomy's INTERPOL source, the inversion reproduces a
known source on a noiseless image, and the evidence fit refines a lens."""

import numpy as np
import pytest
import torch
from lenstronomy.Data.imaging_data import ImageData as LenstronomyData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from lensnet.errors import LensnetValueError
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.refine import ImageData, refine_lenses
from lensnet.refine.model import unit_images
from lensnet.refine.pixelated import (SourcePlaneGrid, Window, fit_region, invert, lensed_pixel_images,
                                      regularisation_matrix, source_grid_around)
from lensnet.sources.sersic import sersic_profile

F64 = torch.float64
GRID = PixelGrid(48, 0.1)
# theta_E, e1, e2, center_x, center_y | R_sersic, n_sersic, e1, e2, center_x, center_y
TRUTH = torch.tensor([[1.1, 0.1, -0.05, 0.03, -0.02, 0.2, 1.0, 0.1, 0.05, 0.05, 0.02],
                      [0.9, -0.15, 0.1, -0.05, 0.04, 0.25, 1.5, -0.1, 0.0, -0.1, 0.05]], dtype=F64)
SIDE = 10


def _data(image, sigma=1e-3, psf_sigma=1.0):
    psf = gaussian_kernels(torch.full((len(image),), psf_sigma, dtype=F64), 4)
    return ImageData(image, torch.full_like(image, sigma), torch.zeros_like(image, dtype=torch.bool), psf, GRID)


def _source_grid():
    return SourcePlaneGrid(TRUTH[:, 9:11].clone(), torch.tensor([0.6, 0.7], dtype=F64), SIDE)


def _blob(grid):
    """A smooth source on the grid, zero on its two outer rings of pixels."""
    x, y = grid.coordinates()
    r2 = (x - grid.center[:, 0, None, None]) ** 2 + (y - grid.center[:, 1, None, None]) ** 2
    blob = 3.0 * torch.exp(-0.5 * r2 / 0.15 ** 2)
    blob[:, :2], blob[:, -2:], blob[:, :, :2], blob[:, :, -2:] = 0, 0, 0, 0
    return blob


def test_lensed_pixel_images_are_lenstronomys_interpolated_source():
    grid = _source_grid()
    source = _blob(grid)
    data = _data(torch.zeros(2, 48, 48, dtype=F64))
    ours = torch.einsum("bj,bjhw->bhw", source.flatten(1), lensed_pixel_images(TRUTH[:, :5], data, grid))
    corner = -(48 - 1) / 2 * GRID.pixel_scale
    lenstronomy_data = LenstronomyData(image_data=np.zeros((48, 48)), transform_pix2angle=np.diag([0.1, 0.1]),
                                       ra_at_xy_0=corner, dec_at_xy_0=corner)
    for i in range(2):
        model = ImageModel(lenstronomy_data, PSF(psf_type="PIXEL", kernel_point_source=data.psf[i].numpy()),
                           lens_model_class=LensModel(["SIE"]), source_model_class=LightModel(["INTERPOL"]),
                           kwargs_numerics={"supersampling_factor": 1})
        t = TRUTH[i].tolist()
        kwargs_lens = [{"theta_E": t[0], "e1": t[1], "e2": t[2], "center_x": t[3], "center_y": t[4]}]
        kwargs_source = [{"image": source[i].numpy(), "amp": 1.0, "center_x": float(grid.center[i, 0]),
                          "center_y": float(grid.center[i, 1]), "phi_G": 0.0, "scale": float(grid.pixel_scale[i])}]
        theirs = model.image(kwargs_lens, kwargs_source)
        np.testing.assert_allclose(ours[i].numpy(), theirs, rtol=0, atol=1e-4 * theirs.max())


def test_a_window_computes_the_same_pixels_as_the_whole_image():
    grid = _source_grid()
    data = _data(torch.zeros(2, 48, 48, dtype=F64))
    region = fit_region(TRUTH[:, :5], data, grid, 3)
    window = Window.around(region, 3)
    assert window.size < 48 and (window.crop(region).sum((1, 2)) == region.sum((1, 2))).all()
    full = lensed_pixel_images(TRUTH[:, :5], data, grid)
    cropped = lensed_pixel_images(TRUTH[:, :5], data, grid, window=window)
    crop_full = torch.stack([window.crop(full[:, j]) for j in range(SIDE ** 2)], 1)
    inside = window.crop(region)[:, None].expand_as(cropped)
    # Pixels near the window's edge miss light blurred in from outside it; the fitted ones do not.
    np.testing.assert_allclose(cropped[inside].numpy(), crop_full[inside].numpy(), atol=1e-12)


def test_regularisation_matrix_penalises_gradients_only():
    h = regularisation_matrix(5)
    assert torch.allclose(h, h.T) and torch.linalg.eigvalsh(h).min() > 0
    flat, ramp = torch.ones(25, dtype=F64), torch.arange(5, dtype=F64).repeat(5)
    assert torch.isclose(flat @ h @ flat, torch.tensor(25 * 1e-3, dtype=F64))  # only the eps term
    assert torch.isclose(ramp @ h @ ramp, 5 * 4 + 1e-3 * (ramp ** 2).sum())  # 4 unit steps in each of 5 rows


def test_the_inversion_reproduces_a_known_source_on_a_noiseless_image():
    grid = _source_grid()
    source = _blob(grid)
    data = _data(torch.zeros(2, 48, 48, dtype=F64))
    image = torch.einsum("bj,bjhw->bhw", source.flatten(1), lensed_pixel_images(TRUTH[:, :5], data, grid)) + 0.01
    data = _data(image)
    result = invert(TRUTH[:, :5], torch.full((2,), -20.0, dtype=F64), data, grid)
    assert (result.source - source).abs().max() < 1e-4 * source.max()
    assert torch.allclose(result.background, torch.full((2,), 0.01, dtype=F64), atol=1e-8)
    assert (result.model - image).abs().max() < 1e-6 * image.max()


def test_the_inversion_of_a_rendered_sersic_source_keeps_its_flux():
    # An independent image (lensnet's Sersic renderer, 4x4 rays per pixel) and the evidence's own smoothing.
    image = unit_images(TRUTH, _data(torch.zeros(2, 48, 48, dtype=F64)), supersample=4)[:, 0]
    data = _data(image + 1e-3 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1), dtype=F64))
    grid = source_grid_around(TRUTH, data, 16)
    result = invert(TRUTH[:, :5], None, data, grid)
    flux = result.source.sum((1, 2)) * grid.pixel_scale ** 2
    # The Sersic profile's flux on the grid's square, from 8 x 8 samples per source pixel.
    fine = SourcePlaneGrid(grid.center, grid.half_width, 8 * grid.n_side)
    x, y = fine.coordinates()
    on_grid = sersic_profile(x, y, torch.ones(2, dtype=F64), *TRUTH[:, 5:].T).sum((1, 2)) * fine.pixel_scale ** 2
    assert torch.allclose(flux, on_grid, rtol=0.02)
    n_pixels = (~data.mask).sum((1, 2))
    assert (result.chi2 / n_pixels < 1.3).all()
    assert ((result.effective_source_dof > 5) & (result.effective_source_dof < 256)).all()


def test_the_pixelated_fit_refines_a_lens_and_reports_errors():
    truth = TRUTH[:1]
    image = unit_images(truth, _data(torch.zeros(1, 48, 48, dtype=F64)), supersample=4)[:, 0]
    sigma = 0.01 * image.max()
    noise = sigma * torch.randn(image.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    data = _data(image + noise, sigma=float(sigma))
    start = truth[:, :5] * torch.tensor([1.05, 0.9, 1.1, 1.0, 1.0], dtype=F64) + 0.01
    spread = torch.tensor([[0.1, 0.05, 0.05, 0.05, 0.05]], dtype=F64)
    result = refine_lenses(data, start, spread, restarts=1, source="pixelated", n_side=16)
    assert result.pixelated is not None and result.pixelated.inversion.source.shape == (1, 16, 16)
    assert torch.isfinite(result.lens_sigma).all() and (result.lens_sigma > 0).all()
    assert ((result.lens - truth[:, :5]).abs() < 0.01).all()
    assert ((result.reduced_chi2 > 0.8) & (result.reduced_chi2 < 1.25)).all()
    assert torch.isnan(result.amplitude).all()


def test_bad_source_options_get_clear_errors():
    data = _data(torch.zeros(1, 48, 48, dtype=F64) + 1.0)
    start, spread = TRUTH[:1, :5], torch.full((1, 5), 0.1, dtype=F64)
    with pytest.raises(LensnetValueError, match="source = 'shapelets'"):
        refine_lenses(data, start, spread, source="shapelets")
    with pytest.raises(LensnetValueError, match="n_side"):
        refine_lenses(data, start, spread, source="pixelated", n_side=1)
