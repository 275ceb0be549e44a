"""Tests of lensnet.conventions: the converters, LensParams, and the written pixel convention."""

import math

import numpy as np
import pytest
import torch

from lensnet.conventions import (
    PARAM_NAMES,
    PARAM_UNITS,
    LensParams,
    autolens_to_params,
    e1e2_to_paper,
    e1e2_to_qphi,
    paper_to_e1e2,
    paper_to_params,
    params_to_autolens,
    params_to_paper,
    position_angle,
    qphi_to_e1e2,
)
from lensnet.errors import LensnetShapeError
from lensnet.lensing.grid import PixelGrid
from lensnet.lensing.sie import sie_convergence


def _qphi(n=200, seed=0):
    """q in [0.1, 1) and phi in (-pi/2, pi/2], float64 (the prior: 1 - q ~ U[0, 0.9])."""
    gen = torch.Generator().manual_seed(seed)
    q = 1 - 0.9 * torch.rand(n, generator=gen, dtype=torch.float64)
    phi = math.pi * (0.5 - torch.rand(n, generator=gen, dtype=torch.float64))
    return q.clamp(max=1 - 1e-6), phi


def _same_angle(a, b):
    """Major-axis angles are defined modulo pi."""
    return torch.remainder(a - b + math.pi / 2, math.pi) - math.pi / 2


def test_qphi_e1e2_round_trip():
    q, phi = _qphi()
    q2, phi2 = e1e2_to_qphi(*qphi_to_e1e2(q, phi))
    torch.testing.assert_close(q2, q, rtol=0, atol=1e-12)
    torch.testing.assert_close(_same_angle(phi2, phi), torch.zeros_like(phi), rtol=0, atol=1e-9)
    assert torch.all(phi2 > -math.pi / 2) and torch.all(phi2 <= math.pi / 2)


def test_angle_is_defined_modulo_pi_and_round_lens_has_zero_ellipticity():
    q = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)
    phi = torch.tensor([0.3, 0.3 + math.pi, 1.1], dtype=torch.float64)
    e1, e2 = qphi_to_e1e2(q, phi)
    torch.testing.assert_close(e1[0], e1[1]), torch.testing.assert_close(e2[0], e2[1])
    assert e1[2] == 0 and e2[2] == 0


def test_known_values():
    """q = 0.5, phi = 0: e = 1/3 along x; phi = 45 deg: e2 = 1/3; paper eps = 0.5 along the minor axis."""
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    phi = torch.tensor([0.0, math.pi / 4], dtype=torch.float64)
    e1, e2 = qphi_to_e1e2(q, phi)
    torch.testing.assert_close(e1, torch.tensor([1 / 3, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(e2, torch.tensor([0.0, 1 / 3], dtype=torch.float64), rtol=0, atol=1e-15)
    eps_x, eps_y = e1e2_to_paper(e1, e2)  # a = phi + 90 deg: 90 and 135 deg
    half = 0.5 / math.sqrt(2)
    torch.testing.assert_close(eps_x, torch.tensor([0.0, -half], dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(eps_y, torch.tensor([0.5, half], dtype=torch.float64), rtol=0, atol=1e-15)


def test_qphi_e1e2_agree_with_lenstronomy_param_util():
    param_util = pytest.importorskip("lenstronomy.Util.param_util")
    q, phi = _qphi(50, seed=1)
    e1, e2 = qphi_to_e1e2(q, phi)
    for qi, phii, e1i, e2i in zip(q.tolist(), phi.tolist(), e1.tolist(), e2.tolist()):
        e1_l, e2_l = param_util.phi_q2_ellipticity(phii, qi)
        assert e1i == pytest.approx(e1_l, abs=1e-14) and e2i == pytest.approx(e2_l, abs=1e-14)
    q2, phi2 = e1e2_to_qphi(e1, e2)
    for e1i, e2i, qi, phii in zip(e1.tolist(), e2.tolist(), q2.tolist(), phi2.tolist()):
        phi_l, q_l = param_util.ellipticity2phi_q(e1i, e2i)
        assert qi == pytest.approx(q_l, abs=1e-14)
        assert _same_angle(torch.tensor(phii), torch.tensor(phi_l)).abs() < 1e-12


def test_paper_e1e2_round_trips():
    q, phi = _qphi(seed=2)
    e1, e2 = qphi_to_e1e2(q, phi)
    eps_x, eps_y = e1e2_to_paper(e1, e2)
    torch.testing.assert_close(torch.hypot(eps_x, eps_y), 1 - q, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.stack(paper_to_e1e2(eps_x, eps_y)), torch.stack([e1, e2]), rtol=0, atol=1e-12)
    eps = torch.stack(e1e2_to_paper(*paper_to_e1e2(eps_x, eps_y)))
    torch.testing.assert_close(eps, torch.stack([eps_x, eps_y]), rtol=0, atol=1e-12)


def test_paper_sign_ambiguity_is_the_same_lens():
    """(eps_x, eps_y) and (-eps_x, -eps_y): a and a + 180 deg point along the same minor axis."""
    eps_x = torch.tensor([0.3, -0.1], dtype=torch.float64)
    eps_y = torch.tensor([0.2, 0.5], dtype=torch.float64)
    e1, e2 = paper_to_e1e2(eps_x, eps_y)
    e1m, e2m = paper_to_e1e2(-eps_x, -eps_y)
    torch.testing.assert_close(e1m, e1, rtol=0, atol=1e-15), torch.testing.assert_close(e2m, e2, rtol=0, atol=1e-15)


def _params(n=6, seed=3):
    gen = torch.Generator().manual_seed(seed)
    q, phi = _qphi(n, seed)
    theta_E = 0.1 + 2.9 * torch.rand(n, generator=gen, dtype=torch.float64)
    cx, cy = 0.28 * (2 * torch.rand(2, n, generator=gen, dtype=torch.float64) - 1)
    return LensParams.from_qphi(theta_E, q, phi, cx, cy), (theta_E, q, phi, cx, cy)


def test_lens_params_tensor_round_trip_in_param_names_order():
    params, (theta_E, q, phi, cx, cy) = _params()
    table = params.to_tensor()
    assert PARAM_NAMES == ("theta_E", "e1", "e2", "center_x", "center_y")
    assert len(PARAM_UNITS) == len(PARAM_NAMES) and table.shape == (6, 5)
    for column, name in enumerate(PARAM_NAMES):
        assert torch.equal(table[:, column], getattr(params, name))
    torch.testing.assert_close(table[:, 0], theta_E, rtol=0, atol=0)
    torch.testing.assert_close(table[:, 3], cx, rtol=0, atol=0)
    again = LensParams.from_tensor(table)
    for name in PARAM_NAMES:
        assert torch.equal(getattr(again, name), getattr(params, name))
    q2, phi2 = params.qphi()
    torch.testing.assert_close(q2, q, rtol=0, atol=1e-12)
    assert _same_angle(phi2, phi).abs().max() < 1e-9


def test_lens_params_to_lenstronomy_and_dtype():
    params, _ = _params(2)
    kwargs = params.to_lenstronomy()
    assert len(kwargs) == 2 and list(kwargs[0]) == list(PARAM_NAMES)
    assert kwargs[1]["e2"] == params.e2[1].item()
    p32 = params.to(dtype=torch.float32)
    assert all(getattr(p32, n).dtype == torch.float32 for n in PARAM_NAMES) and p32.batch_size == 2
    second = params.take(torch.tensor([1]))
    assert second.batch_size == 1 and torch.equal(second.to_tensor(), params.to_tensor()[1:])
    assert torch.equal(params.take(torch.tensor([False, True])).to_tensor(), second.to_tensor())


def test_documented_pixel_convention():
    """Pixel (i, j) (row, column) is centred at x = (j - (N-1)/2) scale, y = (i - (N-1)/2) scale."""
    n, scale = 7, 0.04
    x, y = PixelGrid(n, scale).coordinates(dtype=torch.float64)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    np.testing.assert_allclose(x.numpy(), (j - (n - 1) / 2) * scale, rtol=0, atol=1e-15)
    np.testing.assert_allclose(y.numpy(), (i - (n - 1) / 2) * scale, rtol=0, atol=1e-15)


def _autolens_convergence(x, y, centre, ell_comps, einstein_radius):
    """kappa of PyAutoLens's Isothermal written from its documentation: theta_E^AL / ((1 + q) R_ell), with
    R_ell = sqrt(x'^2 + y'^2 / q^2) in the frame of the major axis, ell_comps = (fac sin 2phi, fac cos 2phi)."""
    fac = torch.sqrt(ell_comps[:, 0] ** 2 + ell_comps[:, 1] ** 2)
    q = (1 - fac) / (1 + fac)
    phi = torch.atan2(ell_comps[:, 0], ell_comps[:, 1]) / 2
    dx, dy = x - centre[:, 1, None], y - centre[:, 0, None]
    xr = dx * torch.cos(phi)[:, None] + dy * torch.sin(phi)[:, None]
    yr = -dx * torch.sin(phi)[:, None] + dy * torch.cos(phi)[:, None]
    return einstein_radius[:, None] / ((1 + q[:, None]) * torch.sqrt(xr ** 2 + yr ** 2 / q[:, None] ** 2))


def test_autolens_parameters_give_the_same_convergence_and_round_trip():
    params = torch.tensor([[1.2, 0.1, -0.2, 0.05, -0.1], [0.7, -0.3, 0.05, -0.2, 0.3]], dtype=torch.float64)
    autolens = params_to_autolens(params)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64).repeat(2, 1)
    y = torch.linspace(1.5, -1.0, 9, dtype=torch.float64).repeat(2, 1)
    ours = sie_convergence(x[:, :, None], y[:, :, None], *params.unbind(1))[..., 0]
    theirs = _autolens_convergence(x, y, **autolens)
    assert torch.allclose(ours, theirs, rtol=1e-10)
    assert torch.allclose(autolens_to_params(**autolens), params, atol=1e-12)
    with pytest.raises(LensnetShapeError, match="centre"):
        autolens_to_params(torch.zeros(2), torch.zeros(2, 2), torch.ones(2))


def test_paper_parameters_round_trip():
    params = torch.tensor([[1.2, 0.1, -0.2, 0.05, -0.1]], dtype=torch.float64)
    paper = params_to_paper(params)
    assert paper[0, 0] == params[0, 0] and torch.equal(paper[:, 3:], params[:, 3:])
    assert torch.allclose(paper_to_params(paper), params, atol=1e-12)
    flipped = paper.clone()
    flipped[:, 1:3] *= -1
    assert torch.allclose(paper_to_params(flipped), params, atol=1e-12)
    with pytest.raises(LensnetShapeError):
        params_to_paper(torch.zeros(3))


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0, -75.0, 160.0])
@pytest.mark.parametrize("flip", [False, True])
def test_position_angle_on_rotated_and_flipped_wcs(rotation_deg, flip):
    """Build the CD matrix of an image rotated by ``rotation_deg`` (north rotated counter-clockwise from +y),
    east left (or right when flipped); an axis at PA on the sky drawn on that image comes back as PA."""
    s = 0.05 / 3600
    r = math.radians(rotation_deg)
    # Pixel direction of north and of east on the image.
    north = torch.tensor([-math.sin(r), math.cos(r)], dtype=torch.float64)
    east = torch.tensor([-math.cos(r), -math.sin(r)], dtype=torch.float64) * (-1 if flip else 1)
    cd = torch.linalg.inv(torch.stack([east, north], 1)) * s  # pixel offsets -> (east, north)
    for pa in (0.0, 20.0, 90.0, 135.0):
        direction = math.sin(math.radians(pa)) * east + math.cos(math.radians(pa)) * north
        phi = torch.atan2(direction[1], direction[0])
        got = float(position_angle(phi, cd))
        assert min(abs(got - pa), 180 - abs(got - pa)) < 1e-9
    # North up, east left: an axis along the rows is at 0 degrees, along the columns at 90.
    plain = torch.diag(torch.tensor([-s, s], dtype=torch.float64))
    assert float(position_angle(torch.tensor(math.pi / 2, dtype=torch.float64), plain)) == pytest.approx(0.0, abs=1e-9)
    assert float(position_angle(torch.tensor(0.0, dtype=torch.float64), plain)) == pytest.approx(90.0)
