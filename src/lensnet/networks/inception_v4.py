"""Inception-v4 regressor, one of the four networks of Hezaveh et al. 2017 (Nature 548, 555).

Architecture of Szegedy, Ioffe, Vanhoucke & Alemi 2016, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", arXiv:1602.07261 (Figures 3-9): a stem, 4 Inception-A
blocks, Reduction-A (k, l, m, n = 192, 224, 256, 384), 7 Inception-B blocks, Reduction-B, 3
Inception-C blocks and a global average pool, here followed by one linear layer giving the lens
parameters instead of the classifier. Every convolution is followed by batch normalisation and ReLU.
"No pad" marks the paper's "V" (valid) convolutions; the others keep the size.

Feature-map sizes at 192 x 192 pixels: stem 384 x 21 x 21, Reduction-A 1024 x 10 x 10,
Reduction-B 1536 x 4 x 4. 41.1 million parameters for one band, almost all convolutional: the
paper's network with the fewest parameters in fully-connected layers. The global pool accepts any
image size from about 75 pixels up.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lensnet.networks.layers import ConvBnAct, check_model_args, init_weights
from lensnet.networks.registry import register_model

__all__ = ["Stem", "InceptionA", "ReductionA", "InceptionB", "ReductionB", "InceptionC", "InceptionV4"]


def _avg_pool_branch(in_chans: int, out_chans: int) -> nn.Sequential:
    # 3x3 average pool that keeps the size; padded zeros are not counted as pixels.
    return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), ConvBnAct(in_chans, out_chans, 1))


class Stem(nn.Module):
    """Inception-v4 stem (paper Fig. 3): in_chans x H x W to 384 x (H/8 - 3) x (W/8 - 3)."""

    def __init__(self, in_chans: int):
        super().__init__()
        self.convs = nn.Sequential(
            ConvBnAct(in_chans, 32, 3, stride=2, padding=0),
            ConvBnAct(32, 32, 3, padding=0),
            ConvBnAct(32, 64, 3),
        )
        self.pool_a = nn.MaxPool2d(3, 2)
        self.conv_a = ConvBnAct(64, 96, 3, stride=2, padding=0)
        self.branch_b0 = nn.Sequential(ConvBnAct(160, 64, 1), ConvBnAct(64, 96, 3, padding=0))
        self.branch_b1 = nn.Sequential(
            ConvBnAct(160, 64, 1),
            ConvBnAct(64, 64, (1, 7)),
            ConvBnAct(64, 64, (7, 1)),
            ConvBnAct(64, 96, 3, padding=0),
        )
        self.conv_c = ConvBnAct(192, 192, 3, stride=2, padding=0)
        self.pool_c = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        x = torch.cat((self.pool_a(x), self.conv_a(x)), 1)
        x = torch.cat((self.branch_b0(x), self.branch_b1(x)), 1)
        return torch.cat((self.conv_c(x), self.pool_c(x)), 1)


class InceptionA(nn.Module):
    """Inception-A block (paper Fig. 4): 384 channels in and out, size kept."""

    def __init__(self):
        super().__init__()
        self.branch0 = _avg_pool_branch(384, 96)
        self.branch1 = ConvBnAct(384, 96, 1)
        self.branch2 = nn.Sequential(ConvBnAct(384, 64, 1), ConvBnAct(64, 96, 3))
        self.branch3 = nn.Sequential(ConvBnAct(384, 64, 1), ConvBnAct(64, 96, 3), ConvBnAct(96, 96, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ReductionA(nn.Module):
    """Reduction-A block (paper Fig. 7, Inception-v4 filters): 384 to 1024 channels, size halved."""

    def __init__(self):
        super().__init__()
        self.branch0 = nn.MaxPool2d(3, 2)
        self.branch1 = ConvBnAct(384, 384, 3, stride=2, padding=0)
        self.branch2 = nn.Sequential(
            ConvBnAct(384, 192, 1),
            ConvBnAct(192, 224, 3),
            ConvBnAct(224, 256, 3, stride=2, padding=0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionB(nn.Module):
    """Inception-B block (paper Fig. 5): 1024 channels in and out, size kept."""

    def __init__(self):
        super().__init__()
        self.branch0 = _avg_pool_branch(1024, 128)
        self.branch1 = ConvBnAct(1024, 384, 1)
        self.branch2 = nn.Sequential(
            ConvBnAct(1024, 192, 1),
            ConvBnAct(192, 224, (1, 7)),
            ConvBnAct(224, 256, (7, 1)),
        )
        self.branch3 = nn.Sequential(
            ConvBnAct(1024, 192, 1),
            ConvBnAct(192, 192, (1, 7)),
            ConvBnAct(192, 224, (7, 1)),
            ConvBnAct(224, 224, (1, 7)),
            ConvBnAct(224, 256, (7, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ReductionB(nn.Module):
    """Reduction-B block (paper Fig. 8): 1024 to 1536 channels, size halved."""

    def __init__(self):
        super().__init__()
        self.branch0 = nn.MaxPool2d(3, 2)
        self.branch1 = nn.Sequential(ConvBnAct(1024, 192, 1), ConvBnAct(192, 192, 3, stride=2, padding=0))
        self.branch2 = nn.Sequential(
            ConvBnAct(1024, 256, 1),
            ConvBnAct(256, 256, (1, 7)),
            ConvBnAct(256, 320, (7, 1)),
            ConvBnAct(320, 320, 3, stride=2, padding=0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionC(nn.Module):
    """Inception-C block (paper Fig. 6): 1536 channels in and out, size kept."""

    def __init__(self):
        super().__init__()
        self.branch0 = _avg_pool_branch(1536, 256)
        self.branch1 = ConvBnAct(1536, 256, 1)
        self.branch2 = ConvBnAct(1536, 384, 1)
        self.branch2_h = ConvBnAct(384, 256, (1, 3))
        self.branch2_v = ConvBnAct(384, 256, (3, 1))
        self.branch3 = nn.Sequential(
            ConvBnAct(1536, 384, 1),
            ConvBnAct(384, 448, (1, 3)),
            ConvBnAct(448, 512, (3, 1)),
        )
        self.branch3_h = ConvBnAct(512, 256, (1, 3))
        self.branch3_v = ConvBnAct(512, 256, (3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b2, b3 = self.branch2(x), self.branch3(x)
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2_h(b2), self.branch2_v(b2),
                          self.branch3_h(b3), self.branch3_v(b3)), 1)


class InceptionV4(nn.Module):
    """Inception-v4 regressor: features of Szegedy et al. 2016, global average pool, one linear layer.

    Parameters
    ----------
    in_chans : int
        Input bands [1].
    num_outputs : int
        Regressed parameters [5].
    drop_rate : float
        Dropout probability before the output layer [0.0].
    """

    predicts_variance = False

    def __init__(self, in_chans: int = 1, num_outputs: int = 5, drop_rate: float = 0.0):
        super().__init__()
        check_model_args(in_chans, num_outputs, drop_rate)
        self.num_outputs = num_outputs
        self.num_features = 1536
        self.features = nn.Sequential(
            Stem(in_chans),
            *[InceptionA() for _ in range(4)],
            ReductionA(),
            *[InceptionB() for _ in range(7)],
            ReductionB(),
            *[InceptionC() for _ in range(3)],
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_outputs)
        init_weights(self, self.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to the Inception-C map (B, 1536, h, w)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (B, 1536, h, w) to predictions (B, num_outputs)."""
        return self.head(self.drop(torch.flatten(self.pool(x), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to predictions (B, num_outputs)."""
        return self.forward_head(self.forward_features(x))



@register_model
def inception_v4(**kwargs) -> InceptionV4:
    """Inception-v4 of Szegedy et al. 2016 as used by Hezaveh et al. 2017 (41.1 M parameters)."""
    return InceptionV4(**kwargs)
