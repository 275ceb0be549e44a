"""Temperatures move over- and under-confident uncertainties to nominal coverage; cards carry them."""

import pytest
import torch

from lensnet.errors import LensnetValueError
from lensnet.inference import LensPredictor
from lensnet.inference.calibration import calibration_curve, fit_temperature
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


def test_bad_calibration_inputs():
    with pytest.raises(LensnetValueError, match="at least 10"):
        fit_temperature(torch.zeros(5, 5), torch.ones(5, 5))
    with pytest.raises(LensnetValueError, match="positive"):
        fit_temperature(torch.zeros(20, 5), torch.zeros(20, 5))


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
    assert "sigma_scale" not in predictor.state_dict()  # the weights stay the same; the card holds it
