"""Shared network layers: coordinate channels, conv blocks, mean/log-variance split."""

import torch
import torch.nn as nn

from lensnet.networks.layers import AddCoords, ConvBnAct


def test_add_coords_orientation():
    x = torch.zeros(2, 1, 4, 5, dtype=torch.float64)
    out = AddCoords()(x)
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float64
    gx, gy = out[0, 1], out[0, 2]
    torch.testing.assert_close(gx[0], torch.linspace(-1, 1, 5, dtype=torch.float64))  # x along columns
    torch.testing.assert_close(gy[:, 0], torch.linspace(-1, 1, 4, dtype=torch.float64))  # y along rows
    assert (gx[:, 2] == 0).all() and (gy[1] == gy[1, 0]).all()


def test_conv_bn_act_layout():
    block = ConvBnAct(3, 8, (1, 7))
    assert block[0].padding == (0, 3) and block[0].bias is None and isinstance(block[1], nn.BatchNorm2d)
    plain = ConvBnAct(3, 8, 11, stride=4, padding=0, norm_layer=None, act_layer=None)
    assert len(plain) == 1 and plain[0].bias is not None
    assert plain(torch.randn(1, 3, 192, 192)).shape == (1, 8, 46, 46)
