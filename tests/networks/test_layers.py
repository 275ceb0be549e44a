"""Shared network layers: coordinate channels, conv blocks, attention pooling, mean/log-variance split."""

import torch
import torch.nn as nn

from lensnet.networks.layers import AddCoords, AttentionPool, ConvBnAct


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


def test_attention_pool_finds_where_a_feature_is():
    pool = AttentionPool(3, heads=2)
    with torch.no_grad():
        pool.attention.weight.zero_()
        pool.attention.bias.zero_()
        pool.attention.weight[0, 0] = 50.0  # head 0 attends to channel 0
    x = torch.zeros(2, 3, 5, 7)
    x[0, 0, 1, 5] = 1.0  # row 1, column 5
    x[1, 0, 4, 0] = 1.0  # row 4, column 0
    out = pool(x)
    assert out.shape == (2, pool.num_features) and pool.num_features == 3 + 2 * (3 + 2)
    where = out[:, -4:].reshape(2, 2, 2)  # (lens, head, xy)
    torch.testing.assert_close(where[0, 0], torch.tensor([2 * 5 / 6 - 1, 2 * 1 / 4 - 1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(where[1, 0], torch.tensor([-1.0, 1.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(where[:, 1], torch.zeros(2, 2), atol=1e-6, rtol=0)  # uniform head: the centre
    torch.testing.assert_close(out[:, :3], x.flatten(2).mean(-1))
