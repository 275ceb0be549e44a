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
    want = torch.tensor([[1.2, 0.5 * math.cos(math.radians(60)), 0.5 * math.sin(math.radians(60)), 0.1, -0.2]])
    torch.testing.assert_close(paper, want, rtol=0, atol=1e-6)


def test_paper_residuals_take_the_better_sign():
    q = torch.tensor([0.6, 0.6], dtype=torch.float64)
    phi = torch.tensor([0.3, 0.3], dtype=torch.float64)
    e1, e2 = qphi_to_e1e2(q, phi)
    truth = torch.stack([torch.ones(2), e1, e2, torch.zeros(2), torch.zeros(2)], 1).double()
    # Lens 0: estimated with the opposite sign of (eps_x, eps_y) (phi rotated by 90 degrees), lens 1 close to truth.
    f1, f2 = qphi_to_e1e2(q, phi + torch.tensor([math.pi / 2, 0.01], dtype=torch.float64))
    estimate = torch.stack([torch.ones(2), f1, f2, torch.zeros(2), torch.zeros(2)], 1)
    res = paper_residuals(estimate, truth)
    torch.testing.assert_close(res[0], torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-12)
    direct = to_paper_convention(estimate) - to_paper_convention(truth)
    torch.testing.assert_close(res[1], direct[1])
    assert direct[0, 1:3].abs().max() > 0.5  # without the sign choice lens 0 would be far off


def test_metrics_reject_bad_shapes():
    with pytest.raises(LensnetShapeError, match="residuals"):
        rms(torch.zeros(5))
    with pytest.raises(LensnetShapeError, match="std"):
        coverage(torch.zeros(4, 5), torch.ones(4, 4))
    with pytest.raises(LensnetShapeError, match="estimate"):
        paper_residuals(torch.zeros(3, 5), torch.ones(4, 5))
