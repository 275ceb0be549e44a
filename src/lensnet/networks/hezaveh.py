"""The network of Hezaveh et al.'s own design (2017, Nature 548, 555; "our network" in Table 1).

Stacked convolutions without pooling: every spatial convolution (3 x 3, 5 x 5 or 10 x 10) is
followed by a 1 x 1 convolution, and three 10 x 10 convolutions of stride 2 halve the image, from
192 to 24 pixels; a fully-connected layer of 512 units then reads the whole 24 x 24 x 256 map.
Layout of the released code (Ensai, 2017), the first three convolutions linear as there:

===============================  ============  ==============
convolutions (channels, kernel)  stride        output (192 px)
===============================  ============  ==============
32 3x3, 32 1x1, 32 5x5, 32 1x1   1             32 x 192 x 192
32 10x10, 32 1x1                 2             32 x 96 x 96
32 10x10, 32 1x1                 1             32 x 96 x 96
64 10x10, 64 1x1                 2             64 x 48 x 48
64 10x10, 64 1x1                 1             64 x 48 x 48
128 10x10, 128 1x1               2             128 x 24 x 24
256 3x3, 256 1x1                 1             256 x 24 x 24
fc 512, out                                    5
===============================  ============  ==============

77.6 million parameters for one band, 75.5 million of them in the 512-unit layer. Stride-1 layers
pad to keep the size (TensorFlow's "SAME", asymmetric for even kernels); an adaptive average pool
to 24 x 24 before the fully-connected layer (the identity at 192 px) lets other sizes through.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lensnet.networks.layers import ConvBnAct, check_model_args, init_weights
from lensnet.networks.registry import register_model

__all__ = ["HezavehNet"]

# (out channels, kernel, stride, ReLU after it) of each convolution, in order.
_LAYERS = (
    (32, 3, 1, False), (32, 1, 1, False), (32, 5, 1, False), (32, 1, 1, True),
    (32, 10, 2, True), (32, 1, 1, True), (32, 10, 1, True), (32, 1, 1, True),
    (64, 10, 2, True), (64, 1, 1, True), (64, 10, 1, True), (64, 1, 1, True),
    (128, 10, 2, True), (128, 1, 1, True), (256, 3, 1, True), (256, 1, 1, True),
)


class HezavehNet(nn.Module):
    """Hezaveh et al.'s own regressor: 16 stacked convolutions, FC 512, linear output.

    Parameters
    ----------
    in_chans : int
        Input bands [1].
    num_outputs : int
        Regressed parameters [5].
    drop_rate : float
        Dropout probability before the output layer [0.0].
    norm_layer : type of nn.Module, optional
        Normalisation after each convolution [None, as in the paper].
    fc_grid : int
        Side of the map read by the 512-unit layer [24, that of a 192-pixel image].
    """

    predicts_variance = False

    def __init__(self, in_chans: int = 1, num_outputs: int = 5, drop_rate: float = 0.0,
                 norm_layer: type[nn.Module] | None = None, fc_grid: int = 24):
        super().__init__()
        check_model_args(in_chans, num_outputs, drop_rate)
        self.num_outputs = num_outputs
        layers, chans = [], in_chans
        for out_chans, kernel, stride, relu in _LAYERS:
            # "SAME": stride 1 pads k - 1 in all, the extra pixel at the high-index end; stride 2 pads
            # (k - 2) / 2 on each side, which maps an even size N to exactly N / 2.
            before = (kernel - 1) // 2 if stride == 1 else (kernel - 2) // 2
            after = kernel - 1 - before if stride == 1 else before
            if before != after:
                layers.append(nn.ZeroPad2d((before, after, before, after)))
            layers.append(ConvBnAct(chans, out_chans, kernel, stride, before if before == after else 0,
                                    norm_layer=norm_layer, act_layer=nn.ReLU if relu else None))
            chans = out_chans
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(fc_grid)
        self.fc = nn.Linear(chans * fc_grid * fc_grid, 512)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(512, num_outputs)
        init_weights(self, self.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to the last convolutional map (B, 256, H/8, W/8)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (B, 256, h, w) to predictions (B, num_outputs)."""
        x = self.act(self.fc(torch.flatten(self.pool(x), 1)))
        return self.head(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_chans, H, W) to predictions (B, num_outputs)."""
        return self.forward_head(self.forward_features(x))



@register_model
def hezaveh(**kwargs) -> HezavehNet:
    """The own-design network of Hezaveh et al. 2017 (77.6 M parameters at one band)."""
    return HezavehNet(**kwargs)
