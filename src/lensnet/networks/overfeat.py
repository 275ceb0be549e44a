"""OverFeat-style regressor, one of the four networks of Hezaveh et al. 2017 (Nature 548, 555).

After the "fast" OverFeat model (Sermanet et al. 2014, arXiv:1312.6229), whose fully-connected
layers are convolutions so that the network slides over the image. Layout as used by Hezaveh et al.
at 192 x 192 pixels (64 filters in conv1 where OverFeat has 96):

====================  ======================  ==============
layer                 kernel / stride         output (192 px)
====================  ======================  ==============
conv1 64              11 x 11 / 4, no pad     64 x 46 x 46
max pool              2 x 2 / 2               64 x 23 x 23
conv2 256             5 x 5, no pad           256 x 19 x 19
max pool              2 x 2 / 2               256 x 9 x 9
conv3-5 512, 1024,    3 x 3                   1024 x 9 x 9
1024
max pool              2 x 2 / 2               1024 x 4 x 4
fc6 3072 (conv)       2 x 2, no pad           3072 x 3 x 3
fc7 4096 (conv)       1 x 1                   4096 x 3 x 3
fc8 (conv)            1 x 1                   5 x 3 x 3
out (linear)          45 -> num_outputs       5
====================  ======================  ==============

The last linear layer combines the 3 x 3 window predictions, which keeps the position information
the lens centre needs. 40.9 million parameters for one band, 25.2 million of them in fc6 and fc7.
An adaptive average pool to 4 x 4 before fc6 (the identity at 192 px) lets other sizes through.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lensnet.networks.layers import ConvBnAct, check_model_args, init_weights
from lensnet.networks.registry import register_model

__all__ = ["OverFeat"]


class OverFeat(nn.Module):
    """OverFeat-style convolutional regressor with convolutional fully-connected layers.

    Parameters
    ----------
    in_chans : int
        Input bands [1].
    num_outputs : int
        Regressed parameters [5].
    drop_rate : float
        Dropout probability before fc7 and fc8 [0.0].
    norm_layer : type of nn.Module, optional
        Normalisation after each convolution of the feature extractor [None, as in the paper].
    """

    predicts_variance = False

    def __init__(self, in_chans: int = 1, num_outputs: int = 5, drop_rate: float = 0.0,
                 norm_layer: type[nn.Module] | None = None):
        super().__init__()
        check_model_args(in_chans, num_outputs, drop_rate)
        self.num_outputs = num_outputs
        self.features = nn.Sequential(
            ConvBnAct(in_chans, 64, 11, stride=4, padding=0, norm_layer=norm_layer),
            nn.MaxPool2d(2),
            ConvBnAct(64, 256, 5, padding=0, norm_layer=norm_layer),
            nn.MaxPool2d(2),
            ConvBnAct(256, 512, 3, norm_layer=norm_layer),
            ConvBnAct(512, 1024, 3, norm_layer=norm_layer),
            ConvBnAct(1024, 1024, 3, norm_layer=norm_layer),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc6 = nn.Conv2d(1024, 3072, 2)
        self.fc7 = nn.Conv2d(3072, 4096, 1)
        self.fc8 = nn.Conv2d(4096, num_outputs, 1)
        self.head = nn.Linear(3 * 3 * num_outputs, num_outputs)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        init_weights(self, self.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to the last convolutional map (B, 1024, h, w)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (B, 1024, h, w) to predictions (B, num_outputs)."""
        x = self.act(self.fc6(self.pool(x)))
        x = self.act(self.fc7(self.drop(x)))
        x = self.fc8(self.drop(x))
        return self.head(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to predictions (B, num_outputs)."""
        return self.forward_head(self.forward_features(x))



@register_model
def overfeat(**kwargs) -> OverFeat:
    """OverFeat-style network of Hezaveh et al. 2017 (40.9 M parameters at one band)."""
    return OverFeat(**kwargs)
