"""Descriptor sets: characterise 2D images and 3D volumes, merge orthogonal 2D sets into an anisotropic target,
interpolate between sets, and save / load them as ``.npz`` + ``.json`` (no pickle).

Axis keys: a 2D image gives one set under ``"2d"``. A 3D volume ``(Z, Y, X)`` is sliced three ways (paper 003,
Eq. 3): ``"z"`` holds the mean descriptor of the slices normal to z (the YX planes: rows y, columns x), ``"y"``
of the ZX planes (rows z, columns x) and ``"x"`` of the ZY planes (rows z, columns y).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..validation import InputError, check_float, check_int, check_labels
from .registry import get_descriptor

AXES_3D = ("z", "y", "x")
#: Default descriptors and weights of a reconstruction: two-point correlations plus the variation with weight 100
#: (papers 003 section 2.3.3 and 004 "Obtaining a 3D domain from a 2D microstructure slice"), and the volume
#: fractions with weight 100. Without them the soft optimum is a grey field whose S2(0) = <p^2> equals the
#: volume fraction only because <p> exceeds it, and deciding it adds 5-10 % of the wrong phase.
DEFAULT_WEIGHTS: dict[str, float] = {"volume_fractions": 100.0, "s2": 1.0, "variation": 100.0}
MAX_PHASES = 16


def indicator(labels: np.ndarray | torch.Tensor, n_phases: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """One-hot phase indicator ``(P, *shape)`` of a phase map with values ``0..P-1``."""
    lab = torch.as_tensor(np.asarray(labels), device=device).long()
    return torch.nn.functional.one_hot(lab, n_phases).movedim(-1, 0).to(dtype)


def channels(ind: torch.Tensor) -> torch.Tensor:
    """The indicator functions a descriptor sees: phase 1 alone for two phases (phase 0 is its complement),
    every phase otherwise. Works on ``(P, ...)``."""
    return ind[1:2] if ind.shape[0] == 2 else ind


def slices(field: torch.Tensor, axis: str) -> torch.Tensor:
    """All 2D slices of a ``(C, Z, Y, X)`` field normal to ``axis`` as one batch ``(B, C, H, W)``."""
    perm = {"z": (1, 0, 2, 3), "y": (2, 0, 1, 3), "x": (3, 0, 1, 2)}[axis]
    return field.permute(*perm)


def evaluate(field: torch.Tensor, names: Sequence[str], limit_to: int, params: Mapping[str, dict] | None = None,
             axes: Sequence[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Descriptors of a ``(C, H, W)`` or ``(C, Z, Y, X)`` channel field, per slice: ``{axis: {name: (B, K)}}``.

    Each axis costs one batched call per descriptor, whatever the number of slices."""
    params = params or {}
    if field.ndim == 3:
        batches = {"2d": field.unsqueeze(0)}
    else:
        batches = {a: slices(field, a) for a in (axes or AXES_3D)}
    return {a: {n: get_descriptor(n).func(b, limit_to=limit_to, **params.get(n, {})) for n in names}
            for a, b in batches.items()}


def check_limit_to(limit_to: int, shape: Sequence[int]) -> None:
    """``limit_to`` must be positive and below half of every slice side."""
    smallest = min(shape)
    if limit_to < 1 or 2 * limit_to >= smallest:
        raise InputError(
            f"limit_to={limit_to} does not fit slices of {tuple(shape)}: it must be at least 1 and less than half "
            f"the smallest side ({smallest}); use limit_to <= {max(1, (smallest - 1) // 2)} or a larger structure."
        )


def phase_map(structure, what: str = "structure") -> tuple[np.ndarray, int]:
    """Validate a 2D/3D phase map with values ``0..P-1`` (at least two phases); return it and ``P``."""
    lab = check_labels(structure, what)
    n_phases = int(lab.max()) + 1
    if n_phases < 2:
        raise InputError(f"the {what} holds a single phase; descriptors need at least two phases.")
    if n_phases > MAX_PHASES:
        raise InputError(
            f"the {what} has values up to {n_phases - 1}; at most {MAX_PHASES} phases (0..{MAX_PHASES - 1}) are "
            "supported. Is it a grain label map? Segment it into phases first."
        )
    return lab, n_phases


@dataclass
class DescriptorSet:
    """Target descriptors: ``values[axis][name]`` is the mean descriptor vector over the slices of that axis."""

    values: dict[str, dict[str, np.ndarray]]
    n_phases: int
    limit_to: int
    params: dict[str, dict] = field(default_factory=dict)
    source_shape: tuple[int, ...] = ()
    #: Multigrid targets: level k holds the descriptors of the structure average-pooled by 2**k.
    coarse: dict[int, DescriptorSet] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(next(iter(self.values.values())))

    @property
    def axes(self) -> list[str]:
        return list(self.values)

    def for_axis(self, axis: str) -> dict[str, np.ndarray]:
        """The target for slices normal to ``axis``; a 2D set serves every axis (isotropic 3D)."""
        if axis in self.values:
            return self.values[axis]
        if "2d" in self.values:
            return self.values["2d"]
        raise InputError(f"the descriptor set has no target for axis {axis!r} (it has {self.axes}).")

    def save(self, path: str | Path) -> tuple[str, str]:
        """Write ``<path>.npz`` (arrays ``"<axis>/<name>"``) and ``<path>.json`` (settings)."""
        base = Path(path).with_suffix("")
        arrays = {f"{a}/{n}": v for a, d in self.values.items() for n, v in d.items()}
        for level, c in self.coarse.items():
            arrays.update({f"level{level}/{a}/{n}": v for a, d in c.values.items() for n, v in d.items()})
        np.savez(base.with_suffix(".npz"), **arrays)
        meta = {"format": "napari-microfingerprint descriptor set", "version": 1, "n_phases": self.n_phases,
                "limit_to": self.limit_to, "params": self.params, "source_shape": list(self.source_shape),
                "axes": self.axes, "names": self.names,
                "coarse": {str(k): {"limit_to": c.limit_to, "axes": c.axes} for k, c in self.coarse.items()}}
        base.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return str(base.with_suffix(".npz")), str(base.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | Path) -> DescriptorSet:
        """Read a set written by :meth:`save`; :class:`InputError` when a file is missing or inconsistent."""
        base = Path(path).with_suffix("")
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            with np.load(base.with_suffix(".npz"), allow_pickle=False) as npz:
                values = {a: {n: npz[f"{a}/{n}"] for n in meta["names"]} for a in meta["axes"]}
                coarse = {
                    int(k): cls({a: {n: npz[f"level{k}/{a}/{n}"] for n in meta["names"]} for a in c["axes"]},
                                int(meta["n_phases"]), int(c["limit_to"]), meta.get("params", {}))
                    for k, c in meta.get("coarse", {}).items()
                }
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise InputError(f"descriptor set {base} could not be read ({type(err).__name__}: {err}).") from err
        return cls(values, int(meta["n_phases"]), int(meta["limit_to"]), meta.get("params", {}),
                   tuple(meta.get("source_shape", ())), coarse)


def check_target(target, name: str = "target") -> DescriptorSet:
    """``target`` if it is a :class:`DescriptorSet`, else :class:`InputError` saying how to make one."""
    if not isinstance(target, DescriptorSet):
        raise InputError(f"{name} must be a DescriptorSet (from characterize() or DescriptorSet.load()), got "
                         f"{type(target).__name__}; to reconstruct from a structure directly, use match().")
    return target


def check_descriptor_names(descriptors) -> tuple[str, ...]:
    """Descriptor names as a tuple of registered names (one name alone is accepted), or :class:`InputError`."""
    if isinstance(descriptors, str):
        descriptors = (descriptors,)
    try:
        names = tuple(descriptors)
    except TypeError as err:
        raise InputError(f"descriptors={descriptors!r} must be a list of descriptor names such as "
                         "['volume_fractions', 's2'].") from err
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"descriptors={descriptors!r} must name at least one descriptor, e.g. ['s2'].")
    for n in names:
        get_descriptor(n)
    return names


def _characterize_field(field_: torch.Tensor, descriptors: Sequence[str], limit_to: int,
                        params: Mapping[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    with torch.no_grad():
        per_slice = evaluate(field_, descriptors, limit_to, params)
    return {a: {n: v.mean(dim=0).cpu().numpy() for n, v in d.items()} for a, d in per_slice.items()}


def characterize(structure, descriptors: Sequence[str] = tuple(DEFAULT_WEIGHTS), limit_to: int = 8,
                 params: Mapping[str, dict] | None = None, n_phases: int | None = None,
                 levels: int = 2) -> DescriptorSet:
    """Descriptors of a 2D image (key ``"2d"``) or of a 3D volume's slices along each axis (``"z", "y", "x"``),
    averaged over the slices (paper 004, ``characterize``).

    ``levels`` coarse versions (the indicator average-pooled by 2, 4, ... with ``limit_to`` divided alike) are
    characterised too, as multigrid targets, while the pooled structure stays larger than twice its
    ``limit_to``."""
    descriptors = check_descriptor_names(descriptors)
    limit_to = check_int(limit_to, "limit_to", 1)
    levels = check_int(levels, "levels", 0, 8)
    if n_phases is not None:
        n_phases = check_int(n_phases, "n_phases", 2, MAX_PHASES)
    if params is not None and not isinstance(params, Mapping):
        raise InputError(f"params={params!r} must be a mapping {{descriptor name: {{option: value}}}}.")
    lab, found = phase_map(structure)
    n_phases = max(found, n_phases or 0)
    check_limit_to(limit_to, lab.shape)
    params = dict(params or {})
    ind = indicator(lab, n_phases)
    values = _characterize_field(channels(ind), descriptors, limit_to, params)
    coarse: dict[int, DescriptorSet] = {}
    pool = torch.nn.functional.avg_pool2d if lab.ndim == 2 else torch.nn.functional.avg_pool3d
    for level in range(1, levels + 1):
        f = 2**level
        lt = max(1, limit_to // f)
        if any(s % f or s // f <= 2 * lt for s in lab.shape):
            break
        pooled = pool(ind.unsqueeze(0), f)[0]
        coarse[level] = DescriptorSet(_characterize_field(channels(pooled), descriptors, lt, params), n_phases, lt,
                                      params)
    return DescriptorSet(values, n_phases, limit_to, params, tuple(lab.shape), coarse)


def _profile(s2: np.ndarray, limit_to: int, along: str) -> np.ndarray:
    """S2 along the rows (``"rows"``) or columns (``"cols"``) of the half-plane offset list."""
    from .correlations import half_plane_offsets

    offs = half_plane_offsets(limit_to)
    wanted = [(a, 0) for a in range(1, limit_to + 1)] if along == "rows" else [(0, a) for a in range(1, limit_to + 1)]
    per_channel = s2.reshape(-1, len(offs))
    return per_channel[:, [offs.index(w) for w in wanted]].ravel()


def merge(yx: DescriptorSet | None = None, zx: DescriptorSet | None = None, zy: DescriptorSet | None = None,
          tolerance: float = 0.25) -> DescriptorSet:
    """Merge 2D characterisations of orthogonal planes into a per-axis 3D target (paper 004 ``merge``).

    ``yx`` is a section normal to z (rows along y, columns along x), ``zx`` normal to y (rows z, columns x),
    ``zy`` normal to x (rows z, columns y); give two or three. Two planes share one axis; where both carry
    ``s2``, their correlation profiles along that axis must agree within ``tolerance`` (relative), otherwise the
    combination cannot be realised (paper 004, footnote 6) and :class:`InputError` says which axis disagrees.
    """
    given = {"z": yx, "y": zx, "x": zy}
    given = {k: check_target(v, name) for (k, v), name in zip(given.items(), ("yx", "zx", "zy")) if v is not None}
    tolerance = check_float(tolerance, "tolerance", 0.0)
    if len(given) < 2:
        raise InputError("merge needs two or three orthogonal sections (yx, zx, zy).")
    first = next(iter(given.values()))
    for key, ds in given.items():
        if "2d" not in ds.values:
            raise InputError(f"the section for axis {key!r} must be a 2D characterisation.")
        if (ds.limit_to, ds.n_phases, ds.names) != (first.limit_to, first.n_phases, first.names):
            raise InputError("the sections were characterised with different descriptors, phases or limit_to.")
    # shared axes: (plane normal a, its direction) and (plane normal b, its direction) that lie along one axis
    shared = {"x": (("z", "cols"), ("y", "cols")), "y": (("z", "rows"), ("x", "cols")),
              "z": (("y", "rows"), ("x", "rows"))}
    if "s2" in first.names:
        for axis, ((a, da), (b, db)) in shared.items():
            if a in given and b in given:
                pa = _profile(given[a].values["2d"]["s2"], first.limit_to, da)
                pb = _profile(given[b].values["2d"]["s2"], first.limit_to, db)
                diff = np.linalg.norm(pa - pb) / max(np.linalg.norm(pa), np.linalg.norm(pb), 1e-12)
                if diff > tolerance:
                    raise InputError(
                        f"the sections disagree along the {axis} axis (relative S2 difference {diff:.2f} > "
                        f"{tolerance}): this combination cannot be realised in 3D. Check the orientation of each "
                        "section (rows/columns) or swap the sections."
                    )
    values = {k: dict(v.values["2d"]) for k, v in given.items()}
    common = set.intersection(*(set(v.coarse) for v in given.values()))
    coarse = {lv: DescriptorSet({k: dict(v.coarse[lv].values["2d"]) for k, v in given.items()}, first.n_phases,
                                first.coarse[lv].limit_to, dict(first.params)) for lv in sorted(common)}
    return DescriptorSet(values, first.n_phases, first.limit_to, dict(first.params), (), coarse)


def interpolate(a: DescriptorSet, b: DescriptorSet, n: int) -> list[DescriptorSet]:
    """``n`` descriptor sets on the straight line from ``a`` to ``b``, both included (paper 003 Fig. 9)."""
    check_target(a, "a")
    check_target(b, "b")
    n = check_int(n, "n (steps, both ends included)", 2, 10_000)
    if (a.axes, a.names, a.limit_to, a.n_phases) != (b.axes, b.names, b.limit_to, b.n_phases):
        raise InputError("the two descriptor sets differ in axes, descriptors, limit_to or phases; "
                         "characterise both with the same settings.")
    def mix(x: DescriptorSet, y: DescriptorSet, t: float) -> dict:
        return {ax: {nm: (1 - t) * x.values[ax][nm] + t * y.values[ax][nm] for nm in x.names} for ax in x.axes}

    common = [lv for lv in a.coarse if lv in b.coarse and a.coarse[lv].limit_to == b.coarse[lv].limit_to]
    return [replace(a, values=mix(a, b, t), coarse={lv: replace(a.coarse[lv], values=mix(a.coarse[lv], b.coarse[lv], t))
                                                   for lv in common})
            for t in np.linspace(0.0, 1.0, n)]


def descriptor_error(structure, target: DescriptorSet) -> dict[str, dict[str, float]]:
    """Relative descriptor error per axis and descriptor of a phase map against ``target`` (paper 003, Eq. 10):
    ``E = 1/n_slices sum_s ||D_s - D_des|| / ||D_des||``, computed on the discrete phases."""
    check_target(target)
    lab, _ = phase_map(structure)
    check_limit_to(target.limit_to, lab.shape)
    if lab.max() >= target.n_phases:
        raise InputError(f"the structure has phase {lab.max()} but the target only {target.n_phases} phases.")
    field_ = channels(indicator(lab, target.n_phases))
    with torch.no_grad():
        per_slice = evaluate(field_, target.names, target.limit_to, target.params)
    errors: dict[str, dict[str, float]] = {}
    for axis, d in per_slice.items():
        if axis not in target.values and "2d" not in target.values:
            continue  # an axis the target leaves free (two merged sections)
        want = target.for_axis(axis)
        errors[axis] = {}
        for name, got in d.items():
            ref = torch.as_tensor(want[name], dtype=got.dtype)
            errors[axis][name] = float((torch.linalg.norm(got - ref, dim=1) / torch.linalg.norm(ref).clamp_min(1e-12)).mean())
    return errors
