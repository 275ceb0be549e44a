"""Tests of lensnet.lensing.grid.PixelGrid: pixel centres as lenstronomy and FITS define them."""

import numpy as np
import pytest
import torch

from lensnet.errors import LensnetRangeError
from lensnet.lensing.grid import PixelGrid

GRIDS = [(1, 0.5), (8, 0.04), (33, 0.05), (64, 0.1)]


@pytest.mark.parametrize("n_pix, scale", GRIDS)
@pytest.mark.parametrize("supersample", [1, 2, 3])
def test_coordinates_match_lenstronomy_make_grid(n_pix, scale, supersample):
    """lenstronomy's 1-D grids (x fastest) reshaped to (rows, columns) by its array2image."""
    util = pytest.importorskip("lenstronomy.Util.util")
    x_l, y_l = util.make_grid(n_pix, scale, subgrid_res=supersample)
    x, y = PixelGrid(n_pix, scale).coordinates(supersample, dtype=torch.float64)
    assert x.shape == y.shape == (n_pix * supersample,) * 2
    np.testing.assert_allclose(x.numpy(), util.array2image(x_l), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), util.array2image(y_l), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_pix, scale", GRIDS)
def test_pixel_mapping_matches_lenstronomy_pixel_grid(n_pix, scale):
    """lenstronomy's PixelGrid with transform_pix2angle = diag(scale, scale), ra/dec_at_xy_0 = -(N-1)/2 scale."""
    pixel_grid = pytest.importorskip("lenstronomy.Data.pixel_grid")
    corner = -(n_pix - 1) / 2 * scale
    theirs = pixel_grid.PixelGrid(n_pix, n_pix, np.diag([scale, scale]), corner, corner)
    grid = PixelGrid(n_pix, scale)
    x, y = grid.coordinates(dtype=torch.float64)
    ra, dec = theirs.pixel_coordinates  # (rows, columns): lenstronomy's x_pix is our column
    np.testing.assert_allclose(x.numpy(), ra, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), dec, rtol=0, atol=1e-12)

    rows, cols = np.array([0.0, 0.25, n_pix - 1.0]), np.array([n_pix - 1.0, 3.5, 0.0])
    ra, dec = theirs.map_pix2coord(cols, rows)
    sx, sy = grid.pixel_to_sky(torch.tensor(rows), torch.tensor(cols))
    np.testing.assert_allclose(sx.numpy(), ra, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sy.numpy(), dec, rtol=0, atol=1e-12)
    col_l, row_l = theirs.map_coord2pix(ra, dec)
    r, c = grid.sky_to_pixel(sx, sy)
    np.testing.assert_allclose(c.numpy(), col_l, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.numpy(), row_l, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.numpy(), rows, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.numpy(), cols, rtol=0, atol=1e-12)


def test_fits_row_order_row_zero_at_the_bottom():
    """Row index increases with y and column index with x, as a linear FITS WCS (CRPIX at the centre) says."""
    wcs_module = pytest.importorskip("astropy.wcs")
    n, scale = 6, 0.05
    x, y = PixelGrid(n, scale).coordinates(dtype=torch.float64)
    assert torch.all(y[1:] > y[:-1]) and torch.all(x[:, 1:] > x[:, :-1])
    assert torch.all(y[0] == y[0, 0]) and torch.all(x[:, 0] == x[0, 0])
    assert y[0, 0] < 0 and x[0, 0] < 0  # row 0, column 0: bottom left

    wcs = wcs_module.WCS(naxis=2)
    wcs.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]  # FITS pixels count from 1: the image centre
    wcs.wcs.cdelt = [scale, scale]
    # numpy's data[row, col] is FITS pixel (col + 1, row + 1); astropy's 0-based call takes (col, row).
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    wx, wy = wcs.wcs_pix2world(cols.ravel(), rows.ravel(), 0)
    np.testing.assert_allclose(x.numpy(), wx.reshape(n, n), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), wy.reshape(n, n), rtol=0, atol=1e-12)


@pytest.mark.parametrize("supersample", [2, 3, 4])
def test_sub_pixels_average_to_their_pixel_centre(supersample):
    grid = PixelGrid(5, 0.2)
    x, y = grid.coordinates(dtype=torch.float64)
    xs, ys = grid.coordinates(supersample, dtype=torch.float64)
    s = supersample
    torch.testing.assert_close(xs.reshape(5, s, 5, s).mean(dim=(1, 3)), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(ys.reshape(5, s, 5, s).mean(dim=(1, 3)), y, rtol=0, atol=1e-14)
    step = xs[0, 1:] - xs[0, :-1]
    torch.testing.assert_close(step, torch.full_like(step, 0.2 / s), rtol=0, atol=1e-14)


def test_sky_and_pixel_round_trip_and_field_of_view():
    grid = PixelGrid(192, 0.04)
    assert grid.fov == pytest.approx(7.68)
    x = torch.tensor([-3.82, 0.0, 0.123, 3.82], dtype=torch.float64)
    y = torch.tensor([1.0, -0.02, 0.0, 3.82], dtype=torch.float64)
    torch.testing.assert_close(grid.pixel_to_sky(*grid.sky_to_pixel(x, y)), (x, y), rtol=0, atol=1e-12)
    r, c = grid.sky_to_pixel(torch.tensor(0.0), torch.tensor(0.0))
    assert r.item() == c.item() == 95.5  # the origin is the centre of an even grid, between pixels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coordinates_take_dtype_and_device(dtype):
    x, y = PixelGrid(4, 0.1).coordinates(2, device=torch.device("cpu"), dtype=dtype)
    assert x.dtype == y.dtype == dtype and x.device.type == "cpu"


@pytest.mark.parametrize("kwargs, name", [
    ({"n_pix": 0}, "n_pix"),
    ({"n_pix": 2.5}, "n_pix"),
    ({"n_pix": float("nan")}, "n_pix"),
    ({"n_pix": True}, "n_pix"),
    ({"pixel_scale": 0.0}, "pixel_scale"),
    ({"pixel_scale": -0.04}, "pixel_scale"),
    ({"pixel_scale": float("inf")}, "pixel_scale"),
    ({"pixel_scale": float("nan")}, "pixel_scale"),
])
def test_bad_grid_raises_range_error(kwargs, name):
    with pytest.raises(LensnetRangeError, match=rf"^{name} = "):
        PixelGrid(**kwargs)


@pytest.mark.parametrize("supersample", [0, 1.5, -2])
def test_bad_supersample_raises_range_error(supersample):
    with pytest.raises(LensnetRangeError, match=r"^supersample = "):
        PixelGrid(4, 0.1).coordinates(supersample)
