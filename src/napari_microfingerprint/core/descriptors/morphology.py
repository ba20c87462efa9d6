"""Normalised total variation, the differentiable lineal path and the chord-length distribution of batched 2D
indicator slices."""
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


#: Chord lengths at which :func:`chord_length_survival` is evaluated (those up to ``4 * limit_to``), and how the
#: product over a run of ``r`` pixels is built from two shorter ones, ``P_{a+b}(x) = P_a(x) P_b(x + a e)``, so
#: that each length costs one product instead of ``r``.
CHORD_LENGTHS: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16, 24, 32)
_CHORD_BUILD: dict[int, tuple[int, int]] = {2: (1, 1), 3: (2, 1), 4: (2, 2), 6: (3, 3), 8: (4, 4), 12: (6, 6),
                                            16: (8, 8), 24: (12, 12), 32: (16, 16)}


def chord_lengths_for(limit_to: int) -> list[int]:
    """The chord lengths :func:`chord_length_survival` reports for ``limit_to``: those of
    :data:`CHORD_LENGTHS` up to ``4 * limit_to``."""
    return [r for r in CHORD_LENGTHS if r <= 4 * limit_to]


@register_descriptor("chord_lengths")
def chord_length_survival(indicator: torch.Tensor, limit_to: int = 8) -> torch.Tensor:
    """Chord-length distribution along the two axes: the share ``S_p(r) = G_p(r) / G_p(1)`` of the chords of
    phase ``p`` that are at least ``r`` pixels long, for the lengths :func:`chord_lengths_for` ``(limit_to)``.

    ``G_p(r) = < prod_{k<r} I_p(x + k e) * (1 - I_p(x + r e)) >_x`` is, on a 0/1 field, the number of chords
    (maximal runs) of length ``>= r`` per pixel along the axis ``e``, each counted at its end; it equals
    ``L_p(r) - L_p(r + 1)``, the first difference of the lineal path in its exact product form (Lu and
    Torquato 1992, paper 004 Appendix 1 for the lineal path as a descriptor), whose second difference is the
    chord-length density. Dividing by ``G_p(1)``, the number of chords, makes the descriptor a distribution:
    it sees the shape of the chord lengths, which S2 up to ``limit_to`` does not fix, and leaves their number
    to the variation. With one channel (two phases) both the phase and its complement are described.
    Periodic; differentiable (products of the soft indicator). Shape ``(B, C' * 2 * n_lengths)``: channel by
    channel, along x then y, by length."""
    ch = torch.cat([indicator, 1.0 - indicator], dim=1) if indicator.shape[1] == 1 else indicator
    lengths = chord_lengths_for(limit_to)
    out = []
    for dim in (-1, -2):
        runs = {1: ch}
        for r in lengths:
            a, b = _CHORD_BUILD[r]
            runs[r] = runs[a] * torch.roll(runs[b], -a, dims=dim)

        def ending(r: int) -> torch.Tensor:
            return (runs[r] * (1.0 - torch.roll(ch, -r, dims=dim))).mean(dim=(-2, -1))

        count = ending(1) + 1e-4  # chords per pixel; the offset keeps a one-phase slice finite
        out += [ending(r) / count for r in lengths]
    return torch.stack(out, dim=-1).flatten(1)
