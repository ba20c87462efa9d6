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
from .validation import InputError, check_fits, check_float, check_int, check_labels, check_positive, check_shape

#: Monte Carlo steps recorded as the early, intermediate and late stages of grain growth.
GRAIN_STAGES: dict[str, int] = {"early": 4, "intermediate": 24, "late": 96}


#: Peak bytes per voxel of each generator (float64 coordinate grids, FFTs, sort indices, the Voronoi query and the
#: Potts model's tensors): the growth of the peak resident memory measured at 96^3 (grains 424, particles 60) and
#: 128^3 (two-phase 56, wavy lamellae 88), rounded up. :func:`_shape_tuple` refuses a shape whose peak would
#: exceed half the free memory.
BYTES_PER_VOXEL = {"grain structure": 448, "two-phase field": 64, "particles": 72, "lamellae": 96}


def _shape_tuple(shape: int | Sequence[int], what: str) -> tuple[int, ...]:
    """The shape as 2 or 3 whole sizes of at least 4 pixels, small enough for the free memory."""
    shp = check_shape(shape, "shape", allow_int=True)
    if min(shp) < 4:
        raise InputError(f"shape={shp} is too small; give 2 or 3 sizes of at least 4 pixels each.")
    check_fits(float(np.prod(shp, dtype=float)) * BYTES_PER_VOXEL[what], f"A {what} of shape {shp}",
               "choose a smaller shape")
    return shp


def voronoi_labels(shape: int | Sequence[int], n_grains: int, seed: int = 0) -> np.ndarray:
    """Periodic Voronoi tessellation of ``n_grains`` uniformly random seeds; labels 1..n_grains."""
    shp = _shape_tuple(shape, "grain structure")
    n_grains = check_int(n_grains, "n_grains", 1, int(np.prod(shp)))
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
    shp = _shape_tuple(shape, "grain structure")
    if n_grains is None:
        n_grains = max(2, int(np.prod(shp) / (64 if len(shp) == 2 else 512)))
    if isinstance(stage, str):
        if stage not in GRAIN_STAGES:
            raise InputError(f"stage={stage!r} is unknown; use one of {sorted(GRAIN_STAGES)} or a number of steps.")
        steps = GRAIN_STAGES[stage]
    else:
        steps = check_int(stage, "stage (Monte Carlo steps)", 0, 100_000)
    temperature = check_float(temperature, "temperature", 0.0)  # 0: zero-temperature Potts growth
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
    shp = _shape_tuple(shape, "two-phase field")
    volume_fraction = check_float(volume_fraction, "volume_fraction", 0.0, 1.0, open_low=True, open_high=True)
    correlation_length = check_positive(correlation_length, "correlation_length")
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
    shp = _shape_tuple(shape, "particles")
    ndim = len(shp)
    reach = 0.6 if ndim == 2 else 0.35
    if isinstance(volume_fraction, float | int) and volume_fraction >= reach:
        raise InputError(f"volume_fraction={volume_fraction} is out of reach for random sequential addition; use a "
                         f"value in (0, {reach}).")
    volume_fraction = check_float(volume_fraction, "volume_fraction", 0.0, reach, open_low=True, open_high=True)
    mean_radius = check_float(mean_radius, "mean_radius", 1.0, min(shp) / 2, open_high=True)
    radius_cv = check_float(radius_cv, "radius_cv", 0.0)
    min_gap = check_float(min_gap, "min_gap", 0.0)
    max_attempts = check_int(max_attempts, "max_attempts", 1)
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
    shp = _shape_tuple(shape, "lamellae")
    spacing = check_float(spacing, "spacing", 2.0)
    fraction = check_float(fraction, "fraction", 0.0, 1.0, open_low=True, open_high=True)
    angle = check_float(angle, "angle")
    waviness = check_float(waviness, "waviness", 0.0)
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
    lab = check_labels(labels, "labels", relabel=True)
    boundary_contrast = check_float(boundary_contrast, "boundary_contrast", 0.0)
    noise = check_float(noise, "noise", 0.0)
    illumination = check_float(illumination, "illumination", 0.0)
    rng = np.random.default_rng(seed)
    levels = rng.uniform(0.55, 0.85, size=int(lab.max()) + 1)
    img = levels[lab]
    bnd = find_boundaries(lab, mode="inner")
    img = img - boundary_contrast * ndimage.gaussian_filter(bnd.astype(float), 0.7) / 0.5
    ramp = np.linspace(-0.5, 0.5, lab.shape[-1])
    img = img * (1.0 + illumination * ramp)
    img = img + rng.normal(0.0, noise, size=lab.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
