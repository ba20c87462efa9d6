"""Volume fractions, two-point and three-point correlations of batched 2D indicator slices (paper 004,
"Correlations"; the differentiable generalisation of n-point correlations used by paper 003, section 2.1).

All functions take ``indicator`` of shape ``(B, P, H, W)`` with values in [0, 1] and are periodic. For a
discrete 0/1 field they equal the classical probabilities; for a soft field they are its smooth extension,
so gradients flow (paper 003: ``D~(M) = D(M)`` for integer-valued ``M``).
"""
from __future__ import annotations

import torch

from .registry import register_descriptor

#: Unit directions (dy, dx) of the offsets used by the three-point correlations and the lineal path:
#: along both axes and both diagonals.
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))


def half_plane_offsets(limit_to: int) -> list[tuple[int, int]]:
    """Offsets ``(dy, dx)`` with ``|dy|, |dx| <= limit_to`` in one half plane (``S2(r) = S2(-r)``)."""
    return [(dy, dx) for dy in range(0, limit_to + 1) for dx in range(-limit_to, limit_to + 1)
            if dy > 0 or dx >= 0]


def line_offsets(limit_to: int) -> list[tuple[int, int]]:
    """The offsets ``a * d`` for the :data:`DIRECTIONS` ``d`` and ``a = 1..limit_to``."""
    return [(a * dy, a * dx) for dy, dx in DIRECTIONS for a in range(1, limit_to + 1)]


def shifted(indicator: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """``I(x + offset)`` on the periodic grid."""
    return torch.roll(indicator, shifts=(-offset[0], -offset[1]), dims=(-2, -1))


@register_descriptor("volume_fractions")
def volume_fractions(indicator: torch.Tensor, limit_to: int = 8) -> torch.Tensor:
    """Volume fraction of each phase: ``v_p = <I_p(x)>_x`` (paper 004, Eq. 2 and Table 3); shape ``(B, P)``."""
    return indicator.mean(dim=(-2, -1))


@register_descriptor("s2")
def two_point_correlation(indicator: torch.Tensor, limit_to: int = 8) -> torch.Tensor:
    """Two-point correlation ``S2_p(r) = <I_p(x) I_p(x + r)>_x`` for every offset ``r`` with
    ``|r_y|, |r_x| <= limit_to`` in one half plane (paper 004 "Correlations", paper 003 Fig. 9), periodic,
    computed for all offsets at once from FFTs: ``S2 = IFFT(|FFT(I)|^2) / (H W)``. Shape
    ``(B, P * ((2L+1)^2 + 1) / 2)``."""
    h, w = indicator.shape[-2:]
    spectrum = torch.fft.rfft2(indicator)
    corr = torch.fft.irfft2(spectrum * spectrum.conj(), s=(h, w)) / (h * w)
    offsets = torch.tensor(half_plane_offsets(limit_to), device=indicator.device)
    picked = corr[..., offsets[:, 0] % h, offsets[:, 1] % w]
    return picked.flatten(1)


@register_descriptor("s3")
def three_point_correlation(indicator: torch.Tensor, limit_to: int = 8) -> torch.Tensor:
    """Three-point correlation ``S3_p(r1, r2) = <I_p(x) I_p(x + r1) I_p(x + r2)>_x`` for every pair of offsets
    ``r1, r2`` taken from the axes and diagonals up to ``limit_to`` (:func:`line_offsets`; paper 004
    "Correlations"), periodic. All pairs are one batched matrix product: ``S3 = (I R)(R)^T / N`` with ``R`` the
    stack of shifted fields. Shape ``(B, P * n (n + 1) / 2)`` with ``n = 4 * limit_to``."""
    offs = line_offsets(limit_to)
    b, p, h, w = indicator.shape
    rolled = torch.stack([shifted(indicator, o) for o in offs], dim=2).reshape(b, p, len(offs), h * w)
    weighted = rolled * indicator.reshape(b, p, 1, h * w)
    s3 = weighted @ rolled.transpose(-1, -2) / (h * w)
    iu = torch.triu_indices(len(offs), len(offs), device=indicator.device)
    return s3[..., iu[0], iu[1]].flatten(1)
