"""Inception-v1 I3D (Carreira & Zisserman 2017) with the parameter names of the widely used PyTorch port, so
the Kinetics-400 state dict ``i3d_pretrained_400.pt`` (the DisCo / VideoGPT FVD convention) loads as is.

Public API (stable):

- ``InceptionI3d(num_classes=400, in_channels=3, width=1.0)``: ``forward(x) -> (N, num_classes)`` logits
  averaged over time; ``extract_features(x) -> (N, 1024)`` the pooled features before the logits layer.
  ``x`` is ``(N, 3, T, H, W)`` float in [-1, 1], 224x224 for the pretrained weights. ``width`` < 1 scales every
  layer's channel count (tiny random-init stand-ins for tests and benchmarks; the pretrained file needs 1.0).
- ``load_inception_i3d(path, device="cpu") -> InceptionI3d``: eval-mode model from a state-dict file read with
  ``torch.load(weights_only=True)`` (no code in the file can run); raises ``ValueError`` naming the file when
  it is not a weights file (e.g. a pickle holding code) or the mismatching keys when it is not an InceptionI3d
  state dict.

Layer layout: every convolution is a ``Unit3D`` (3-D conv without bias, BatchNorm eps 1e-3, ReLU) with
TensorFlow "SAME" padding computed from the input size; the network is Conv3d_1a_7x7 (stride 2),
MaxPool3d_2a_3x3 (1x3x3, stride 1x2x2), Conv3d_2b_1x1, Conv3d_2c_3x3, MaxPool3d_3a_3x3, Mixed_3b, Mixed_3c,
MaxPool3d_4a_3x3 (3x3x3, stride 2), Mixed_4b..4f, MaxPool3d_5a_2x2 (stride 2), Mixed_5b, Mixed_5c, then an
average pool of 2x7x7 (stride 1) and a 1x1x1 conv with bias to the logits. A Mixed block concatenates four
branches: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool -> 1x1x1.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

#: (name, (branch0, branch1 reduce, branch1, branch2 reduce, branch2, branch3)) of the Inception blocks.
MIXED_BLOCKS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (front, back) of one axis."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (_same_padding(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class MaxPool3dSamePadding(nn.MaxPool3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + optional BatchNorm3d + optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        output_channels: int,
        kernel_shape=(1, 1, 1),
        stride=(1, 1, 1),
        activation: bool = True,
        use_batch_norm: bool = True,
        use_bias: bool = False,
    ):
        super().__init__()
        self.kernel_shape, self.stride = tuple(kernel_shape), tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(in_channels, output_channels, self.kernel_shape, self.stride, bias=use_bias)
        self.bn = nn.BatchNorm3d(output_channels, eps=1e-3, momentum=0.01) if use_batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel_shape, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    def __init__(self, in_channels: int, out_channels):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = out_channels
        self.b0 = Unit3D(in_channels, b0)
        self.b1a = Unit3D(in_channels, b1a)
        self.b1b = Unit3D(b1a, b1b, kernel_shape=(3, 3, 3))
        self.b2a = Unit3D(in_channels, b2a)
        self.b2b = Unit3D(b2a, b2b, kernel_shape=(3, 3, 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, b3)
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D; see the module docstring for the layout and the two outputs."""

    def __init__(self, num_classes: int = 400, in_channels: int = 3, width: float = 1.0):
        super().__init__()

        def ch(n: int) -> int:
            return max(1, round(n * width))

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["Conv3d_1a_7x7"] = Unit3D(in_channels, ch(64), (7, 7, 7), stride=(2, 2, 2))
        layers["MaxPool3d_2a_3x3"] = MaxPool3dSamePadding(kernel_size=(1, 3, 3), stride=(1, 2, 2))
        layers["Conv3d_2b_1x1"] = Unit3D(ch(64), ch(64))
        layers["Conv3d_2c_3x3"] = Unit3D(ch(64), ch(192), (3, 3, 3))
        layers["MaxPool3d_3a_3x3"] = MaxPool3dSamePadding(kernel_size=(1, 3, 3), stride=(1, 2, 2))
        channels = ch(192)
        for name, outs in MIXED_BLOCKS.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSamePadding(kernel_size=(2, 2, 2), stride=(2, 2, 2))
            layers[name] = InceptionModule(channels, [ch(o) for o in outs])
            channels = layers[name].out_channels
        # Registered as direct children (no container prefix) so the state-dict keys match the public weights.
        for name, module in layers.items():
            self.add_module(name, module)
        self.end_point_names = tuple(layers)
        self.feature_dim = channels
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(channels, num_classes, activation=False, use_batch_norm=False, use_bias=True)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"InceptionI3d expects (N, 3, T, H, W) videos, got shape {tuple(x.shape)}")
        for name in self.end_point_names:
            x = getattr(self, name)(x)
        if x.shape[-2] < 7 or x.shape[-1] < 7 or x.shape[-3] < 2:
            raise ValueError(
                "InceptionI3d needs at least 9 frames at 224x224 (the 2x7x7 final pooling window)"
            )
        return self.avg_pool(x)  # (N, C, T', 1, 1)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the logits layer, averaged over time: ``(N, feature_dim)``."""
        return self._pooled(x).flatten(2).mean(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits averaged over time: ``(N, num_classes)``."""
        return self.logits(self.dropout(self._pooled(x))).flatten(2).mean(2)


def load_inception_i3d(path: str | os.PathLike, device="cpu") -> InceptionI3d:
    """An eval-mode :class:`InceptionI3d` from a state-dict file (full width, 400 classes by default)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(
            f"{path}: not a weights file torch.load(weights_only=True) can read (it may hold code, which is "
            f"refused): {' '.join(str(error).split())[:300]}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (got {type(state).__name__})")  # noqa: TRY004
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "logits.conv3d.weight" not in state or "Conv3d_1a_7x7.conv3d.weight" not in state:
        raise ValueError(
            f"{path}: not an InceptionI3d state dict (no 'Conv3d_1a_7x7.conv3d.weight' / "
            "'logits.conv3d.weight' keys)"
        )
    num_classes = state["logits.conv3d.weight"].shape[0]
    width = state["Conv3d_1a_7x7.conv3d.weight"].shape[0] / 64
    model = InceptionI3d(num_classes=num_classes, width=width)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: InceptionI3d state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval().to(device)
