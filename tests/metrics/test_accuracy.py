"""68% errors, RMS, coverage and the paper's ellipticity convention with its sign choice."""

import math

import pytest
import torch

from lensnet.conventions import qphi_to_e1e2
from lensnet.errors import LensnetShapeError
from lensnet.metrics import (coverage, error68, error68_abs, paper_residuals, residual_std, rms,
                                      to_paper_convention)


@pytest.fixture
def gaussian(generator):
    sigma = torch.tensor([0.1, 1.0, 2.0], dtype=torch.float64)
    return torch.randn(20000, 3, generator=generator, dtype=torch.float64) * sigma, sigma


def test_error68_of_gaussian_residuals_is_sigma(gaussian):
    residuals, sigma = gaussian
    for fn in (error68, error68_abs, rms, residual_std):
        torch.testing.assert_close(fn(residuals), sigma, rtol=0.03, atol=0)


def test_error68_ignores_bias_but_error68_abs_does_not(gaussian):
    residuals, sigma = gaussian
    shifted = residuals + 3 * sigma
    torch.testing.assert_close(error68(shifted), sigma, rtol=0.03, atol=0)
    assert (error68_abs(shifted) > 3 * sigma).all()
    torch.testing.assert_close(residual_std(shifted), residual_std(residuals))


def test_coverage_of_calibrated_uncertainties_is_nominal(gaussian):
    residuals, sigma = gaussian
    std = sigma.expand_as(residuals)
    for p in (0.68, 0.95):
        torch.testing.assert_close(coverage(residuals, std, p), torch.full((3,), p, dtype=torch.float64),
                                   rtol=0, atol=0.01)
    assert (coverage(residuals, 0.5 * std, 0.68) < 0.45).all()  # overconfident: too few inside


def test_to_paper_convention():
    e1, e2 = qphi_to_e1e2(torch.tensor([0.5]), torch.tensor([math.radians(30)]))
    params = torch.tensor([[1.2, e1.item(), e2.item(), 0.1, -0.2]])
    paper = to_paper_convention(params)
    a = math.radians(30 + 90)  # the minor axis
    want = torch.tensor([[1.2, 0.5 * math.cos(a), 0.5 * math.sin(a), 0.1, -0.2]])
    torch.testing.assert_close(paper, want, rtol=0, atol=1e-6)


def _lenses(q, phi):
    q, phi = torch.as_tensor(q, dtype=torch.float64), torch.as_tensor(phi, dtype=torch.float64)
    e1, e2 = qphi_to_e1e2(q, phi)
    one = torch.ones_like(q)
    return torch.stack([one, e1, e2, 0 * one, 0 * one], 1)


def test_a_pure_angle_error_moves_eps_by_one_minus_q_times_the_angle():
    q, phi, delta = 0.6, 0.4, 0.01
    res = paper_residuals(_lenses([q], [phi + delta]), _lenses([q], [phi]))
    assert res[0, 1:3].norm().item() == pytest.approx((1 - q) * delta, rel=1e-4)  # half the 2phi form's 2(1-q)delta
    assert res[0, 0] == 0 and res[0, 3:].abs().max() == 0


def test_a_pure_axis_ratio_error_moves_eps_by_the_error():
    res = paper_residuals(_lenses([0.55], [1.1]), _lenses([0.6], [1.1]))
    assert res[0, 1:3].norm().item() == pytest.approx(0.05, rel=1e-9)


def test_paper_residuals_take_the_better_sign():
    """phi = 89.9 and -89.9 degrees are nearly the same lens, but their eps have opposite signs."""
    truth, estimate = _lenses([0.6], [math.radians(89.9)]), _lenses([0.6], [math.radians(-89.9)])
    res = paper_residuals(estimate, truth)
    assert res[0, 1:3].norm().item() == pytest.approx(0.4 * math.radians(0.2), rel=1e-6)
    direct = to_paper_convention(estimate) - to_paper_convention(truth)
    assert direct[0, 1:3].norm().item() > 0.79  # without the sign choice: 2 (1 - q)


def test_metrics_reject_bad_shapes():
    with pytest.raises(LensnetShapeError, match="residuals"):
        rms(torch.zeros(5))
    with pytest.raises(LensnetShapeError, match="std"):
        coverage(torch.zeros(4, 5), torch.ones(4, 4))
    with pytest.raises(LensnetShapeError, match="estimate"):
        paper_residuals(torch.zeros(3, 5), torch.ones(4, 5))


def test_an_estimate_beyond_unit_ellipticity_counts_as_q_near_zero():
    """Off the training distribution a network can return |e| >= 1 (no axis ratio): the metric still works."""
    truth = _lenses([0.6], [0.3])
    estimate = truth.clone()
    estimate[0, 1:3] *= 1.2 / estimate[0, 1:3].norm()
    res = paper_residuals(estimate, truth)
    eps_est = res[0, 1:3] + to_paper_convention(truth)[0, 1:3]  # same sign: the estimate points along the truth
    assert eps_est.norm().item() == pytest.approx(1.0, abs=1e-5)  # (1 - q) with q -> 0
