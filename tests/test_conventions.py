"""The one parameter and axis convention, checked against lenstronomy's converters and grid."""

import math

import numpy as np
import torch
from lenstronomy.Data.pixel_grid import PixelGrid as LenstronomyGrid
from lenstronomy.Util import param_util

from lensnet.conventions import (PARAM_NAMES, LensParams, e1e2_to_paper, e1e2_to_qphi, paper_to_e1e2,
                                 qphi_to_e1e2)
from lensnet.lensing import PixelGrid


def _random_qphi(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=torch.float64)
    phi = math.pi * torch.rand(n, generator=g, dtype=torch.float64) - math.pi / 2
    return q, phi


def test_qphi_round_trip_and_lenstronomy_agreement():
    q, phi = _random_qphi()
    e1, e2 = qphi_to_e1e2(q, phi)
    q2, phi2 = e1e2_to_qphi(e1, e2)
    torch.testing.assert_close(q2, q)
    torch.testing.assert_close(torch.cos(2 * phi2), torch.cos(2 * phi))
    torch.testing.assert_close(torch.sin(2 * phi2), torch.sin(2 * phi))
    le1, le2 = param_util.phi_q2_ellipticity(phi.numpy(), q.numpy())
    np.testing.assert_allclose(e1.numpy(), le1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(e2.numpy(), le2, rtol=0, atol=1e-12)
    lphi, lq = param_util.ellipticity2phi_q(e1.numpy(), e2.numpy())
    np.testing.assert_allclose(q2.numpy(), lq, atol=1e-12)
    np.testing.assert_allclose(np.cos(2 * phi2.numpy()), np.cos(2 * lphi), atol=1e-12)


def test_paper_convention_round_trip():
    q, phi = _random_qphi()
    e1, e2 = qphi_to_e1e2(q, phi)
    ex, ey = e1e2_to_paper(e1, e2)
    torch.testing.assert_close(torch.sqrt(ex**2 + ey**2), 1 - q)
    b1, b2 = paper_to_e1e2(ex, ey)
    torch.testing.assert_close(b1, e1)
    torch.testing.assert_close(b2, e2)


def test_param_tensor_order_round_trip():
    t = torch.arange(15, dtype=torch.float32).reshape(3, 5) / 50 + 0.1
    params = LensParams.from_tensor(t)
    assert PARAM_NAMES == ("theta_E", "e1", "e2", "center_x", "center_y")
    torch.testing.assert_close(params.to_tensor(), t)
    assert params.to_lenstronomy()[1]["center_x"] == float(t[1, 3])


def test_pixel_grid_matches_lenstronomy_in_fits_row_order():
    n, scale = 17, 0.05
    ours_x, ours_y = PixelGrid(n, scale).coordinates(dtype=torch.float64)
    theirs = LenstronomyGrid(nx=n, ny=n, transform_pix2angle=np.diag([scale, scale]),
                             ra_at_xy_0=-(n - 1) / 2 * scale, dec_at_xy_0=-(n - 1) / 2 * scale)
    tx, ty = theirs.pixel_coordinates
    np.testing.assert_allclose(ours_x.numpy(), tx, atol=1e-12)
    np.testing.assert_allclose(ours_y.numpy(), ty, atol=1e-12)
    assert ours_y[0, 0] < ours_y[-1, 0]  # row 0 is the bottom (FITS order)
    assert abs(ours_x.mean()) < 1e-12 and abs(ours_y.mean()) < 1e-12  # origin at the image centre


def test_pixel_sky_round_trip():
    grid = PixelGrid(192, 0.04)
    row, col = grid.sky_to_pixel(torch.tensor(0.4), torch.tensor(-1.2))
    x, y = grid.pixel_to_sky(row, col)
    assert abs(x.item() - 0.4) < 1e-6 and abs(y.item() + 1.2) < 1e-6
