"""Gram matrices of convolutional feature maps (papers 002-004; Gatys-style texture statistics).

Pretrained ImageNet weights cannot be downloaded at run time here, so the default feature extractor is a fixed,
seeded, multi-scale random convolutional network (random networks are known to serve texture synthesis). A
user-supplied VGG19 weights file (a torchvision ``vgg19`` state dict, read with ``weights_only=True``, or a
``.safetensors`` file) switches to VGG19's ``relu1_1 ... relu4_1`` features. Both pad circularly, so the
descriptor is periodic like the others. The feature extractors are shared with the VAE ``texture`` model.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..validation import InputError
from .registry import register_descriptor

#: Channels of the random network's three scales.
RANDOM_CHANNELS = (16, 32, 64)
#: VGG19 convolution widths (``"M"`` = max pool) up to ``relu4_1``.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)
#: Indices in torchvision's ``vgg19().features`` of the layers read out: relu1_1, relu2_1, relu3_1, relu4_1.
_VGG19_TAPS = (1, 6, 11, 20)


class RandomFeatures(nn.Module):
    """Fixed multi-scale random features: three blocks of circular 3x3 conv + ReLU, with 2x average pooling
    between them; He-initialised from a seeded generator and frozen."""

    def __init__(self, in_channels: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers = []
        c_in = in_channels
        for c_out in RANDOM_CHANNELS:
            conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular")
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (9 * c_in)) ** 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.1)
            layers.append(conv)
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, conv in enumerate(self.convs):
            if i:
                x = nn.functional.avg_pool2d(x, 2)
            x = torch.relu(conv(x))
            feats.append(x)
        return feats


class VGG19Features(nn.Module):
    """VGG19 convolutions up to ``relu4_1`` with circular padding; returns relu1_1, relu2_1, relu3_1, relu4_1."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in _VGG19_CFG:
            if item == "M":
                layers.append(nn.AvgPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, int(item), 3, padding=1, padding_mode="circular"), nn.ReLU()]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        own = {k: v for k, v in state_dict.items() if k.startswith("features.")}
        own = {k[len("features."):]: v for k, v in own.items()} if own else dict(state_dict)
        wanted = self.features.state_dict()
        missing = [k for k in wanted if k not in own]
        if missing:
            raise InputError(
                f"the VGG19 weights file lacks {len(missing)} tensor(s) (e.g. 'features.{missing[0]}'); "
                "give a torchvision vgg19 state dict."
            )
        for k, v in wanted.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise InputError(f"VGG19 tensor 'features.{k}' has shape {tuple(own[k].shape)}, expected {tuple(v.shape)}.")
        self.features.load_state_dict({k: own[k] for k in wanted})
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1) - self.mean) / self.std
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG19_TAPS:
                feats.append(x)
        return feats


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights from ``.safetensors`` or a plain torch state dict with ``weights_only=True`` (no unpickling
    of arbitrary objects); :class:`InputError` when the file is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights file {p} does not exist.")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p))
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt files raise many exception types
        raise InputError(f"weights file {p.name} could not be read ({type(err).__name__}: {err}).") from err
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(f"{p.name} is not a state dict of tensors.")
    return data


def build_feature_network(in_channels: int, weights: str | None = None) -> nn.Module:
    """A new frozen feature network: :class:`VGG19Features` from ``weights``, else :class:`RandomFeatures`."""
    return (VGG19Features(load_state_dict(weights)) if weights else RandomFeatures(in_channels)).eval()


@lru_cache(maxsize=8)
def feature_extractor(in_channels: int, weights: str | None, device: str, dtype: torch.dtype) -> nn.Module:
    """The shared, cached feature network of the Gram descriptor and the style loss on ``device``."""
    return build_feature_network(in_channels, weights).to(device=device, dtype=dtype)


@register_descriptor("gram")
def gram_matrices(indicator: torch.Tensor, limit_to: int = 8, weights: str | None = None) -> torch.Tensor:
    """Gram matrices ``G^l_ij = <F^l_i(x) F^l_j(x)>_x`` of the feature maps ``F^l`` of each layer ``l`` of a
    fixed convolutional network applied to the indicator slices (papers 002 Eq. 2, 003-004 "Gram matrices");
    upper triangles concatenated. ``limit_to`` is unused (the receptive field sets the range).
    Shape ``(B, sum_l C_l (C_l + 1) / 2)``."""
    net = feature_extractor(indicator.shape[1], weights, str(indicator.device), indicator.dtype)
    out = []
    for f in net(indicator):
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        g = flat @ flat.transpose(1, 2) / (h * w)
        iu = torch.triu_indices(c, c, device=f.device)
        out.append(g[:, iu[0], iu[1]])
    return torch.cat(out, dim=1)
