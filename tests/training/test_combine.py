"""The combined network beats its best member when the members' errors are independent."""

import pytest
import torch
import torch.nn as nn

from lensnet.errors import LensnetValueError
from lensnet.training.combine import fit_combination, fit_combined_network


class NoisyOracle(nn.Module):
    """Reads the truth from pixels 0-4 and adds noise projected from its own 19 pixels (independent errors)."""

    def __init__(self, sigma: float, index: int, with_std: bool = True):
        super().__init__()
        g = torch.Generator().manual_seed(index)
        proj = torch.randn(19, 5, generator=g)
        self.register_buffer("proj", proj / proj.norm(dim=0))  # unit columns: noise rms exactly sigma
        self.pixels = slice(5 + 19 * index, 5 + 19 * (index + 1))
        self.sigma, self.with_std = sigma, with_std

    def forward(self, images):
        x = images.flatten(1)
        mean = x[:, :5] + self.sigma * (x[:, self.pixels] @ self.proj)
        return (mean, torch.full_like(mean, self.sigma)) if self.with_std else mean


def _toy_set(n, seed):
    images = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return images, images.flatten(1)[:, :5].clone()


@pytest.mark.parametrize("with_std", [True, False])
def test_combination_beats_the_best_member(with_std):
    members = [NoisyOracle(s, seed, with_std) for seed, s in enumerate((0.10, 0.12, 0.15))]
    combined = fit_combined_network(members, *_toy_set(3000, 10))
    images, targets = _toy_set(3000, 11)
    with torch.no_grad():
        member_rms = torch.stack([(m(images)[0] if with_std else m(images)) - targets for m in members])
        member_rms = member_rms.pow(2).mean(1).sqrt()  # (M, K)
        mean, std = combined(images)
    rms = (mean - targets).pow(2).mean(0).sqrt()
    assert (rms < 0.8 * member_rms.min(0).values).all()
    # Independent errors: the weights approach inverse-variance weights and sum to ~1.
    inverse = torch.tensor([1 / 0.10**2, 1 / 0.12**2, 1 / 0.15**2])
    assert torch.allclose(combined.weights, (inverse / inverse.sum())[:, None].expand(3, 5), atol=0.05)
    # The fitted uncertainty is calibrated on unseen lenses.
    assert ((mean - targets) / std).pow(2).mean(0).sqrt() == pytest.approx([1.0] * 5, abs=0.1)


def test_fit_combination_recovers_exact_linear_weights(generator):
    means = torch.randn(2, 500, 5, generator=generator, dtype=torch.float64)
    targets = 0.3 * means[0] + 0.7 * means[1] + 0.1
    weights, bias = fit_combination(means, targets, ridge=0.0)
    assert torch.allclose(weights, torch.tensor([[0.3], [0.7]], dtype=torch.float64).expand(2, 5), atol=1e-10)
    assert torch.allclose(bias, torch.full((5,), 0.1, dtype=torch.float64), atol=1e-10)
    with pytest.raises(LensnetValueError, match="held-out"):
        fit_combination(means[:, :2], targets[:2])
