"""Are generated 2D structures statistically equivalent to the real material? (issue 13, item 1)

Each generated structure is compared with the spread of the same statistic over real patches of the material,
the test papers 000 (section 3.3, Fig. 8: grain statistics of VAE-generated structures against the real ones)
and 001 (section 2.9: generated microstructures judged by their descriptors) apply by eye:

* phase structures: the volume fraction of every phase, and the shape of the two-point correlation S2 (paper
  004, the package's own descriptor) as one number per structure: the RMS distance of its normalised
  autocorrelation ``f(r) = (S2(r) - phi^2) / (phi - phi^2)`` (1 at r = 0, 0 for uncorrelated points; ``phi`` the
  structure's own volume fraction) to the real patches' mean ``f``. Normalising by ``phi`` keeps the volume
  fraction, judged on its own, from hiding the morphology: white noise of the right fraction matches S2 at r = 0
  and fails here;
* grain structures: the grain count, the mean grain area and the slope of grain radius against neighbour count
  (R-n, paper 000 Fig. 4).

A value is *inside* when it lies within ``sd`` standard deviations of the real patches' mean (for the S2 distance,
below the real patches' own mean distance plus ``sd`` standard deviations: being closer to the mean is never
wrong). A statistic passes when at least ``share`` of the generated structures are inside.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .characterization import grain_statistics
from .descriptors.correlations import two_point_correlation
from .descriptors.sets import channels, indicator
from .latent import LatentWalk
from .vae.model_io import check_model, prepare_input
from .vae.training import VAEModel
from .validation import InputError, check_choice, check_float, check_int, check_labels

KINDS = ("phases", "grains")
#: Below this many real patches, :meth:`GenerationQuality.summary` says that the real spread is uncertain: judged
#: against the 64 windows of one 512^2 Potts map, real windows of other maps fail the 90 % rule 7 times in 24;
#: against 256 windows of four maps, once (BENCHMARKS.md, issue 13).
FEW_REAL_PATCHES = 128


@dataclass
class GenerationQuality:
    """``table``: one row per statistic (real mean and sd, generated mean and sd, the share of generated
    structures inside the real spread, passed); ``samples``: every generated structure's values and inside
    flags; ``n_real``: the number of real patches the spread comes from. ``passed`` is True when every
    statistic passes."""

    kind: str
    table: pd.DataFrame
    samples: pd.DataFrame
    n_real: int
    #: What the rows of ``samples`` are, for the summary: whole structures, or windows cut from larger ones.
    what: str = "structures"

    @property
    def passed(self) -> bool:
        return bool(self.table["passed"].all())

    def summary(self) -> str:
        parts = [f"{row.statistic} {100 * row.inside_share:.0f} % inside" for row in self.table.itertuples()]
        verdict = "passes" if self.passed else "fails"
        text = (f"{len(self.samples)} generated {self.kind} {self.what} {verdict} against {self.n_real} real "
                "patches: " + ", ".join(parts))
        if self.n_real < FEW_REAL_PATCHES:
            text += (f" (only {self.n_real} real patches: the real spread is uncertain; real grain maps failed 7 "
                     "times in 24 against 64 windows of one map; judge against a larger image or several)")
        return text


def _stack(structures, name: str) -> list[np.ndarray]:
    """A non-empty list of validated 2D label maps from an ``(N, H, W)`` array or a sequence of 2D arrays."""
    if isinstance(structures, np.ndarray) and structures.ndim == 3:
        structures = list(structures)
    if isinstance(structures, np.ndarray) or not isinstance(structures, Sequence) or len(structures) == 0:
        raise InputError(f"{name} must be a non-empty list of 2D structures or an (N, H, W) array.")
    out = [check_labels(s, f"{name}[{k}]") for k, s in enumerate(structures)]
    if any(s.ndim != 2 for s in out):
        raise InputError(f"{name} must hold 2D structures; got shapes {sorted({s.shape for s in out})}.")
    return out


def normalised_autocorrelation(structures: np.ndarray, n_phases: int, limit_to: int) -> np.ndarray:
    """``(S2(r) - phi^2) / (phi - phi^2)`` of every channel of a phase map ``(H, W)`` or of a batch of them
    ``(N, H, W)`` (phase 1 alone for two phases), over the half-plane offsets up to ``limit_to``, flattened per
    map (one batched FFT for the batch); NaN for a channel that is absent or fills the map."""
    batch = np.asarray(structures)
    single = batch.ndim == 2
    field = channels(indicator(batch[None] if single else batch, n_phases)).movedim(0, 1)  # (N, C, H, W)
    with torch.no_grad():
        s2 = two_point_correlation(field, limit_to=limit_to).numpy().reshape(field.shape[0], field.shape[1], -1)
    phi = s2[:, :, :1]  # offset (0, 0) comes first: S2(0) = <I^2> = phi
    with np.errstate(divide="ignore", invalid="ignore"):
        curves = ((s2 - phi**2) / (phi - phi**2)).reshape(len(s2), -1)
    return curves[0] if single else curves


def _phase_values(structures: list[np.ndarray], n_phases: int, limit_to: int) -> dict[str, np.ndarray]:
    """Volume fractions ``(N,)`` per phase and normalised autocorrelations ``(N, K)`` (structures of one shape in
    one batch)."""
    fractions = {p: np.array([float((s == p).mean()) for s in structures]) for p in range(n_phases)}
    curves = np.empty((len(structures), 0))
    for shape in {s.shape for s in structures}:
        index = [k for k, s in enumerate(structures) if s.shape == shape]
        batch = normalised_autocorrelation(np.stack([structures[k] for k in index]), n_phases, limit_to)
        if curves.shape[1] == 0:
            curves = np.full((len(structures), batch.shape[1]), np.nan)
        curves[index] = batch
    return {**{f"volume fraction of phase {p}": v for p, v in fractions.items()}, "S2": curves}


def _grain_values(structures: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Grain count, mean grain area (pixels) and R-n slope per structure (NaN where a patch has too few inner
    grains for a slope)."""
    rows = []
    for s in structures:
        if s.max() == 0:
            rows.append((0.0, np.nan, np.nan))
            continue
        summary = grain_statistics(s)[1]
        rows.append((float(summary["n_grains"]), float(summary["mean_area"]), float(summary["rn_slope"])))
    values = np.array(rows, dtype=float)
    return {"grain count": values[:, 0], "mean grain area": values[:, 1], "R-n slope": values[:, 2]}


def generation_quality(generated, real, kind: str = "phases", limit_to: int = 8, sd: float = 2.0,
                       share: float = 0.9) -> GenerationQuality:
    """Compare generated 2D structures with real patches of the material (see the module docstring).

    ``generated`` and ``real``: ``(N, H, W)`` arrays or lists of 2D phase maps (``kind="phases"``, values
    0..P-1) or grain label maps (``kind="grains"``); at least 3 real patches, of any size larger than
    ``2 * limit_to``.

    The real spread is estimated from ``real``, so give as many patches as the material allows. Judged against
    the 64 windows of one 512^2 Potts map, the 64 windows of another map of the same stage pass only 17 of 24
    times (the R-n slope, 84-89 % inside); against 256 windows of four maps, 23 of 24 times (BENCHMARKS.md,
    issue 13). The summary says so below :data:`FEW_REAL_PATCHES` patches."""
    check_choice(kind, "kind", KINDS)
    sd = check_float(sd, "sd", 0.0, open_low=True)
    share = check_float(share, "share", 0.0, 1.0)
    gen, ref = _stack(generated, "generated"), _stack(real, "real")
    if len(ref) < 3:
        raise InputError(f"real holds {len(ref)} patch(es); the real spread needs at least 3.")
    if kind == "phases":
        limit_to = check_int(limit_to, "limit_to", 1, (min(min(s.shape) for s in gen + ref) - 1) // 2)
        n_phases = int(max(s.max() for s in ref)) + 1
        if n_phases < 2:
            raise InputError("real holds a single phase; there is nothing to compare.")
        if max(s.max() for s in gen) >= n_phases:
            raise InputError(f"generated holds phases the real patches do not (real: 0..{n_phases - 1}).")
        real_values, gen_values = _phase_values(ref, n_phases, limit_to), _phase_values(gen, n_phases, limit_to)
    else:
        real_values, gen_values = _grain_values(ref), _grain_values(gen)
    rows, columns = [], {}
    for name, real_v in real_values.items():
        gen_v = gen_values[name]
        if name == "S2":
            centre = np.nanmean(real_v, axis=0)
            real_v = np.sqrt(np.mean((real_v - centre) ** 2, axis=1))
            gen_v = np.sqrt(np.mean((gen_v - centre) ** 2, axis=1))
            name = "S2 shape distance to the real mean"
            inside = gen_v <= np.nanmean(real_v) + sd * np.nanstd(real_v, ddof=1)
        else:
            inside = np.abs(gen_v - np.nanmean(real_v)) <= sd * np.nanstd(real_v, ddof=1)
        inside &= np.isfinite(gen_v)
        columns[name], columns[f"{name} inside"] = gen_v, inside
        rows.append({"statistic": name, "real_mean": float(np.nanmean(real_v)),
                     "real_sd": float(np.nanstd(real_v, ddof=1)), "generated_mean": float(np.nanmean(gen_v))
                     if np.isfinite(gen_v).any() else float("nan"),
                     "generated_sd": float(np.nanstd(gen_v, ddof=1)) if np.isfinite(gen_v).sum() > 1 else float("nan"),
                     "inside_share": float(inside.mean()), "passed": bool(inside.mean() >= share)})
    return GenerationQuality(kind, pd.DataFrame(rows), pd.DataFrame(columns), len(ref))


def real_patches(model: VAEModel, image, kind: str, window: int | None = None
                 ) -> tuple[list[np.ndarray], float | None]:
    """Non-overlapping patch-sized (or ``window``-sized) windows of a real 2D image, as the structures generated
    by ``model`` are judged: for ``"grains"`` the label map's windows; for ``"phases"`` the windows of the image in
    the model's input units (:func:`~.vae.model_io.prepare_input`) split at their Otsu threshold (midway for a
    binary image), which is returned so that decoded images are split at the same grey level."""
    p = model.config["patch_size"] if window is None else window
    data = check_labels(image, "real") if kind == "grains" else prepare_input(model, image)
    if data.ndim != 2 or min(data.shape) < p:
        raise InputError(f"real has shape {data.shape}; a 2D image of at least {p} x {p} pixels (the window judged) "
                         "is needed.")
    windows = [data[y:y + p, x:x + p] for y in range(0, data.shape[0] - p + 1, p)
               for x in range(0, data.shape[1] - p + 1, p)]
    if kind == "grains":
        return windows, None
    threshold = split_threshold(np.stack(windows))
    return [(w > threshold).astype(np.uint8) for w in windows], threshold


def split_threshold(data: np.ndarray) -> float:
    """The grey level that splits a model's input data into two phases: Otsu's threshold, or midway between the
    two values of a binary image (a segmented micrograph), where Otsu's sits at the lower value and would call
    every soft decoded pixel phase 1."""
    from skimage.filters import threshold_otsu

    values = np.unique(data)
    return float(values.mean()) if values.size <= 2 else float(threshold_otsu(data))


def walk_quality(model: VAEModel, walk: LatentWalk, real, limit_to: int = 8, sd: float = 2.0,
                 share: float = 0.9) -> GenerationQuality:
    """:func:`generation_quality` of a latent walk's decoded structures against the real image it should
    resemble (e.g. the training micrograph): grain models compare the walk's grain labels (``labels=True``) with
    the real label map's windows; intensity models split the decoded images and the real windows at one Otsu
    threshold (:func:`real_patches`)."""
    check_model(model)
    kind = "grains" if model.config["transform"] == "distance" else "phases"
    if kind == "grains" and walk.labels is None:
        raise InputError("the walk holds no grain labels; walk with labels=True to judge a grain model.")
    patches, threshold = real_patches(model, real, kind)
    generated = list(walk.labels) if kind == "grains" else [(im > threshold).astype(np.uint8) for im in walk.images]
    return generation_quality(generated, patches, kind, limit_to, sd, share)


def structure_windows(structure: np.ndarray, window: int, spacing: int | None = None) -> list[np.ndarray]:
    """The non-overlapping ``window`` x ``window`` windows of a 2D structure, or of the sections of a 3D volume
    along each of its three axes (every ``spacing``-th section, default ``window // 8``) that hold one: how a
    structure larger than a patch, or a volume, is judged against real patches of that size (the benchmarks of
    issue 13 judge a volume on 16 of its slices, every 8th along two axes)."""
    data = np.asarray(structure)
    if data.ndim == 2:
        sections = [data]
    else:
        step = max(1, window // 8) if spacing is None else spacing
        sections = [np.take(data, k, axis=axis) for axis in range(3) for k in range(0, data.shape[axis], step)]
    return [s[y:y + window, x:x + window] for s in sections for y in range(0, s.shape[0] - window + 1, window)
            for x in range(0, s.shape[1] - window + 1, window)]


def _largest_window(structure: np.ndarray) -> int:
    """The side of the largest square window a 2D structure, or some section of a 3D volume, holds."""
    shape = structure.shape
    return min(shape) if len(shape) == 2 else max(min(shape[:a] + shape[a + 1:]) for a in range(3))


def structure_quality(model: VAEModel, structures, real, limit_to: int = 8, sd: float = 2.0, share: float = 0.9,
                      spacing: int | None = None) -> GenerationQuality:
    """:func:`generation_quality` of sharp structures made from fingerprints (the bridges' 2D maps and 3D volumes,
    of any size: :func:`~.fingerprint_structures.structure_from_fingerprint`,
    :func:`~.fingerprint_grains.grains_from_fingerprint`) against the real 2D image the model's fingerprints come
    from. Every structure is cut into the windows of :func:`structure_windows`, the size of the model's patch, or
    of the thinnest structure's largest section where that is smaller, and the real image into non-overlapping
    windows of the same size (:func:`real_patches`), so that like is judged against like: a window's grain count
    and the spread of its volume fraction depend on its size. ``structures``: one 2D or 3D label map, or a list
    of them (phase maps 0/1 for a two-phase model, grain label maps for a grain model)."""
    check_model(model)
    kind = "grains" if model.config["transform"] == "distance" else "phases"
    if isinstance(structures, np.ndarray) and structures.ndim in (2, 3):
        structures = [structures]
    if isinstance(structures, np.ndarray) or not isinstance(structures, Sequence) or len(structures) == 0:
        raise InputError("structures must be a 2D or 3D label map or a non-empty list of them.")
    data = [check_labels(s, f"structures[{k}]") for k, s in enumerate(structures)]  # refuses other than 2D / 3D
    spacing = None if spacing is None else check_int(spacing, "spacing", 1)
    window = min(model.config["patch_size"], *(_largest_window(s) for s in data))
    windows = [w for s in data for w in structure_windows(s, window, spacing)]
    patches, _ = real_patches(model, real, kind, window)
    quality = generation_quality(windows, patches, kind, limit_to, sd, share)
    quality.what = f"windows of {window} px (from {len(data)} structure{'s' if len(data) > 1 else ''})"
    return quality
