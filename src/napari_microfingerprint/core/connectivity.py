"""The connectivity prior of 3D reconstructions: which phases form networks, how well they must conduct, and the
bridging of cut-off clusters.

Two-point statistics of 2D slices do not constrain the connectivity of a 3D structure (Torquato, *Random
Heterogeneous Materials*, 2002, ch. 2): a pore space of isolated blobs and a connected one can have the same
slices. Measured on the Leopard sandstone (BENCHMARKS.md), the slice descriptors alone pull the pore space into
blobs, like a level-cut Gaussian random field near its percolation threshold, and at porosities of 0.13-0.23 it
stops percolating; starting from a connected structure does not help, the descriptors cut its throats again.
Transport through the real rock is well described by Archie's law ``D_eff / D_0 = eps^m`` with cementation
exponent ``m ~ 2`` (Archie 1942; the Leopard crops give m = 2.0). The default prior therefore asks every phase
that forms a network to conduct at least as well as Archie's law with ``m = 2``, i.e. a tortuosity factor of at
most ``1 / eps``: a one-sided floor on the differentiable diffusivity of :mod:`.transport`, which leaves a
phase that conducts better alone (the optimiser steps past it: the pore tortuosity ends at 0.5-0.9 of the bound,
BENCHMARKS.md). ``m`` is a setting (``archie_exponent``): a 3D reference's own (:func:`archie_exponent`), or a
value the user knows for the material. Network phases are those with :data:`MIN_NETWORK_FRACTION` up to
:data:`MAX_NETWORK_FRACTION` of the volume: below, a phase may be dispersed particles; above, it percolates
anyway, and a floor on it would trade volume fraction for conductance. The upper bound lies above one half
because a phase with just over half of the volume does not percolate anyway once the other phase is pushed to
conduct: on the porous zone of the Leopard sandstone (porosity 0.48-0.55) the solid then broke apart (largest
cluster 45-69 %, tortuosity 17 to infinite against 1.7-2.5; BENCHMARKS.md). Such a majority phase only gets the
weaker floor of :data:`MAJORITY_EXPONENT` (a tortuosity factor of at most ``1 / eps^2``), which keeps it
percolating without forcing it to conduct better than it does: the solid of a Boolean grain pack with porosity
0.48 has a tortuosity of 3.4-3.7, and Archie's ``m = 2`` pushed its reconstructions to 1.8-1.9. Phases of a 2D
reconstruction are left free.

In the decision stages, clusters of a network phase that the optimisation cut off and that are larger than a
ball of half the phase's mean chord length (small closed pores exist in real rock) are bridged to the largest
cluster by a face-connected path one voxel thick on each side (:func:`bridge_mask`); the later stages restore
the descriptors around the bridge. Before the last stage, specks of one or two voxels are given to their
neighbours' phase (:func:`despeckle`), and so are the small cut-off fragments of a matrix phase, one with more
than half of the volume (:func:`dissolve_fragments`); after the last stage, which leaves a few new specks, both
run once more on the result.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi

from .transport import tortuosity
from .validation import InputError, check_float, check_int, check_labels

#: Archie's cementation exponent of the default floor ``D_eff / D_0 >= eps^m``.
ARCHIE_EXPONENT = 2.0
#: Phases below this volume fraction are treated as dispersed (no connectivity floor).
MIN_NETWORK_FRACTION = 0.1
#: Phases at or above this volume fraction percolate without a floor (the Leopard's solid, 0.72, does).
MAX_NETWORK_FRACTION = 0.6
#: The exponent of the floor on a network phase with more than half of the volume: it only keeps it percolating.
MAJORITY_EXPONENT = 3.0
#: The largest exponent the ``archie_exponent`` setting takes (a tortuosity of ``eps^(1 - m)``: 10^4 at
#: ``eps = 0.1`` and ``m = 5``).
MAX_EXPONENT = 5.0


def network_phases(fractions: Sequence[float], ndim: int) -> list[int]:
    """The phases that get the connectivity floor: those of a 3D structure with at least
    :data:`MIN_NETWORK_FRACTION` and less than :data:`MAX_NETWORK_FRACTION` of the volume."""
    if ndim != 3:
        return []
    return [p for p, f in enumerate(fractions) if MIN_NETWORK_FRACTION <= f < MAX_NETWORK_FRACTION]


def floor_exponent(fraction: float) -> float:
    """The exponent ``m`` of a network phase's floor ``D_eff / D_0 >= eps^m``: Archie's :data:`ARCHIE_EXPONENT`
    up to half of the volume, the weaker :data:`MAJORITY_EXPONENT` above."""
    return ARCHIE_EXPONENT if fraction < 0.5 else MAJORITY_EXPONENT


def check_exponent(m, what: str) -> float:
    """``m`` as a cementation exponent: a finite number from 1 (straight channels, ``D_eff / D_0 = eps``) up to
    :data:`MAX_EXPONENT`; :class:`InputError` otherwise."""
    value = check_float(m, what)
    if not 1.0 <= value <= MAX_EXPONENT:
        raise InputError(f"{what}={m!r} is not a cementation exponent: give a number from 1 (straight channels) to "
                         f"{MAX_EXPONENT:g}; sandstones have about 1.8-2.5 (Archie's law D_eff / D_0 = eps^m).")
    return value


def floor_exponents(fractions: Sequence[float], ndim: int, given=None) -> dict[int, float]:
    """``{phase: m}`` of the connectivity floors of a structure with phase ``fractions``: every
    :func:`network_phases` phase with :func:`floor_exponent`. ``given`` (the ``archie_exponent`` setting) sets
    them: a number replaces Archie's exponent of the network phases below half of the volume; ``{phase: m}``
    sets (or adds) the floor of each phase named. :class:`InputError` when it names no phase it could act on."""
    out = {p: floor_exponent(fractions[p]) for p in network_phases(fractions, ndim)}
    if given is None:
        return out
    if ndim != 3:
        raise InputError("archie_exponent sets the connectivity floor of 3D reconstructions; a 2D one has none. "
                         "Drop it, or ask for a 3D shape.")
    if isinstance(given, Mapping):
        for phase, m in given.items():
            if isinstance(phase, bool) or not isinstance(phase, (int, np.integer)) or not 0 <= phase < len(fractions):
                raise InputError(f"archie_exponent is keyed by phase numbers 0..{len(fractions) - 1}; got {phase!r}.")
            out[int(phase)] = check_exponent(m, f"archie_exponent[{phase}]")
        return out
    m = check_exponent(given, "archie_exponent")
    minority = [p for p in out if fractions[p] < 0.5]
    if not minority:
        raise InputError(f"archie_exponent={given!r} applies to the network phases below half of the volume "
                         f"({MIN_NETWORK_FRACTION:g}-0.5 of it), and this structure has none (phase fractions "
                         f"{', '.join(f'{f:.3f}' for f in fractions)}); name the phase: {{phase: m}}.")
    return {**out, **{p: m for p in minority}}


def archie_exponent(structure, phase: int = 1) -> float:
    """The cementation exponent of ``phase`` in a 3D phase map: ``m = 1 + log(tau) / log(1 / eps)`` from Archie's
    law ``D_eff / D_0 = eps^m`` with the tortuosity factor ``tau = eps / (D_eff / D_0)`` (its geometric mean
    over the axes along which the phase percolates; exact solver, :func:`.transport.tortuosity`). The Leopard
    sandstone's 100^3 volume gives 2.34 for its pores (its y axis is tortuous; its 64^3 crops conduct as m = 2.0
    at their mean porosity). :class:`InputError` when the phase percolates along no axis (no finite tortuosity)
    or is not a 3D structure's."""
    lab = check_labels(structure, "structure")
    if lab.ndim != 3:
        raise InputError(f"archie_exponent needs a 3D structure, got {lab.ndim}D: 2D tortuosities do not carry "
                         "over to 3D.")
    eps = float((lab == check_int(phase, "phase", 0)).mean())
    if not 0.0 < eps < 1.0:
        raise InputError(f"phase {phase} fills {eps:.0%} of the structure; an exponent needs a phase that fills "
                         "part of it.")
    taus = [r.tortuosity for r in tortuosity(lab, phase).values() if r.percolating]
    if not taus:
        raise InputError(f"phase {phase} connects no two opposite faces of the structure, so it has no finite "
                         "tortuosity and no Archie exponent.")
    return 1.0 + float(np.mean(np.log(taus))) / math.log(1.0 / eps)


def mean_chord(mask: np.ndarray) -> float:
    """Mean chord length of ``mask`` along the grid axes (phase voxels per boundary crossing, periodic)."""
    crossings = sum(int((mask != np.roll(mask, 1, axis=a)).sum()) for a in range(mask.ndim))
    return 2.0 * mask.ndim * float(mask.sum()) / max(crossings, 1)


def small_cluster_size(mask: np.ndarray) -> float:
    """Voxels of a ball (a disk in 2D) of half the mean chord of ``mask``: a cut-off cluster up to this size is
    left alone by :func:`bridge_mask` and dissolved by :func:`dissolve_fragments`."""
    radius = mean_chord(mask) / 4
    return 4.0 / 3.0 * np.pi * radius**3 if mask.ndim == 3 else np.pi * radius**2


def _path(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A face-connected voxel path from ``a`` to ``b`` that follows the straight segment (one axis per step)."""
    out = np.zeros(shape, dtype=bool)
    steps = int(np.abs(b - a).sum()) * 2 + 2
    here = a.copy()
    out[tuple(here)] = True
    for point in np.round(a + np.linspace(0.0, 1.0, steps)[:, None] * (b - a)).astype(int):
        for ax in range(len(shape)):
            while here[ax] != point[ax]:
                here[ax] += np.sign(point[ax] - here[ax])
                out[tuple(here)] = True
    return out


#: Bridges may add at most this share of a phase's voxels (largest clusters first).
MAX_BRIDGE_SHARE = 0.05


def bridge_mask(labels: np.ndarray, phase: int) -> np.ndarray:
    """Voxels to switch to ``phase`` so that its clusters larger than a ball of half its mean chord length join
    the largest cluster: for each, largest first, the path from its voxel nearest to the largest cluster to that
    cluster, dilated by one voxel, while the bridges add at most :data:`MAX_BRIDGE_SHARE` of the phase."""
    mask = labels == phase
    clusters, n = ndi.label(mask)
    bridges = np.zeros(labels.shape, dtype=bool)
    if n < 2:
        return bridges
    sizes = np.bincount(clusters.ravel())
    sizes[0] = 0
    largest = int(sizes.argmax())
    min_size = small_cluster_size(mask)
    dist, nearest = ndi.distance_transform_edt(clusters != largest, return_indices=True)
    budget = MAX_BRIDGE_SHARE * float(mask.sum())
    for k in np.argsort(sizes)[::-1]:
        if k == largest or k == 0:
            continue
        if sizes[k] <= min_size:
            break
        voxels = np.argwhere(clusters == k)
        start = voxels[dist[tuple(voxels.T)].argmin()]
        end = nearest[(slice(None), *start)]
        bridge = ndi.binary_dilation(_path(start, end, labels.shape)) & ~mask
        if (bridges | bridge).sum() > budget:
            break
        bridges |= bridge
    return bridges


def _neighbour_counts(labels: np.ndarray) -> np.ndarray:
    """``(P, *shape)``: for each voxel, how many of its face neighbours (periodic) hold each phase."""
    counts = np.zeros((int(labels.max()) + 1, *labels.shape), dtype=np.int16)
    for ax in range(labels.ndim):
        for shift in (1, -1):
            rolled = np.roll(labels, shift, axis=ax)
            for p in range(counts.shape[0]):
                counts[p] += rolled == p
    return counts


def despeckle(labels: np.ndarray, max_size: int = 2) -> np.ndarray:
    """``labels`` with every face-connected cluster of at most ``max_size`` voxels (of any phase) given to the
    phase most common among its face neighbours (periodic). Such specks are left by the decision of the soft
    field: they add boundary for the variation descriptor at almost no cost in the others, and each adds one
    to the Euler characteristic and to the cluster count."""
    out = labels.copy()
    counts = _neighbour_counts(labels)
    for p in range(counts.shape[0]):
        clusters, n = ndi.label(labels == p)
        if n == 0:
            continue
        small = np.bincount(clusters.ravel()) <= max_size
        small[0] = False
        where = small[clusters]
        if where.any():
            others = counts[:, where].copy()
            others[p] = -1
            out[where] = others.argmax(axis=0)
    return out


def periodic_clusters(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected clusters of ``mask`` on the periodic grid (a reconstruction's box wraps around): the
    labels of :func:`scipy.ndimage.label`, with clusters that touch across opposite faces merged; ``(labels,
    number of clusters)``, labels ``1..n``."""
    clusters, n = ndi.label(mask)
    if n < 2:
        return clusters, n
    parent = np.arange(n + 1)

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for ax in range(mask.ndim):
        first, last = np.take(clusters, 0, axis=ax), np.take(clusters, -1, axis=ax)
        for a, b in set(zip(first[(first > 0) & (last > 0)].tolist(), last[(first > 0) & (last > 0)].tolist())):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(k) for k in range(n + 1)])
    _, merged = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    return merged[clusters], int(merged.max())


def dissolve_fragments(labels: np.ndarray, phases: Sequence[int]) -> np.ndarray:
    """``labels`` with the cut-off clusters (periodic, :func:`periodic_clusters`) of each matrix phase in
    ``phases`` that are not larger than a ball of half its mean chord length (the size below which
    :func:`bridge_mask` leaves a network phase's clusters alone) given, each as a whole, to the phase most
    common among its face neighbours. A matrix (a phase with more than half of the volume) is one body in a
    consolidated material; its small floating fragments are left by the decision of the soft field, not by the
    descriptors (Leopard, middle slice: 10 fragments of 1-21 voxels in the 64^3 reconstruction, none in the
    real rock's 64^3 crops beyond pieces cut by the crop's faces). The caller chooses the matrix phases."""
    out = labels.copy()
    counts = None
    for p in phases:
        mask = labels == p
        clusters, n = periodic_clusters(mask)
        if n < 2:
            continue
        sizes = np.bincount(clusters.ravel())
        sizes[0] = 0
        min_size = small_cluster_size(mask)
        fragment = sizes <= min_size
        fragment[[0, int(sizes.argmax())]] = False
        if not fragment.any():
            continue
        counts = _neighbour_counts(labels) if counts is None else counts
        # neighbours of each cluster by phase, summed over its voxels; its own phase does not count
        around = np.stack([np.bincount(clusters.ravel(), weights=counts[q].ravel(), minlength=n + 1)
                           for q in range(counts.shape[0])])
        around[p] = -1
        where = fragment[clusters]
        out[where] = around.argmax(axis=0)[clusters[where]]
    return out
