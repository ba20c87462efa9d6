"""Normalised total variation and the differentiable lineal path of batched 2D indicator slices."""
from __future__ import annotations

import torch

from .correlations import DIRECTIONS, shifted
from .registry import register_descriptor


@register_descriptor("variation")
def total_variation(indicator: torch.Tensor, limit_to: int = 8) -> torch.Tensor:
    """Normalised total variation ``V_p = 1/(H W) sum_x |I_p(x) - I_p(x - e_y)| + |I_p(x) - I_p(x - e_x)|``,
    periodic (paper 003, Eq. 5 normalised by the pixel count, section 2.3.3): the phase-boundary length per
    pixel in the Manhattan metric. Matched to its target, not minimised. Shape ``(B, P)``."""
    dy = (indicator - torch.roll(indicator, 1, dims=-2)).abs()
    dx = (indicator - torch.roll(indicator, 1, dims=-1)).abs()
    return (dy + dx).mean(dim=(-2, -1))


@register_descriptor("lineal_path")
def lineal_path(indicator: torch.Tensor, limit_to: int = 8, sharpness: float = 10.0) -> torch.Tensor:
    """Differentiable lineal path ``L_p(a d)``: the probability that the digital segment from ``x`` to
    ``x + a d`` lies wholly in phase ``p``, for the axis and diagonal directions ``d`` and ``a = 1..limit_to``
    (paper 004, Appendix 1: convolve - threshold - reduce). The segment's ``n = a + 1`` pixels are averaged
    (the convolution with the discretised line), the average is thresholded with the sigmoid
    ``sigmoid(sharpness * (2 n m - 2 n + 1))``, which is ``sigmoid(+-sharpness)`` for a 0/1 field (the line is
    inside, or at least one pixel is outside), and the result is averaged over ``x``. Shape
    ``(B, P * 4 * limit_to)``."""
    out = []
    for dy, dx in DIRECTIONS:
        running = indicator
        for a in range(1, limit_to + 1):
            running = running + shifted(indicator, (a * dy, a * dx))
            n = a + 1
            # mean m = running / n; threshold halfway between 1 - 1/n and 1, scaled to +-sharpness at 0/1 input
            z = sharpness * (2.0 * running - 2.0 * n + 1.0)
            out.append(torch.sigmoid(z).mean(dim=(-2, -1)))
    return torch.stack(out, dim=-1).flatten(1)
