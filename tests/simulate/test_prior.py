"""The lens prior: ranges, uniformity, reproducibility and named errors."""

import math

import pytest
import torch

from lensnet.errors import LensnetConfigError, LensnetRangeError, LensnetValueError
from lensnet.simulate.prior import LensPrior


def test_samples_lie_in_range_and_are_reproducible():
    prior = LensPrior()
    a = prior.sample(4000, torch.Generator().manual_seed(3))
    b = prior.sample(4000, torch.Generator().manual_seed(3))
    c = prior.sample(4000, torch.Generator().manual_seed(4))
    assert torch.equal(a.to_tensor(), b.to_tensor())
    assert not torch.equal(a.to_tensor(), c.to_tensor())
    q, _ = a.qphi()
    assert a.theta_E.min() >= 0.1 and a.theta_E.max() <= 3.0
    assert q.min() >= 0.1 - 1e-6 and q.max() <= 1.0
    assert a.center_x.abs().max() <= 0.28 and a.center_y.abs().max() <= 0.28


def test_samples_are_uniform_in_each_parameter():
    # Means of U[a, b] draws (4000 of them: 3 sigma is 0.014 (b - a)), and an isotropic angle.
    params = LensPrior().sample(4000, torch.Generator().manual_seed(5), dtype=torch.float64)
    q, phi = params.qphi()
    assert params.theta_E.mean().item() == pytest.approx(1.55, abs=0.05)
    assert (1 - q).mean().item() == pytest.approx(0.45, abs=0.015)
    assert params.center_x.mean().item() == pytest.approx(0.0, abs=0.01)
    assert torch.cos(2 * phi).mean().abs() < 0.05 and torch.sin(2 * phi).mean().abs() < 0.05
    assert params.center_x.abs().max() > 0.27 and params.center_y.abs().max() > 0.27


def test_configured_ranges_and_dtype():
    prior = LensPrior(theta_E_range=(0.5, 0.5), one_minus_q_range=(0.0, 0.0), center_range=0.0)
    params = prior.sample(3, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert params.theta_E.dtype == torch.float64 and params.theta_E.device.type == "cpu"
    assert torch.allclose(params.theta_E, torch.full((3,), 0.5, dtype=torch.float64))
    assert params.e1.abs().max() == 0 and params.e2.abs().max() == 0
    assert params.center_x.abs().max() == 0 and params.center_y.abs().max() == 0


@pytest.mark.parametrize("kwargs, field", [
    ({"theta_E_range": (0.0, 1.0)}, "theta_E_range"),
    ({"theta_E_range": (2.0, 1.0)}, "theta_E_range"),
    ({"theta_E_range": (0.1, math.inf)}, "theta_E_range"),
    ({"theta_E_range": "wide"}, "theta_E_range"),
    ({"one_minus_q_range": (0.0, 1.0)}, "one_minus_q_range"),
    ({"one_minus_q_range": (-0.1, 0.5)}, "one_minus_q_range"),
    ({"center_range": -0.1}, "center_range"),
    ({"center_range": math.nan}, "center_range"),
])
def test_bad_ranges_are_named(kwargs, field):
    with pytest.raises(LensnetConfigError, match=field):
        LensPrior(**kwargs)


def test_bad_sample_arguments():
    gen = torch.Generator().manual_seed(0)
    for batch in (0, 2.5, True):
        with pytest.raises(LensnetRangeError, match="batch"):
            LensPrior().sample(batch, gen)
    with pytest.raises(LensnetValueError, match="dtype"):
        LensPrior().sample(2, gen, dtype=torch.int64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_samples_on_the_generator_device():
    params = LensPrior().sample(8, torch.Generator("cuda").manual_seed(0))
    assert params.theta_E.device.type == "cuda"


def test_prior_ranges_and_reproducibility():
    prior = LensPrior()
    a = prior.sample(2000, torch.Generator().manual_seed(3))
    b = prior.sample(2000, torch.Generator().manual_seed(3))
    c = prior.sample(2000, torch.Generator().manual_seed(4))
    assert torch.equal(a.to_tensor(), b.to_tensor()) and not torch.equal(a.to_tensor(), c.to_tensor())
    q, _ = a.qphi()
    assert a.theta_E.min() >= 0.1 and a.theta_E.max() <= 3.0
    assert q.min() >= 0.1 - 1e-6 and q.max() <= 1.0
    assert a.center_x.abs().max() <= 0.28 and a.center_y.abs().max() <= 0.28


def test_prior_rejects_bad_ranges():
    with pytest.raises(LensnetConfigError, match="theta_E_range"):
        LensPrior(theta_E_range=(0.0, 1.0))
    with pytest.raises(LensnetConfigError, match="one_minus_q_range"):
        LensPrior(one_minus_q_range=(0.0, 1.0))
