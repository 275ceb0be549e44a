"""Temperatures move over- and under-confident uncertainties to nominal coverage, the 95% width fixes heavy
tails; cards carry both."""

import pytest
import torch

from lensnet.errors import LensnetValueError
from lensnet.inference import LensPredictor
from lensnet.inference.calibration import calibration_curve, fit_interval_width, fit_temperature
from lensnet.metrics import binned_coverage, coverage
from lensnet.networks import create_model


@pytest.mark.parametrize("claimed", [0.5, 2.0])  # sigma claimed as half (over-confident) or twice the truth
def test_temperature_restores_nominal_coverage(claimed):
    g = torch.Generator().manual_seed(0)
    true_sigma = 0.05 + 0.2 * torch.rand(20000, 5, generator=g, dtype=torch.float64)  # per-lens, varied
    residuals = true_sigma * torch.randn(20000, 5, generator=g, dtype=torch.float64)
    stated = claimed * true_sigma
    before = coverage(residuals[10000:], stated[10000:], 0.68)
    assert ((before - 0.68).abs() > 0.2).all()
    t = fit_temperature(residuals[:10000], stated[:10000])  # fitted on one half, tested on the other
    torch.testing.assert_close(t, torch.full((5,), 1 / claimed, dtype=torch.float64), rtol=0.03, atol=0)
    for p in (0.68, 0.95):
        after = coverage(residuals[10000:], t * stated[10000:], p)
        assert ((after - p).abs() < 0.02).all(), (p, after)  # the target: within 2 percentage points
    curve = calibration_curve(residuals[10000:], t * stated[10000:], [0.2, 0.5, 0.9])
    torch.testing.assert_close(curve, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64).expand(5, 3), atol=0.025,
                               rtol=0)


def test_the_95_width_makes_heavy_tails_cover():
    g = torch.Generator().manual_seed(3)
    sigma = 0.05 + 0.2 * torch.rand(40000, 5, generator=g, dtype=torch.float64)
    # Student-t residuals with 3 degrees of freedom: a temperature fitted at 68% leaves the 95% short.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        t3 = torch.distributions.StudentT(3.0).sample((40000, 5)).double()
    residuals = sigma * t3
    fit, test = slice(0, 20000), slice(20000, None)
    temperature = fit_temperature(residuals[fit], sigma[fit])
    z95 = fit_interval_width(residuals[fit], temperature * sigma[fit], 0.95)
    assert (z95 > 2.2).all()  # wider than the Gaussian 1.96
    calibrated = temperature * sigma[test]
    assert ((coverage(residuals[test], calibrated, 0.95) - 0.95).abs() > 0.02).all()
    for p, z in ((0.68, None), (0.95, z95)):
        assert ((coverage(residuals[test], calibrated, p, z) - p).abs() < 0.02).all(), p  # the target
    gaussian = sigma * torch.randn(40000, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fit_interval_width(gaussian, sigma), torch.full((5,), 1.96, dtype=torch.float64),
                               atol=0.04, rtol=0)


def test_bad_calibration_inputs():
    with pytest.raises(LensnetValueError, match="at least 10"):
        fit_temperature(torch.zeros(5, 5), torch.ones(5, 5))
    with pytest.raises(LensnetValueError, match="positive"):
        fit_temperature(torch.zeros(20, 5), torch.zeros(20, 5))
    with pytest.raises(LensnetValueError, match="probability"):
        fit_interval_width(torch.zeros(20, 5), torch.ones(20, 5), 1.5)


def test_binned_coverage_is_exact_on_a_hand_made_set():
    residuals = torch.tensor([[0.5], [2.0], [0.1], [0.3], [3.0]], dtype=torch.float64)
    std = torch.ones(5, 1, dtype=torch.float64)
    values = torch.tensor([0.2, 0.4, 1.5, 2.5, 3.0], dtype=torch.float64)  # bins [0.1,1) [1,2) [2,3]
    cover, count = binned_coverage(residuals, std, values, (0.1, 1.0, 2.0, 3.0), 0.68)
    assert count.tolist() == [2, 1, 2]
    assert cover[:, 0].tolist() == [0.5, 1.0, 0.5]  # |r| <= 0.994: 0.5 yes, 2.0 no; 0.1 yes; 0.3 yes, 3.0 no
    empty, n = binned_coverage(residuals, std, values, (5.0, 6.0), 0.68)
    assert n.tolist() == [0] and torch.isnan(empty).all()


def test_a_cards_calibration_is_applied():
    backbone = create_model("lensnet_resnet_small", widths=(8, 8, 8, 8), stem_width=8)
    predictor = LensPredictor(backbone, [1.0, 0, 0, 0, 0], [0.5, 0.2, 0.2, 0.1, 0.1])
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    _, std = predictor(x)
    _, scaled = predictor.calibrate([2.0, 1.0, 1.0, 0.5, 0.5])(x)
    torch.testing.assert_close(scaled, std * torch.tensor([2.0, 1.0, 1.0, 0.5, 0.5]))
    with pytest.raises(LensnetValueError, match="positive"):
        predictor.calibrate([1.0, 1.0, 1.0, 1.0, -1.0])
    with pytest.raises(LensnetValueError, match="z95"):
        predictor.calibrate([1.0] * 5, [2.0, 2.0])
    torch.testing.assert_close(predictor.z95, torch.full((5,), 1.96), atol=1e-3, rtol=0)  # Gaussian by default
    predictor.calibrate([1.0] * 5, [2.0, 2.1, 2.2, 2.3, 2.4])
    torch.testing.assert_close(predictor.z95, torch.tensor([2.0, 2.1, 2.2, 2.3, 2.4]))
    assert "sigma_scale" not in predictor.state_dict() and "z95" not in predictor.state_dict()  # the card holds them
