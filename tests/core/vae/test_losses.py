import math

import numpy as np
import pytest
import torch

from napari_microfingerprint.core.vae import losses


def test_kl_against_a_hand_computation():
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]], dtype=torch.float64)
    # per dimension: 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2)
    rows = [0.5 * ((1 + 0.25 - 1 - 0) + (4 + 1 - 1 - math.log(4))),
            0.5 * ((0.25 + 0 - 1 - math.log(0.25)) + (1 + 4 - 1 - 0))]
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(np.mean(rows))
    assert losses.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_spectral_loss_against_a_hand_computation():
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    x_hat = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    x_hat[0, 0, 0, 0] = 1.0
    # the FFT of a unit impulse is 1 at every one of the 4 frequencies: mean |diff|^2 = 1
    assert losses.spectral(x_hat, x).item() == pytest.approx(1.0)
    a = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    b = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    fa, fb = np.fft.fft2(a.numpy()[0, 0]), np.fft.fft2(b.numpy()[0, 0])
    assert losses.spectral(a, b).item() == pytest.approx(np.mean(np.abs(fa - fb) ** 2))
    # Parseval: the spectral loss is m times the pixel MSE for an unnormalised FFT
    assert losses.spectral(a, b).item() == pytest.approx(16 * losses.mse(a, b).item())


def test_bce_spectral_mix_and_bce():
    x = torch.tensor([[[[0.0, 1.0]]]])
    p = torch.tensor([[[[0.2, 0.7]]]])
    assert losses.bce(p, x).item() == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2, rel=1e-5)
    mix = losses.bce_spectral(p, x, alpha=0.3).item()
    assert mix == pytest.approx(0.3 * losses.bce(p, x).item() + 0.7 * losses.spectral(p, x).item(), rel=1e-6)


def test_style_loss_zero_for_identical_inputs_and_shift_invariant():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    y = torch.rand(2, 1, 32, 32)
    assert losses.style(x, x).item() == 0.0
    shifted = torch.roll(x, shifts=(8, 4), dims=(-2, -1))  # a multiple of the network's pooling (4)
    assert losses.style(shifted, x).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.style(y, x).item() > 1e-6
