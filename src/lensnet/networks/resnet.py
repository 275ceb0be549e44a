"""lensnet's own compact residual network, predicting a mean and a log-variance per parameter.

A small ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition", arXiv:1512.03385)
with the changes that suit noisy 192 x 192 lens images and heteroscedastic regression:

- Two sky-coordinate channels are appended to the input (:class:`~lensnet.networks.layers.AddCoords`;
  Liu et al. 2018, "CoordConv", arXiv:1807.03247): convolutions and the global pool are blind to
  absolute position, which the lens centre needs.
- The stem is a 5 x 5 convolution of stride 2, which averages pixel noise before anything else,
  then a 3 x 3 convolution at 96 x 96.
- Four stages of basic residual blocks, each starting at stride 2 (96 to 6 pixels at 192 px); the
  shortcut of a downsampling block is a 2 x 2 average pool and a 1 x 1 convolution ("ResNet-D",
  He et al. 2019, arXiv:1812.01187), so that it does not skip three pixels in four; the last
  normalisation of every block starts at zero so each block starts as the identity.
- Global average pool (or, with ``pool='attention'``, also attention pools that keep the soft-argmax
  position of what they attend to, :class:`~lensnet.networks.layers.AttentionPool`, for the centre)
  and one linear layer of 2 K outputs: the K means, then the K natural
  logarithms of the variances (split by :meth:`lensnet.inference.LensPredictor.split`),
  trained with the Gaussian negative log-likelihood. Where Hezaveh et al. needed dropout sampling
  (Perreault Levasseur et al. 2017, ApJL 850, L7) for uncertainties, one forward pass gives them.

``lensnet_resnet``: 2.8 million parameters, about 0.39 GMAC per 192 px image.
``lensnet_resnet_small``: 0.31 million parameters, 0.07 GMAC, for tests and CPU training.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from lensnet.errors import LensnetValueError
from lensnet.networks.layers import AddCoords, AttentionPool, ConvBnAct, check_model_args, init_weights
from lensnet.networks.registry import register_model

__all__ = ["BasicBlock", "LensResNet"]


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with a residual shortcut; ``stride`` 2 halves the size."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d, pool: str = "avg",
                 attention_heads: int = 4):
        super().__init__()
        if pool not in ("avg", "attention"):
            raise LensnetValueError(f"pool {pool!r} is not one of 'avg', 'attention'")
        self.conv1 = ConvBnAct(in_chans, out_chans, 3, stride, norm_layer=norm_layer)
        self.conv2 = ConvBnAct(out_chans, out_chans, 3, norm_layer=norm_layer, act_layer=None)
        if stride == 1 and in_chans == out_chans:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                ConvBnAct(in_chans, out_chans, 1, norm_layer=norm_layer, act_layer=None),
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class LensResNet(nn.Module):
    """Compact residual regressor with coordinate channels and a mean/log-variance head.

    Parameters
    ----------
    in_chans : int
        Input bands [1].
    num_outputs : int
        Regressed parameters K [5]; the output has 2 K columns when ``predict_variance``.
    drop_rate : float
        Dropout probability before the output layer [0.0].
    widths : tuple of int
        Channels of the four stages [(32, 64, 128, 256)].
    depths : tuple of int
        Residual blocks per stage [(2, 2, 2, 2)].
    stem_width : int
        Channels of the stem [24].
    predict_variance : bool
        Whether to output log-variances after the means [True].
    coord_channels : bool
        Whether to append the x, y coordinate channels to the input [True].
    norm_layer : callable
        Normalisation taking the channel count [``nn.BatchNorm2d``]; e.g.
        ``functools.partial(nn.GroupNorm, 8)`` for small batches.
    pool : {'avg', 'attention'}
        Global average pool, or that plus ``attention_heads`` attention pools with their positions ['avg'].
    attention_heads : int
        Heads of the attention pool [4].
    """

    def __init__(self, in_chans: int = 1, num_outputs: int = 5, drop_rate: float = 0.0,
                 widths: tuple[int, ...] = (32, 64, 128, 256), depths: tuple[int, ...] = (2, 2, 2, 2),
                 stem_width: int = 24, predict_variance: bool = True, coord_channels: bool = True,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d, pool: str = "avg",
                 attention_heads: int = 4):
        super().__init__()
        if pool not in ("avg", "attention"):
            raise LensnetValueError(f"pool {pool!r} is not one of 'avg', 'attention'")
        check_model_args(in_chans, num_outputs, drop_rate)
        self.num_outputs = num_outputs
        self.predicts_variance = predict_variance
        self.num_features = widths[-1]
        self.coords = AddCoords() if coord_channels else nn.Identity()
        chans = in_chans + 2 if coord_channels else in_chans
        self.stem = nn.Sequential(
            ConvBnAct(chans, stem_width, 5, stride=2, norm_layer=norm_layer),
            ConvBnAct(stem_width, widths[0], 3, norm_layer=norm_layer),
        )
        blocks, chans = [], widths[0]
        for width, depth in zip(widths, depths):
            for i in range(depth):
                blocks.append(BasicBlock(chans, width, 2 if i == 0 else 1, norm_layer))
                chans = width
        self.stages = nn.Sequential(*blocks)
        if pool == "attention":
            self.pool = AttentionPool(chans, attention_heads)
            pooled = self.pool.num_features
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
            pooled = chans
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(pooled, 2 * num_outputs if predict_variance else num_outputs)
        init_weights(self, self.head)
        for block in self.stages:  # each residual branch starts at zero: blocks start as the identity
            nn.init.zeros_(block.conv2[1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to the last stage's map (B, widths[-1], H/32, W/32)."""
        return self.stages(self.stem(self.coords(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to (B, 2 K): K means then K log-variances (or (B, K) means only)."""
        return self.head(self.drop(self.pool(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to (B, 2 K); K means, then K log-variances."""
        return self.forward_head(self.forward_features(x))



@register_model
def lensnet_resnet(**kwargs) -> LensResNet:
    """lensnet's default network: 2.8 M parameters, mean and log-variance of each parameter."""
    arch = dict(widths=(32, 64, 128, 256), depths=(2, 2, 2, 2), stem_width=24)
    return LensResNet(**{**arch, **kwargs})


@register_model
def lensnet_resnet_small(**kwargs) -> LensResNet:
    """Small variant for tests and CPU training: 0.31 M parameters, one block per stage."""
    arch = dict(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), stem_width=16)
    return LensResNet(**{**arch, **kwargs})
