"""Seeded synthetic microstructures for samples, demos and tests (2D and 3D).

* :func:`make_grain_structure` - polycrystals: periodic Voronoi seeds coarsened by curvature-driven grain
  growth with a vectorised Potts Monte Carlo model (the Potts alternative to the multi-phase-field model of
  Ji et al., paper 000 section 2.1; both evolve boundaries by mean curvature and conserve no grain count).
* :func:`make_two_phase` - a thresholded Gaussian random field with a chosen volume fraction.
* :func:`make_particles` - non-overlapping polydisperse disks or spheres.
* :func:`make_lamellae` - parallel lamellae with a chosen orientation and spacing.
* :func:`make_micrograph` - renders a label map as a noisy, unevenly lit greyscale micrograph, so that the
  segmentation pipeline can be checked against a known truth.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.segmentation import find_boundaries, relabel_sequential

from .device import resolve_device
from .validation import InputError

#: Monte Carlo steps recorded as the early, intermediate and late stages of grain growth.
GRAIN_STAGES: dict[str, int] = {"early": 4, "intermediate": 24, "late": 96}


def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    shp = (int(shape), int(shape)) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shp) not in (2, 3) or min(shp) < 4:
        raise InputError(f"shape {shp} is not supported; give 2 or 3 sizes of at least 4 pixels each.")
    return shp


def voronoi_labels(shape: int | Sequence[int], n_grains: int, seed: int = 0) -> np.ndarray:
    """Periodic Voronoi tessellation of ``n_grains`` uniformly random seeds; labels 1..n_grains."""
    shp = _shape_tuple(shape)
    if n_grains < 1:
        raise InputError(f"n_grains must be at least 1, got {n_grains}.")
    rng = np.random.default_rng(seed)
    seeds = rng.random((n_grains, len(shp))) * np.asarray(shp)
    tree = cKDTree(seeds, boxsize=np.asarray(shp, dtype=float))
    grid = np.stack(np.meshgrid(*[np.arange(s) + 0.5 for s in shp], indexing="ij"), axis=-1).reshape(-1, len(shp))
    _, idx = tree.query(np.mod(grid, shp))
    return (idx.reshape(shp) + 1).astype(np.int32)


def _moore_offsets(ndim: int) -> list[tuple[int, ...]]:
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]


def potts_grain_growth(
    labels: np.ndarray,
    mc_steps: Sequence[int],
    temperature: float = 0.5,
    seed: int = 0,
    device: str = "auto",
) -> list[np.ndarray]:
    """Coarsen a periodic grain label map with a Potts Monte Carlo model; return snapshots at ``mc_steps``.

    Energy: ``E = sum over Moore-neighbour pairs of [q_i != q_j]`` (one unit per unlike pair, i.e. isotropic
    boundary energy). Each Monte Carlo step (MCS) visits every site once: sites are updated in ``2**ndim``
    interleaved sub-lattices so that no two sites updated together are neighbours; each site proposes the label
    of a random neighbour and accepts with the Metropolis probability ``min(1, exp(-dE / temperature))``.
    Boundaries then move by mean curvature, the mechanism of the phase-field model of paper 000 (Eq. 1-6).
    """
    steps = sorted(int(s) for s in mc_steps)
    if steps and steps[0] < 0:
        raise InputError("mc_steps must be zero or positive.")
    dev = resolve_device(device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    lab = torch.as_tensor(np.ascontiguousarray(labels), dtype=torch.int32, device=dev)
    ndim = lab.ndim
    offsets = _moore_offsets(ndim)
    dims = tuple(range(ndim))
    coords = torch.meshgrid(*[torch.arange(s, device=dev) % 2 for s in lab.shape], indexing="ij")
    parity = sum(c * (2**i) for i, c in enumerate(coords))
    snapshots: list[np.ndarray] = []
    step = 0
    for target in steps:
        while step < target:
            for sub in range(2**ndim):
                site = parity == sub
                choice = torch.randint(len(offsets), lab.shape, generator=gen).to(dev)
                rolled = [torch.roll(lab, shifts=o, dims=dims) for o in offsets]
                proposal = lab.clone()
                for k, r in enumerate(rolled):
                    proposal = torch.where(choice == k, r, proposal)
                e_old = sum((r != lab).to(torch.int16) for r in rolled)
                e_new = sum((r != proposal).to(torch.int16) for r in rolled)
                d_e = (e_new - e_old).float()
                if temperature > 0:
                    u = torch.rand(lab.shape, generator=gen).to(dev)
                    accept = (d_e <= 0) | (u < torch.exp(-d_e / temperature))
                else:
                    accept = d_e <= 0
                lab = torch.where(site & accept, proposal, lab)
            step += 1
        snapshots.append(relabel_sequential(lab.cpu().numpy())[0].astype(np.int32))
    return snapshots


def make_grain_structure(
    shape: int | Sequence[int] = (256, 256),
    n_grains: int | None = None,
    stage: str | int = "intermediate",
    temperature: float = 0.5,
    seed: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """Polycrystalline grain label map (labels 1..N, periodic in every axis).

    Voronoi seeds (default one per 64 pixels in 2D, one per 512 voxels in 3D) are coarsened by
    :func:`potts_grain_growth`. ``stage`` is ``"early"``, ``"intermediate"``, ``"late"``
    (:data:`GRAIN_STAGES` Monte Carlo steps) or a number of Monte Carlo steps.
    """
    shp = _shape_tuple(shape)
    if n_grains is None:
        n_grains = max(2, int(np.prod(shp) / (64 if len(shp) == 2 else 512)))
    if isinstance(stage, str):
        if stage not in GRAIN_STAGES:
            raise InputError(f"stage {stage!r} is unknown; use one of {sorted(GRAIN_STAGES)} or a number of steps.")
        steps = GRAIN_STAGES[stage]
    else:
        steps = int(stage)
    start = voronoi_labels(shp, n_grains, seed=seed)
    return potts_grain_growth(start, [steps], temperature=temperature, seed=seed, device=device)[0]


def _gaussian_field(shp: tuple[int, ...], correlation_length: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shp)
    return np.real(np.fft.ifftn(ndimage.fourier_gaussian(np.fft.fftn(noise), sigma=correlation_length)))


def make_two_phase(
    shape: int | Sequence[int] = (256, 256),
    volume_fraction: float = 0.5,
    correlation_length: float = 6.0,
    seed: int = 0,
) -> np.ndarray:
    """Two-phase random medium: a periodic Gaussian random field thresholded at its ``1 - volume_fraction``
    quantile, so that phase 1 fills ``volume_fraction`` of the domain (up to one pixel). Phases 0 and 1 (uint8).

    The field is white noise smoothed by a Gaussian of standard deviation ``correlation_length`` pixels.
    """
    shp = _shape_tuple(shape)
    if not 0.0 < volume_fraction < 1.0:
        raise InputError(f"volume_fraction must lie strictly between 0 and 1, got {volume_fraction}.")
    if correlation_length <= 0:
        raise InputError(f"correlation_length must be positive, got {correlation_length}.")
    field = _gaussian_field(shp, correlation_length, np.random.default_rng(seed))
    order = np.argsort(field, axis=None)
    out = np.zeros(field.size, dtype=np.uint8)
    out[order[field.size - int(round(volume_fraction * field.size)):]] = 1
    return out.reshape(shp)


def make_particles(
    shape: int | Sequence[int] = (256, 256),
    volume_fraction: float = 0.2,
    mean_radius: float = 8.0,
    radius_cv: float = 0.3,
    min_gap: float = 1.0,
    seed: int = 0,
    max_attempts: int = 200_000,
) -> np.ndarray:
    """Non-overlapping polydisperse disks (2D) or spheres (3D) in a periodic domain, labelled 1..N.

    Radii are log-normal with mean ``mean_radius`` and coefficient of variation ``radius_cv``; particles are
    placed by random sequential addition, largest first, at least ``min_gap`` pixels apart, until the area
    fraction reaches ``volume_fraction``. Raises :class:`InputError` when the fraction cannot be reached.
    """
    shp = _shape_tuple(shape)
    ndim = len(shp)
    if not 0.0 < volume_fraction < (0.6 if ndim == 2 else 0.35):
        raise InputError(
            f"volume_fraction {volume_fraction} is out of reach for random sequential addition; use a value "
            f"in (0, {0.6 if ndim == 2 else 0.35})."
        )
    if mean_radius < 1 or 2 * mean_radius >= min(shp):
        raise InputError(f"mean_radius {mean_radius} must be at least 1 and below half the smallest size {min(shp)}.")
    rng = np.random.default_rng(seed)
    unit = np.pi if ndim == 2 else 4.0 / 3.0 * np.pi
    target = volume_fraction * np.prod(shp)
    sigma = np.sqrt(np.log1p(radius_cv**2))
    radii = []
    total = 0.0
    while total < target:
        r = float(np.clip(rng.lognormal(np.log(mean_radius) - sigma**2 / 2, sigma), 1.0, min(shp) / 3))
        radii.append(r)
        total += unit * r**ndim
    radii.sort(reverse=True)
    box = np.asarray(shp, dtype=float)
    centres: list[np.ndarray] = []
    placed_r: list[float] = []
    attempts = 0
    for r in radii:
        while True:
            attempts += 1
            if attempts > max_attempts:
                raise InputError(
                    f"could only place {len(centres)} particles before reaching volume fraction {volume_fraction}; "
                    "lower the volume fraction, the radius spread or min_gap."
                )
            c = rng.random(ndim) * box
            if centres:
                d = np.abs(np.asarray(centres) - c)
                d = np.minimum(d, box - d)
                if np.any(np.sqrt((d**2).sum(axis=1)) < np.asarray(placed_r) + r + min_gap):
                    continue
            centres.append(c)
            placed_r.append(r)
            break
    out = np.zeros(shp, dtype=np.int32)
    grid = np.meshgrid(*[np.arange(s) + 0.5 for s in shp], indexing="ij")
    for label, (c, r) in enumerate(zip(centres, placed_r), start=1):
        d2 = np.zeros(shp)
        for ax in range(ndim):
            d = np.abs(grid[ax] - c[ax])
            d2 += np.minimum(d, shp[ax] - d) ** 2
        out[d2 <= r * r] = label
    return out


def make_lamellae(
    shape: int | Sequence[int] = (256, 256),
    spacing: float = 16.0,
    angle: float = 30.0,
    fraction: float = 0.5,
    waviness: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Lamellar two-phase structure (uint8 phases 0/1).

    Lamellae run at ``angle`` degrees counter-clockwise from the image's x axis (its bottom edge, as in
    paper 001 section 2.6.3) with period ``spacing`` pixels; phase 1 takes ``fraction`` of each period.
    ``waviness`` (pixels) bends the lamellae with a smooth random displacement. In 3D the lamellae are
    plates through the z axis with the same in-plane orientation.
    """
    shp = _shape_tuple(shape)
    if spacing < 2:
        raise InputError(f"spacing must be at least 2 pixels, got {spacing}.")
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must lie strictly between 0 and 1, got {fraction}.")
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in shp], indexing="ij")
    y, x = grids[-2], grids[-1]
    theta = np.deg2rad(angle)
    # Distance along the lamellae normal; rows grow downwards, so "counter-clockwise on screen" uses -y.
    normal = -x * np.sin(theta) - y * np.cos(theta)
    if waviness > 0:
        field = _gaussian_field(shp, spacing, np.random.default_rng(seed))
        normal = normal + waviness * field / (field.std() + 1e-12)
    return (np.mod(normal, spacing) < fraction * spacing).astype(np.uint8)


def make_micrograph(
    labels: np.ndarray,
    boundary_contrast: float = 0.5,
    noise: float = 0.08,
    illumination: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """Render a label map as a synthetic optical micrograph in [0, 1].

    Each grain (or phase) gets a random grey level, boundaries between labels are darkened by
    ``boundary_contrast``, a linear illumination gradient of relative amplitude ``illumination`` and Gaussian
    noise of standard deviation ``noise`` are added. The ground truth is ``labels`` itself.
    """
    lab = np.asarray(labels)
    rng = np.random.default_rng(seed)
    levels = rng.uniform(0.55, 0.85, size=int(lab.max()) + 1)
    img = levels[lab]
    bnd = find_boundaries(lab, mode="inner")
    img = img - boundary_contrast * ndimage.gaussian_filter(bnd.astype(float), 0.7) / 0.5
    ramp = np.linspace(-0.5, 0.5, lab.shape[-1])
    img = img * (1.0 + illumination * ramp)
    img = img + rng.normal(0.0, noise, size=lab.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
