"""VAE architectures in one registry; each has ``encode -> (mu, logvar)``, ``decode`` and ``forward``.

* ``conv`` - paper 000 section 3.2: three blocks of two 3x3 conv + batch norm + ReLU, each followed by pooling
  by 4 (32 / 64 / 128 filters), a mirrored decoder (upsampling by 4), latent 256, linear output (distance data).
* ``resnet18`` - paper 001 section 2.5: a ResNet18 encoder without its average pool and classifier, flattened,
  a 512-unit tanh layer, then mu and log-variance heads; a mirrored decoder of transposed convolutions, sigmoid
  output (for BCE).
* ``texture`` - paper 002 section 3: the frozen feature network of the Gram descriptor as encoder with trained
  mu / log-variance heads; a decoder of four blocks of nearest upsampling + 3x3 conv + LeakyReLU(0.3); latent 64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..descriptors.gram import build_feature_network
from ..validation import InputError

MODELS: dict[str, Callable[..., VAE]] = {}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator registering a :class:`VAE` subclass under ``name``."""

    def wrap(cls: type) -> type:
        MODELS[name] = cls
        return cls

    return wrap


def build_model(architecture: str, **config) -> VAE:
    """Instantiate a registered architecture; :class:`InputError` names the known ones otherwise."""
    if architecture not in MODELS:
        raise InputError(f"unknown architecture {architecture!r}; choose one of {', '.join(sorted(MODELS))}.")
    return MODELS[architecture](**config)


class VAE(nn.Module):
    """Common VAE behaviour: the reparameterisation trick and ``forward``."""

    patch_size: int
    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_hat, mu, logvar)``; samples ``z = mu + sigma * eps`` in training mode, uses ``mu`` in eval mode."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def _check_patch(patch_size: int, factor: int, name: str) -> int:
    if patch_size < factor or patch_size % factor:
        raise InputError(f"the {name} model needs a patch size that is a multiple of {factor}, got {patch_size}.")
    return patch_size // factor


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


@register_model("conv")
class ConvVAE(VAE):
    """Paper 000's convolutional VAE (pooling by ``pool``, paper 000: 4, after each of three blocks)."""

    def __init__(self, patch_size: int = 128, latent_dim: int = 256, in_channels: int = 1,
                 channels: Sequence[int] = (32, 64, 128), output: str = "linear", pool: int = 4) -> None:
        super().__init__()
        self.patch_size, self.latent_dim = patch_size, latent_dim
        self.side = _check_patch(patch_size, pool ** len(channels), "conv")
        blocks, c = [], in_channels
        for c_out in channels:
            blocks += [_conv_block(c, c_out), nn.MaxPool2d(pool)]
            c = c_out
        self.encoder = nn.Sequential(*blocks, nn.Flatten())
        flat = c * self.side**2
        self.mu, self.logvar = nn.Linear(flat, latent_dim), nn.Linear(flat, latent_dim)
        self.expand = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        rev = list(channels)[::-1]
        for i, c_in in enumerate(rev):
            c_out = rev[i + 1] if i + 1 < len(rev) else rev[-1]
            dec += [nn.Upsample(scale_factor=pool, mode="nearest"), _conv_block(c_in, c_out)]
        dec.append(nn.Conv2d(rev[-1], in_channels, 1))
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)
        self.top = rev[0]

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.decoder(self.expand(z).view(-1, self.top, self.side, self.side))


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN with a (projected) skip connection."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


@register_model("resnet18")
class ResNet18VAE(VAE):
    """Paper 001's ResNet18-VAE (encoder downsamples by 32; decoder mirrors it with transposed convolutions)."""

    def __init__(self, patch_size: int = 128, latent_dim: int = 256, in_channels: int = 1,
                 channels: Sequence[int] = (64, 128, 256, 512), hidden: int = 512, output: str = "sigmoid") -> None:
        super().__init__()
        self.patch_size, self.latent_dim = patch_size, latent_dim
        self.side = _check_patch(patch_size, 32, "resnet18")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 7, 2, 3, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        c = channels[0]
        for i, c_out in enumerate(channels):
            layers += [_BasicBlock(c, c_out, 1 if i == 0 else 2), _BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = c * self.side**2
        self.fc = nn.Sequential(nn.Linear(flat, hidden), nn.Tanh())
        self.mu, self.logvar = nn.Linear(hidden, latent_dim), nn.Linear(hidden, latent_dim)
        self.expand = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, flat))
        dec: list[nn.Module] = []
        rev = list(channels)[::-1] + [channels[0]]
        for c_in, c_out in zip(rev[:-1], rev[1:], strict=True):
            dec += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        dec += [nn.ConvTranspose2d(channels[0], channels[0], 4, 2, 1), nn.BatchNorm2d(channels[0]),
                nn.ReLU(inplace=True), nn.Conv2d(channels[0], in_channels, 3, padding=1)]
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)
        self.top = c

    def encode(self, x):
        h = self.fc(self.encoder(x))
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.decoder(self.expand(z).view(-1, self.top, self.side, self.side))


@register_model("texture")
class TextureVAE(VAE):
    """Paper 002's texture-VAE: frozen feature encoder (shared with the Gram descriptor), trained heads, and an
    upsample + conv + LeakyReLU(0.3) decoder."""

    def __init__(self, patch_size: int = 128, latent_dim: int = 64, in_channels: int = 1,
                 decoder_channels: Sequence[int] = (128, 64, 32, 16), weights: str | None = None,
                 output: str = "sigmoid") -> None:
        super().__init__()
        self.patch_size, self.latent_dim = patch_size, latent_dim
        self.side = _check_patch(patch_size, 2 ** len(decoder_channels), "texture")
        self.features = build_feature_network(in_channels, weights)
        with torch.no_grad():
            probe = self.features(torch.zeros(1, in_channels, patch_size, patch_size))
        self.pool = nn.AdaptiveAvgPool2d(4)
        flat = sum(f.shape[1] for f in probe) * 16
        self.mu, self.logvar = nn.Linear(flat, latent_dim), nn.Linear(flat, latent_dim)
        self.expand = nn.Linear(latent_dim, decoder_channels[0] * self.side**2)
        dec: list[nn.Module] = []
        chans = list(decoder_channels) + [decoder_channels[-1]]
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                    nn.LeakyReLU(0.3)]
        dec.append(nn.Conv2d(chans[-1], in_channels, 3, padding=1))
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)
        self.top = decoder_channels[0]

    def encode(self, x):
        feats = self.features(x)
        h = torch.cat([self.pool(f).flatten(1) for f in feats], dim=1)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.decoder(self.expand(z).view(-1, self.top, self.side, self.side))

