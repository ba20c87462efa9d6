"""The physics check of a microstructure: morphology, topology and transport of every phase, 2D and 3D, and their
comparison with a reference's natural spread.

Per phase (voxel units, or physical units with a ``spacing``):

* volume fraction;
* specific surface area: the area of the marching-cubes surface of the phase boundary per unit volume (marching
  squares and boundary length per unit area in 2D), on the indicator smoothed by a Gaussian of 0.7 voxel, which
  removes the staircase excess of marching cubes on binary data (about +9 % on digitised spheres, within 1 %
  after smoothing for radii of 6-15 voxels); the box faces are not counted;
* Euler characteristic density (scikit-image ``euler_number``, full connectivity: 26 in 3D, 8 in 2D; the
  integral of Gaussian curvature, the topological Minkowski functional, per unit volume);
* clusters (face-connected, 6 in 3D, 4 in 2D), their number per unit volume, the largest cluster's share of
  the phase and the axes along which one cluster connects the two opposite faces;
* chord lengths along each axis (runs of the phase on the grid lines; runs cut by the box are left out), their
  distribution and mean per axis;
* pore / particle size: the local thickness, the diameter of the largest ball inside the phase that covers a
  voxel (Hildebrand and Ruegsegger 1997), as a volume-weighted distribution and its mean;
* tortuosity factor and relative effective diffusivity per axis (:mod:`.transport`, the TauFactor problem);
* for three or more phases: the triple phase boundary density, the length of voxel edges where three phases
  meet per unit volume (points per unit area in 2D).

Against a reference, each scalar metric is marked inside or outside two standard deviations of the reference's
natural spread: random windows of a 3D reference of the structure's size, or, for a 2D reference (one slice),
random windows of the slice against the 2D metrics of the structure's slices.
"""
from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from skimage.measure import euler_number, find_contours, marching_cubes, mesh_surface_area

from .descriptors.sets import phase_map
from .progress import Progress, run_to_end
from .transport import axis_names, spanning_diffusivity, spanning_mask
from .validation import InputError, check_int, spacing_array

#: Edges of the chord-length and pore-size distributions, in units of the smallest voxel side (ratio 1.25).
HISTOGRAM_EDGES = np.geomspace(1, 1024, 32)
#: Ball diameters of the local-thickness sweep, in units of the smallest voxel side.
SIZE_BINS = np.unique(np.concatenate([np.arange(1, 25), np.round(np.geomspace(25, 1024, 40))])).astype(float)
#: Suffix of the metrics measured on 2D sections of a volume (compared with a 2D reference).
SECTION_SUFFIX = " (2D sections)"
#: Default comparison windows are at most this share of the reference's sides, so that random windows differ.
WINDOW_SHARE = 0.8
#: The smallest comparison window side, in voxels.
MIN_WINDOW = 8


@dataclass
class PhaseMorphology:
    """Metrics of one phase: ``values`` holds the scalar metrics; ``chords`` the chord lengths per axis and
    ``sizes`` the local thickness of every voxel of the phase (both in the report's units)."""

    values: dict[str, float]
    chords: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class StructureReport:
    """The physics check of a structure (see the module docstring).

    ``phases[p]`` holds the metrics of phase ``p`` of the structure as given (3D metrics of a volume);
    ``tpb_density`` the triple phase boundary density (``None`` below three phases). With a reference,
    ``comparison`` has one row per phase and metric: the structure's value (``mean`` over its windows or
    slices when the comparison is made on them), the reference's mean, standard deviation and number of
    windows, and ``inside`` (within two standard deviations); ``distributions[p][name]`` holds the chord-length
    and pore-size densities of structure and reference on common bins for plots.
    """

    ndim: int
    shape: tuple[int, ...]
    unit: str
    spacing: tuple[float, ...]
    phases: dict[int, PhaseMorphology]
    tpb_density: float | None = None
    mode: str = ""
    comparison: pd.DataFrame | None = None
    distributions: dict[int, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per phase and metric: ``phase, metric, unit, value`` plus, with a reference, ``compared``
        (the value compared: the structure's, or the mean of its slices), ``ref_mean, ref_sd, n_ref, inside``."""
        rows = [{"phase": p, "metric": k, "unit": metric_unit(k, self.unit, self.ndim), "value": v}
                for p, m in self.phases.items() for k, v in m.values.items()]
        if self.tpb_density is not None:
            rows.append({"phase": -1, "metric": "tpb_density", "unit": metric_unit("tpb_density", self.unit,
                                                                                    self.ndim),
                         "value": self.tpb_density})
        table = pd.DataFrame(rows)
        if self.comparison is not None:
            cmp = self.comparison.rename(columns={"value": "compared"})
            table = table.merge(cmp, on=["phase", "metric"], how="outer")
            table["unit"] = table["unit"].fillna(table["metric"].map(lambda k: metric_unit(k, self.unit, self.ndim)))
        return table

    @property
    def outside(self) -> pd.DataFrame:
        """The compared metrics outside two standard deviations of the reference (empty without a reference)."""
        if self.comparison is None:
            return pd.DataFrame()
        return self.comparison[~self.comparison["inside"]]

    def summary(self) -> str:
        """A few lines for a console or a notification."""
        lines = []
        for p, m in self.phases.items():
            v = m.values
            perc = int(v.get("percolating_axes", 0))
            taus = [v[k] for k in v if k.startswith("tortuosity_")]
            tau = ", ".join("inf" if not math.isfinite(t) else f"{t:.2f}" for t in taus)
            lines.append(
                f"phase {p}: fraction {v['volume_fraction']:.3f}, {int(v['clusters'])} clusters, largest "
                f"{v['largest_cluster_share']:.3f}, percolates along {perc}/{self.ndim} axes, tortuosity {tau}"
            )
        if self.comparison is None and self.mode:
            lines.append(self.mode)
        if self.comparison is not None:
            out = self.outside
            lines.append(f"against the reference ({self.mode}): {len(self.comparison) - len(out)} of "
                         f"{len(self.comparison)} metrics inside 2 sd"
                         + (": outside " + ", ".join(f"{r.metric} (phase {r.phase})" for r in out.itertuples())
                            if len(out) else ""))
        return "\n".join(lines)


def metric_unit(name: str, unit: str, ndim: int) -> str:
    """The unit of metric ``name`` for lengths in ``unit``."""
    if name.endswith(SECTION_SUFFIX):
        return metric_unit(name[: -len(SECTION_SUFFIX)], unit, 2)
    if name.startswith(("chord_mean", "pore_size")):
        return unit
    if name == "specific_surface":
        return f"1/{unit}"
    if name in ("euler_density", "cluster_density"):
        return f"1/{unit}^{ndim}"
    if name == "tpb_density":
        return f"{unit}/{unit}^3" if ndim == 3 else f"1/{unit}^2"
    return ""


#: Standard deviation in voxels of the Gaussian applied to an indicator before marching cubes / squares.
SURFACE_SMOOTHING = 0.7


def specific_surface(mask: np.ndarray, spacing: np.ndarray) -> float:
    """Boundary area per unit volume (3D, marching cubes) or boundary length per unit area (2D, marching
    squares) of ``mask``, measured between the voxel centres (the box faces are not boundaries), on the
    indicator smoothed by :data:`SURFACE_SMOOTHING`."""
    if mask.all() or not mask.any() or min(mask.shape) < 2:
        return 0.0
    field_ = ndi.gaussian_filter(mask.astype(np.float32), SURFACE_SMOOTHING, mode="nearest")
    inner = float(np.prod([(n - 1) * s for n, s in zip(mask.shape, spacing)]))
    if field_.min() >= 0.5 or field_.max() <= 0.5:
        return 0.0
    if mask.ndim == 3:
        verts, faces, _, _ = marching_cubes(field_, level=0.5, spacing=tuple(spacing))
        return float(mesh_surface_area(verts, faces)) / inner
    length = 0.0
    for contour in find_contours(field_, 0.5):
        steps = np.diff(contour, axis=0) * spacing
        length += float(np.sqrt((steps**2).sum(axis=1)).sum())
    return length / inner


def chord_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """Lengths in voxels of the runs of ``mask`` along ``axis``, leaving out runs that touch the box."""
    m = np.moveaxis(mask, axis, -1).reshape(-1, mask.shape[axis]).astype(np.int8)
    d = np.diff(np.pad(m, ((0, 0), (1, 1))), axis=1)
    starts = np.nonzero(d == 1)
    ends = np.nonzero(d == -1)
    start, end = starts[1], ends[1]
    inner = (start > 0) & (end < mask.shape[axis])
    return (end - start)[inner]


def local_thickness(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Local thickness of ``mask``: for each voxel the diameter of the largest ball inside the phase that covers
    it (0 outside the phase), by distance transforms: voxels within ``r`` of a centre at distance ``>= r`` from
    the other phase, swept from large ``r`` to small (radii binned on :data:`SIZE_BINS` / 2)."""
    out = np.zeros(mask.shape)
    if not mask.any():
        return out
    dist = ndi.distance_transform_edt(mask, sampling=spacing)
    unit = float(spacing.min())
    radii = [r for r in (SIZE_BINS / 2 * unit) if r <= dist.max()] or [float(dist.max())]
    left = mask.copy()
    for r in sorted(radii, reverse=True):
        centres = dist >= r
        if not centres.any():
            continue
        near = ndi.distance_transform_edt(~centres, sampling=spacing) <= r
        hit = near & left
        out[hit] = 2 * r
        left &= ~hit
    out[left] = 2 * dist[left]
    return out


def triple_phase_boundary_density(lab: np.ndarray, spacing: np.ndarray) -> float:
    """Length of the voxel edges around which three or more phases meet, per unit volume (3D); in 2D the number
    of voxel corners where three phases meet per unit area."""
    ndim = lab.ndim
    total = 0.0
    volume = lab.size * float(np.prod(spacing))
    if ndim == 2:
        quads = [lab[:-1, :-1], lab[1:, :-1], lab[:-1, 1:], lab[1:, 1:]]
        return float(_distinct_at_least_three(quads).sum()) / volume
    for axis in range(3):
        a, b = [d for d in range(3) if d != axis]
        cells = []
        for da in (0, 1):
            for db in (0, 1):
                sl = [slice(None)] * 3
                sl[a] = slice(da, lab.shape[a] - 1 + da)
                sl[b] = slice(db, lab.shape[b] - 1 + db)
                cells.append(lab[tuple(sl)])
        total += float(_distinct_at_least_three(cells).sum()) * spacing[axis]
    return total / volume


def _distinct_at_least_three(cells: Sequence[np.ndarray]) -> np.ndarray:
    stack = np.sort(np.stack(cells), axis=0)
    distinct = 1 + (np.diff(stack, axis=0) != 0).sum(axis=0)
    return distinct >= 3


def phase_morphology(lab: np.ndarray, phase: int, spacing: np.ndarray, transport: bool = True) -> PhaseMorphology:
    """The metrics of the module docstring for ``phase`` of the phase map ``lab``."""
    mask = lab == phase
    ndim = lab.ndim
    names = axis_names(ndim)
    volume = lab.size * float(np.prod(spacing))
    v: dict[str, float] = {"volume_fraction": float(mask.mean())}
    v["specific_surface"] = specific_surface(mask, spacing)
    v["euler_density"] = float(euler_number(mask, connectivity=ndim)) / volume
    clusters, n = ndi.label(mask)
    counts = np.bincount(clusters.ravel())[1:]
    v["clusters"] = float(n)
    v["cluster_density"] = n / volume
    v["largest_cluster_share"] = float(counts.max() / counts.sum()) if n else 0.0
    chords = {}
    for ax, name in enumerate(names):
        c = chord_lengths(mask, ax) * spacing[ax]
        chords[name] = c
        v[f"chord_mean_{name}"] = float(c.mean()) if c.size else 0.0
    thickness = local_thickness(mask, spacing)[mask]
    v["pore_size_mean"] = float(thickness.mean()) if thickness.size else 0.0
    spans = [spanning_mask(mask, ax, clusters) for ax in range(ndim)]
    v["percolating_axes"] = float(sum(bool(s.any()) for s in spans))
    if transport:
        for ax, name in enumerate(names):
            d = spanning_diffusivity(spans[ax], ax) if spans[ax].any() else 0.0
            v[f"tortuosity_{name}"] = v["volume_fraction"] / d if d > 0 else math.inf
            v[f"diffusivity_{name}"] = d
    return PhaseMorphology(v, chords, thickness)


def _measure(lab: np.ndarray, phases: Sequence[int], spacing: np.ndarray, transport: bool,
             n_phases: int) -> tuple[dict[int, PhaseMorphology], float | None]:
    per = {p: phase_morphology(lab, p, spacing, transport) for p in phases}
    tpb = triple_phase_boundary_density(lab, spacing) if n_phases >= 3 else None
    return per, tpb


def _check_window(window: Sequence[int], reference_shape: Sequence[int]) -> None:
    """:class:`InputError` unless random windows of ``window`` inside the reference can differ."""
    if len(window) != len(reference_shape):
        raise InputError(f"window {tuple(window)} must have {len(reference_shape)} sides, one per axis of the "
                         f"reference {tuple(reference_shape)}.")
    if min(window) < MIN_WINDOW:
        raise InputError(f"the comparison window {tuple(window)} is smaller than {MIN_WINDOW} voxels a side: the "
                         f"reference {tuple(reference_shape)} is too small to give a spread of windows; give a larger "
                         "reference.")
    if any(w > s for w, s in zip(window, reference_shape)):
        raise InputError(f"the comparison window {tuple(window)} is larger than the reference "
                         f"{tuple(reference_shape)}; give a larger reference or a smaller window.")
    if all(w == s for w, s in zip(window, reference_shape)):
        raise InputError(
            f"the reference {tuple(reference_shape)} is no larger than the comparison window {tuple(window)}, so it "
            "gives no spread; give a larger reference or a smaller window (window=...)."
        )


def _windows(shape: Sequence[int], window: Sequence[int], n: int, rng: np.random.Generator) -> list[tuple]:
    """``n`` random window positions (slices) of size ``window`` inside ``shape``."""
    out = []
    for _ in range(n):
        out.append(tuple(slice(int(o), int(o) + w) for o, w in
                         zip((rng.integers(0, s - w + 1) for s, w in zip(shape, window)), window)))
    return out


def _sections(lab: np.ndarray, spacing: np.ndarray, window: Sequence[int], n_per_axis: int
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Evenly spaced 2D sections of a volume along each axis, cropped to ``window`` at their centre, each with
    its pixel spacing."""
    out = []
    for axis in range(3):
        for i in np.linspace(0, lab.shape[axis] - 1, n_per_axis).round().astype(int):
            sec = np.take(lab, i, axis=axis)
            starts = [(s - w) // 2 for s, w in zip(sec.shape, window)]
            out.append((sec[starts[0]:starts[0] + window[0], starts[1]:starts[1] + window[1]],
                        np.delete(spacing, axis)))
    return out


def _spread(samples: list[dict[int, PhaseMorphology]], tpbs: list[float | None], phases: Sequence[int]
            ) -> dict[tuple[int, str], np.ndarray]:
    keys: dict[tuple[int, str], list[float]] = {}
    for s in samples:
        for p in phases:
            for k, val in s[p].values.items():
                keys.setdefault((p, k), []).append(val)
    if tpbs and tpbs[0] is not None:
        keys[(-1, "tpb_density")] = [t for t in tpbs if t is not None]
    return {k: np.asarray(v, dtype=float) for k, v in keys.items()}


def _compare(structure: dict[tuple[int, str], np.ndarray], reference: dict[tuple[int, str], np.ndarray]
             ) -> pd.DataFrame:
    rows = []
    for key, ref in reference.items():
        if key not in structure or key[1] == "clusters":
            continue
        got = structure[key]
        value = _mean(got)
        mean, sd = _mean(ref), _sd(ref)
        if math.isfinite(mean) and math.isfinite(value):
            inside = abs(value - mean) <= 2 * sd + 1e-12 * max(1.0, abs(mean))
        else:
            inside = (not math.isfinite(mean)) and (not math.isfinite(value))
        rows.append({"phase": key[0], "metric": key[1], "value": value, "ref_mean": mean, "ref_sd": sd,
                     "n_ref": int(ref.size), "inside": bool(inside)})
    return pd.DataFrame(rows)


def _mean(x: np.ndarray) -> float:
    """Mean of the finite values (a non-percolating sample has an infinite tortuosity); ``inf`` if none is."""
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else math.inf


def _sd(x: np.ndarray) -> float:
    """Sample standard deviation of the finite values; ``inf`` with fewer than two."""
    finite = x[np.isfinite(x)]
    return float(finite.std(ddof=1)) if finite.size > 1 else math.inf


def _histograms(samples: list[dict[int, PhaseMorphology]], phases: Sequence[int], unit: float
                ) -> dict[int, dict[str, np.ndarray]]:
    out: dict[int, dict[str, np.ndarray]] = {}
    for p in phases:
        chords = np.concatenate([c for s in samples for c in s[p].chords.values()] or [np.zeros(0)])
        sizes = np.concatenate([s[p].sizes for s in samples] or [np.zeros(0)])
        out[p] = {"chord_length": _density(chords, HISTOGRAM_EDGES * unit),
                  "pore_size": _density(sizes, HISTOGRAM_EDGES * unit)}
    return out


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    hist, _ = np.histogram(values, bins=edges)
    return hist / max(hist.sum(), 1)


def structure_report_iter(structure, reference=None, spacing: Sequence[float] | None = None, unit: str = "px",
                          phases: Sequence[int] | None = None, n_windows: int = 8, window: Sequence[int] | None = None,
                          transport: bool = True, seed: int = 0
                          ) -> Generator[Progress, None, StructureReport]:
    """Generator form of :func:`structure_report`: yields :class:`Progress` per measured sample."""
    lab, n_phases = phase_map(structure, "structure")
    sp = spacing_array(spacing, lab.ndim)
    if not isinstance(unit, str):
        raise InputError(f"unit={unit!r} must be a text such as 'um' or 'px'.")
    if phases is None:
        phases = [p for p in range(n_phases) if (lab == p).any()]
    elif isinstance(phases, str) or not isinstance(phases, Iterable):
        raise InputError(f"phases={phases!r} must be a list of phase numbers, e.g. [1].")
    phases = sorted(check_int(p, "phases entry", 0) for p in phases)
    bad = [p for p in phases if p >= max(n_phases, 2)]
    if bad:
        raise InputError(f"phases={bad} do not occur in the structure (phases 0..{n_phases - 1}).")
    n_windows = check_int(n_windows, "n_windows (at least 2 to estimate a spread)", 2, 10_000)
    ref = None
    if reference is not None:
        ref, ref_phases = phase_map(reference, "reference")
        if ref.ndim > lab.ndim:
            raise InputError("the reference is 3D but the structure is 2D; give a 2D reference (one slice).")
        n_phases = max(n_phases, ref_phases)
        if ref.ndim == lab.ndim:
            win = tuple(window) if window is not None else tuple(min(a, int(WINDOW_SHARE * b))
                                                                 for a, b in zip(lab.shape, ref.shape))
            mode = f"{lab.ndim}D windows of {'x'.join(map(str, win))}"
        else:
            side = min(min(lab.shape), int(WINDOW_SHARE * min(ref.shape)))
            win = tuple(window) if window is not None else (side, side)
            mode = f"2D sections of the structure against windows of {'x'.join(map(str, win))} of the slice"
        _check_window(win, ref.shape)
    ref_sp = sp if ref is None or ref.ndim == lab.ndim else sp[1:]
    total = 1 + (0 if ref is None else n_windows * (2 if ref.ndim < lab.ndim else 1) + 1)
    yield Progress(0, total, "measuring the structure")
    per, tpb = _measure(lab, phases, sp, transport, n_phases)
    report = StructureReport(lab.ndim, tuple(lab.shape), unit, tuple(float(s) for s in sp), per, tpb)
    if ref is None:
        return report
    report.mode = mode
    rng = np.random.default_rng(seed)
    own, own_tpb = [], []
    if ref.ndim < lab.ndim:
        sections = _sections(lab, sp, win, max(1, n_windows // 3 + 1))
        for k, (sec, sec_sp) in enumerate(sections):
            yield Progress(1 + k, total, f"measuring section {k + 1} of {len(sections)}")
            m, t = _measure(sec, phases, sec_sp, transport, n_phases)
            own.append(m)
            own_tpb.append(t)
    elif win == tuple(lab.shape):
        own, own_tpb = [per], [tpb]
    else:
        for k, sl in enumerate(_windows(lab.shape, win, n_windows, rng)):
            yield Progress(1 + k, total, f"measuring window {k + 1} of the structure")
            m, t = _measure(lab[sl], phases, sp, transport, n_phases)
            own.append(m)
            own_tpb.append(t)
    samples, tpbs = [], []
    for k, sl in enumerate(_windows(ref.shape, win, n_windows, rng)):
        yield Progress(total - n_windows - 1 + k, total, f"measuring reference window {k + 1} of {n_windows}")
        m, t = _measure(ref[sl], phases, ref_sp, transport, n_phases)
        samples.append(m)
        tpbs.append(t)
    report.comparison = _compare(_spread(own, own_tpb, phases), _spread(samples, tpbs, phases))
    if ref.ndim < lab.ndim:  # 2D metrics of sections: their own rows, beside the 3D metrics of the volume
        report.comparison["metric"] = report.comparison["metric"] + SECTION_SUFFIX
    unit_len = float(ref_sp.min())
    mine, theirs = _histograms(own, phases, unit_len), _histograms(samples, phases, unit_len)
    report.distributions = {p: {name: {"edges": HISTOGRAM_EDGES * unit_len,
                                       "structure": mine[p][name], "reference": theirs[p][name]}
                                for name in mine[p]} for p in phases}
    yield Progress(total, total, "done")
    return report


def structure_report(structure, reference=None, spacing: Sequence[float] | None = None, unit: str = "px",
                     phases: Sequence[int] | None = None, n_windows: int = 8, window: Sequence[int] | None = None,
                     transport: bool = True, seed: int = 0) -> StructureReport:
    """Measure every phase of a 2D or 3D phase map (module docstring) and, with a ``reference`` phase map,
    compare each metric with the reference's spread over ``n_windows`` random windows.

    A 3D reference is cut into windows of the structure's shape, at most :data:`WINDOW_SHARE` of the reference's
    sides (or ``window``; a structure larger than the window is measured as the mean of as many random windows
    of its own). A 2D reference (one slice) of a 3D structure is compared on 2D metrics: the structure's sections
    along every axis, cropped to a square window, against windows of the slice (whose pixels are taken to have
    the structure's y, x spacing). ``spacing`` (voxel size per axis) and ``unit`` give physical units;
    ``transport=False`` skips the tortuosity solves."""
    return run_to_end(structure_report_iter(structure, reference, spacing, unit, phases, n_windows, window,
                                            transport, seed))


def cluster_labels(structure, phase: int = 1) -> np.ndarray:
    """Labels for viewing the connectivity of ``phase``: 1 = its largest face-connected cluster, 2 = every
    other (isolated) cluster, 0 = the other phases."""
    lab, n_phases = phase_map(structure, "structure")
    phase = check_int(phase, "phase", 0)
    clusters, n = ndi.label(lab == phase)
    if n == 0:
        raise InputError(f"phase {phase} does not occur in the structure (phases 0..{n_phases - 1}).")
    out = np.zeros(lab.shape, dtype=np.uint8)
    largest = int(np.argmax(np.bincount(clusters.ravel())[1:])) + 1
    out[clusters > 0] = 2
    out[clusters == largest] = 1
    return out
