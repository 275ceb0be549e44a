"""LensRegressor: standardisation, losses, the paper's 68% error, and its learning-rate schedule."""

import math

import pytest
import torch
import torch.nn as nn

from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.metrics import error68
from lensnet.training.module import LensRegressor, _warmup_cosine


class ConstantNet(nn.Module):
    """Returns a fixed output row for every image."""

    def __init__(self, row, predicts_variance):
        super().__init__()
        self.predicts_variance = predicts_variance
        self.register_buffer("row", torch.as_tensor(row, dtype=torch.float32))

    def forward(self, images):
        return self.row.expand(len(images), -1)


MEAN, STD = [1.0, 0.0, 0.0, 0.1, -0.1], [0.5, 0.2, 0.2, 0.1, 0.1]


def test_error68_is_one_sigma_for_gaussian_residuals(generator):
    residuals = torch.randn(200_000, 2, generator=generator) * torch.tensor([1.0, 0.03])
    assert error68(residuals) == pytest.approx([0.994, 0.0298], rel=0.02)


def test_forward_returns_physical_units():
    variance = LensRegressor(ConstantNet([0.0] * 5 + [math.log(4.0)] * 5, True), target_mean=MEAN, target_std=STD)
    mean, std = variance(torch.zeros(3, 1, 8, 8))
    assert torch.allclose(mean, torch.tensor(MEAN).expand(3, -1))
    assert torch.allclose(std, 2 * torch.tensor(STD).expand(3, -1))
    plain = LensRegressor(ConstantNet([1.0] * 5, False), target_mean=MEAN, target_std=STD)
    mean, std = plain(torch.zeros(2, 1, 8, 8))
    assert torch.allclose(mean, torch.tensor(MEAN) + torch.tensor(STD))
    assert torch.isnan(std).all()  # no validation yet: the RMS is unknown


def test_losses_on_standardised_targets():
    targets = torch.tensor([MEAN]) + torch.tensor([STD])  # z = 1 for every parameter
    nll = LensRegressor(ConstantNet([0.0] * 5 + [math.log(4.0)] * 5, True), target_mean=MEAN, target_std=STD)
    assert nll.loss_name == "gaussian_nll"
    expected = nn.functional.gaussian_nll_loss(torch.zeros(1, 5), torch.ones(1, 5), torch.full((1, 5), 4.0))
    assert nll._loss(*nll.model.split(nll.model.backbone(targets)), nll.model.standardize(targets)) == pytest.approx(expected.item())
    mse = LensRegressor(ConstantNet([0.0] * 5, False), target_mean=MEAN, target_std=STD)
    assert mse.loss_name == "mse"
    assert mse._loss(*mse.model.split(mse.model.backbone(targets)), mse.model.standardize(targets)) == pytest.approx(1.0)


def test_beta_nll_weighs_each_term_by_its_variance_without_its_gradient():
    z = torch.tensor([[1.0, 0.0, 2.0, -1.0, 0.5]])
    mu = torch.zeros(1, 5, requires_grad=True)
    log_var = torch.log(torch.tensor([[4.0, 1.0, 0.25, 2.0, 1.0]])).requires_grad_()
    nll = LensRegressor(ConstantNet([0.0] * 10, True), loss="gaussian_nll")._loss(mu, log_var, z)
    for beta in (0.0, 0.5, 1.0):
        module = LensRegressor(ConstantNet([0.0] * 10, True), loss="beta_nll", beta=beta)
        loss = module._loss(mu, log_var, z)
        weight = torch.exp(beta * log_var.detach())
        expected = (0.5 * (log_var + (mu - z) ** 2 * torch.exp(-log_var)) * weight).mean()
        assert loss.item() == pytest.approx(expected.item())
        if beta == 0.0:
            assert loss.item() == pytest.approx(nll.item())
        if beta == 1.0:  # the means get the squared error's gradient
            (grad,) = torch.autograd.grad(loss, mu)
            torch.testing.assert_close(grad, (mu - z).detach() / 5)


def test_invalid_setups_are_refused():
    with pytest.raises(LensnetValueError, match="predicts_variance"):
        LensRegressor(ConstantNet([0.0] * 5, False), loss="gaussian_nll")
    with pytest.raises(LensnetValueError, match="predicts_variance"):
        LensRegressor(ConstantNet([0.0] * 5, False), loss="beta_nll")
    with pytest.raises(LensnetShapeError, match="target_std"):
        LensRegressor(ConstantNet([0.0] * 5, False), target_std=[1.0, 2.0])
    with pytest.raises(LensnetValueError, match="positive"):
        LensRegressor(ConstantNet([0.0] * 5, False), target_std=[1.0, 0.0, 1.0, 1.0, 1.0])
    wrong = LensRegressor(ConstantNet([0.0] * 5, True))  # claims variances but returns 5 columns
    with pytest.raises(LensnetShapeError, match="backbone output"):
        wrong(torch.zeros(1, 1, 8, 8))


def test_warmup_cosine_schedule():
    factor = _warmup_cosine(10, 110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0)
    assert _warmup_cosine(0, 100)(0) == pytest.approx(1.0)
