"""AlexNet-style regressor, one of the four networks of Hezaveh et al. 2017 (Nature 548, 555).

The layout is the single-tower "v2" AlexNet (Krizhevsky 2014, "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997; after Krizhevsky, Sutskever & Hinton 2012, NIPS),
as used by Hezaveh et al. at 192 x 192 pixels:

====================  ======================  ==============
layer                 kernel / stride         output (192 px)
====================  ======================  ==============
conv1 64              11 x 11 / 4, no pad     64 x 46 x 46
max pool              3 x 3 / 2               64 x 22 x 22
conv2 192             5 x 5                   192 x 22 x 22
max pool              3 x 3 / 2               192 x 10 x 10
conv3-5 384, 384, 256 3 x 3                   256 x 10 x 10
max pool              3 x 3 / 2               256 x 4 x 4
fc6, fc7              4096, 4096              4096
out                   num_outputs             5
====================  ======================  ==============

36.8 million parameters for one band, 33.6 million of them in fc6 and fc7. An adaptive average
pool to 4 x 4 before fc6 (the identity at 192 px) lets other image sizes through.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lensnet.networks.layers import ConvBnAct, check_model_args, init_weights
from lensnet.networks.registry import register_model

__all__ = ["AlexNet"]


class AlexNet(nn.Module):
    """AlexNet-style convolutional regressor with two wide fully-connected layers.

    Parameters
    ----------
    in_chans : int
        Input bands [1].
    num_outputs : int
        Regressed parameters [5].
    drop_rate : float
        Dropout probability before fc7 and before the output layer [0.0].
    norm_layer : type of nn.Module, optional
        Normalisation after each convolution [None, as in the paper].
    fc_width : int
        Width of fc6 and fc7 [4096].
    """

    predicts_variance = False

    def __init__(self, in_chans: int = 1, num_outputs: int = 5, drop_rate: float = 0.0,
                 norm_layer: type[nn.Module] | None = None, fc_width: int = 4096):
        super().__init__()
        check_model_args(in_chans, num_outputs, drop_rate)
        self.num_outputs = num_outputs
        self.features = nn.Sequential(
            ConvBnAct(in_chans, 64, 11, stride=4, padding=0, norm_layer=norm_layer),
            nn.MaxPool2d(3, 2),
            ConvBnAct(64, 192, 5, norm_layer=norm_layer),
            nn.MaxPool2d(3, 2),
            ConvBnAct(192, 384, 3, norm_layer=norm_layer),
            ConvBnAct(384, 384, 3, norm_layer=norm_layer),
            ConvBnAct(384, 256, 3, norm_layer=norm_layer),
            nn.MaxPool2d(3, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc6 = nn.Linear(256 * 4 * 4, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.head = nn.Linear(fc_width, num_outputs)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        init_weights(self, self.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to the last convolutional map (B, 256, h, w)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (B, 256, h, w) to predictions (B, num_outputs)."""
        x = torch.flatten(self.pool(x), 1)
        x = self.drop(self.act(self.fc6(x)))
        x = self.drop(self.act(self.fc7(x)))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to predictions (B, num_outputs)."""
        return self.forward_head(self.forward_features(x))



@register_model
def alexnet(**kwargs) -> AlexNet:
    """AlexNet-style network of Hezaveh et al. 2017 (36.8 M parameters at one band)."""
    return AlexNet(**kwargs)
