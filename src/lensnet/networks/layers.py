"""Building blocks shared by the network families, in plain ``torch.nn``.

- :class:`ConvBnAct`: convolution, optional normalisation, optional activation.
- :class:`AddCoords`: appends the sky-coordinate maps x, y as two extra channels, so that a
  translation-equivariant network can still regress the absolute lens centre.
- :func:`init_weights`: He-normal initialisation for ReLU networks.
- :func:`check_model_args`: the checks every constructor runs on ``in_chans``, ``num_outputs``
  and ``drop_rate``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lensnet.errors import LensnetRangeError

__all__ = ["ConvBnAct", "AddCoords", "AttentionPool", "init_weights", "check_model_args"]


class ConvBnAct(nn.Sequential):
    """Conv2d, then ``norm_layer`` (if any), then ``act_layer`` (if any).

    Parameters
    ----------
    in_chans, out_chans : int
        Input and output channels.
    kernel_size : int or tuple of int
        Kernel (height, width) in pixels.
    stride : int
        Stride in pixels [1].
    padding : int, tuple of int or str, optional
        Zero padding; ``None`` pads by half the kernel (size-preserving for odd kernels at stride
        1), ``"same"`` also handles even kernels at stride 1, ``0`` is TensorFlow's "VALID".
    norm_layer : type of nn.Module, optional
        Normalisation taking the channel count, e.g. ``nn.BatchNorm2d`` [``nn.BatchNorm2d``];
        ``None`` for none, in which case the convolution has a bias.
    act_layer : type of nn.Module, optional
        Activation [``nn.ReLU``]; ``None`` for a linear layer.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] | str | None = None,
                 norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
                 act_layer: type[nn.Module] | None = nn.ReLU):
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (k[0] // 2, k[1] // 2)
        layers = [nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding,
                            bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_chans))
        if act_layer is not None:
            layers.append(act_layer(inplace=True) if act_layer is nn.ReLU else act_layer())
        super().__init__(*layers)


class AddCoords(nn.Module):
    """Append two channels holding x and y in [-1, 1] (x along columns, y along rows).

    Input (B, C, H, W), output (B, C + 2, H, W), same device and dtype. y grows with the row
    index, i.e. upwards in lensnet's FITS row order (row 0 at the bottom).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack((grid_x, grid_y)).expand(b, 2, h, w)
        return torch.cat((x, coords), dim=1)


class AttentionPool(nn.Module):
    """Global average pool plus ``heads`` attention pools that keep where things are.

    Each head is a 1 x 1 convolution giving a map whose softmax over the H x W positions weighs the
    features and the positions: the soft-argmax (x, y) in [-1, 1] (as :class:`AddCoords`) of what the
    head attends to. A global average pool alone throws position away; this is the "keypoint" pooling of
    spatial-softmax heads (Levine et al. 2016, JMLR 17, 1334; arXiv:1504.00702), joined with the
    attention pooling of Lee et al. 2019 (Set Transformer, arXiv:1810.00825).

    Input (B, C, H, W); output (B, C + heads * (C + 2)): the average, then each head's features,
    then each head's (x, y).
    """

    def __init__(self, in_chans: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.num_features = in_chans + heads * (in_chans + 2)
        self.attention = nn.Conv2d(in_chans, heads, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weights = torch.softmax(self.attention(x).flatten(2).float(), dim=-1).to(x.dtype)  # (B, heads, HW)
        flat = x.flatten(2)  # (B, C, HW)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        positions = torch.stack((grid_x.flatten(), grid_y.flatten()), dim=1)  # (HW, 2)
        features = torch.einsum("bmn,bcn->bmc", weights, flat).flatten(1)
        where = (weights @ positions).flatten(1)
        return torch.cat((flat.mean(-1), features, where), dim=1)


def init_weights(model: nn.Module, head: nn.Module | None = None, head_std: float = 0.01) -> None:
    """He-normal (fan-in, ReLU) weights and zero biases for every Conv2d and Linear of ``model``.

    Normalisation layers start at weight 1 and bias 0. ``head``, the output layer, gets small
    normal weights of standard deviation ``head_std`` so that the first predictions sit near zero
    (targets are standardised) instead of adding a large random offset.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if head is not None:
        nn.init.normal_(head.weight, std=head_std)
        if head.bias is not None:
            nn.init.zeros_(head.bias)


def check_model_args(in_chans: int, num_outputs: int, drop_rate: float) -> None:
    """Raise :class:`LensnetRangeError` naming the constructor argument that is out of range."""
    if int(in_chans) != in_chans or in_chans < 1:
        raise LensnetRangeError("in_chans", in_chans, 1, None,
                                "the number of input bands must be a positive integer")
    if int(num_outputs) != num_outputs or num_outputs < 1:
        raise LensnetRangeError("num_outputs", num_outputs, 1, None,
                                "the number of outputs must be a positive integer")
    if not 0.0 <= drop_rate < 1.0:
        raise LensnetRangeError("drop_rate", drop_rate, 0.0, 1.0, "the dropout probability must be in [0, 1)")

