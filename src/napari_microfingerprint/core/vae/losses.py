"""VAE losses, each reported separately (papers 000, 001 and 002).

Reductions: the pixel losses (MSE, BCE, spectral) are means over every pixel of the batch; the KL divergence
is summed over the latent dimensions and averaged over the batch; the style loss is a sum over layers of the
mean squared Gram-matrix difference, averaged over the batch. Training weighs the KL divergence by
``beta / pixels`` (:func:`~.training.kl_weight`), which makes the objective the per-pixel evidence lower bound
at ``beta = 1`` (grain models default to 1e-3, :data:`~.training.DEFAULT_BETA`).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..descriptors.gram import feature_extractor


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``1/m sum (x - x_hat)^2`` over all pixels (paper 001 section 2.4; paper 000's loss)."""
    return F.mse_loss(x_hat, x, reduction="mean")


def bce(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy ``-[x log x_hat + (1 - x) log(1 - x_hat)]`` (paper 001 section 2.4), averaged over
    pixels; ``x_hat`` are probabilities in (0, 1) and ``x`` targets in [0, 1]."""
    return F.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6), x, reduction="mean")


def spectral(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Spectral loss (paper 001 section 2.4): the mean over frequencies of the squared difference of the real
    and imaginary parts of the 2D FFTs, ``1/m sum |F(x) - F(x_hat)|^2`` (unnormalised FFT)."""
    diff = torch.fft.fft2(x) - torch.fft.fft2(x_hat)
    return (diff.real**2 + diff.imag**2).mean()


def bce_spectral(x_hat: torch.Tensor, x: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Paper 001 Eq. 1: ``alpha * BCE + (1 - alpha) * spectral``, ``alpha`` in [0, 1]."""
    return alpha * bce(x_hat, x) + (1.0 - alpha) * spectral(x_hat, x)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL divergence of ``N(mu, exp(logvar))`` from ``N(0, 1)``:
    ``-1/2 sum_d (1 + logvar - mu^2 - exp(logvar))``, summed over latent dimensions, averaged over the batch."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def gram_matrices(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gram matrix ``G_ij = 1/M sum_k F_ik F_jk`` of each ``(B, C, H, W)`` feature map (paper 002 section 3)."""
    out = []
    for f in features:
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        out.append(flat @ flat.transpose(1, 2) / (h * w))
    return out


def style(x_hat: torch.Tensor, x: torch.Tensor, weights: str | None = None) -> torch.Tensor:
    """Style loss (paper 002 Eq. 2): the squared differences of the Gram matrices of a fixed feature network
    (the Gram descriptor's random or VGG19 features, circular padding), summed over layers; per layer the mean
    over matrix entries, averaged over the batch. Zero for identical inputs and invariant to circular shifts."""
    net = feature_extractor(x.shape[1], weights, str(x.device), x.dtype)
    total = x.new_zeros(())
    for g_hat, g in zip(gram_matrices(net(x_hat)), gram_matrices(net(x)), strict=True):
        total = total + ((g_hat - g) ** 2).mean()
    return total
