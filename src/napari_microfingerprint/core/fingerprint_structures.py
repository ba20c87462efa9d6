"""Fingerprint -> descriptors -> structure: sharp 2D and 3D structures from any point of a VAE's latent space
(issue 13, the bridge between the fingerprints and the descriptor reconstruction).

A VAE trained for a few CPU epochs decodes blurred, nearly mean images (issue 13). The descriptor reconstruction
makes sharp, two-valued structures that match prescribed statistics exactly (papers 003 and 004). The bridge
connects them: every window of the training images gives a pair (its fingerprint, its descriptors: volume
fractions, the two-point correlation S2 and the total variation of its phase map, paper 004); a distance-weighted
k-nearest-neighbour regression (scikit-learn) on the standardised fingerprints predicts the descriptors of any
fingerprint as a convex combination of real windows' descriptors; the prediction is a reconstruction target for a
2D image or, as an isotropic target (paper 003, Eq. 4), a 3D volume. Every latent walk (sweep, path, cloud,
sampling) thereby yields structures in 2D and 3D.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .descriptors.registry import get_descriptor
from .descriptors.sets import DEFAULT_WEIGHTS, DescriptorSet, channels, check_limit_to, indicator
from .generation_quality import split_threshold
from .reconstruction import ReconstructionResult, reconstruct
from .vae.model_io import check_model, encode, prepare_input
from .vae.training import VAEModel
from .validation import InputError, check_int

#: The descriptors a fingerprint predicts: the reconstruction's defaults.
NAMES = tuple(DEFAULT_WEIGHTS)


@dataclass
class DescriptorHead:
    """Fingerprint -> descriptors of a two-phase material: the regression, the descriptor layout (``sizes`` per
    name) and what a window is (patch size, ``limit_to``, the grey level that splits it into phases)."""

    regressor: Pipeline
    sizes: dict[tuple[int, str], int]  # (multigrid level, descriptor name) -> length, in the flat vector's order
    limit_to: int
    patch_size: int
    latent_dim: int
    threshold: float
    n_windows: int

    def predict(self, z) -> list[DescriptorSet]:
        """One reconstruction target per fingerprint of ``z`` (``(D,)`` or ``(N, D)``)."""
        from .analysis import as_fingerprints

        zz = as_fingerprints(z, "z", self.latent_dim)
        out = []
        for flat in self.regressor.predict(zz):
            values: dict[int, dict[str, np.ndarray]] = {}
            start = 0
            for (level, name), size in self.sizes.items():
                values.setdefault(level, {})[name] = flat[start:start + size].astype(np.float64)
                start += size
            coarse = {lv: DescriptorSet({"2d": v}, 2, _level_limit(self.limit_to, lv), {})
                      for lv, v in values.items() if lv > 0}
            out.append(DescriptorSet({"2d": values[0]}, 2, self.limit_to, {}, (self.patch_size, self.patch_size),
                                     coarse))
        return out


def _level_limit(limit_to: int, level: int) -> int:
    """``limit_to`` of multigrid level ``level`` (the structure pooled by ``2**level``), as :func:`characterize`
    sets it."""
    return max(1, limit_to // 2**level)


def _levels(patch: int, limit_to: int) -> list[int]:
    """The multigrid levels a window of side ``patch`` supports (as :func:`characterize` with ``levels=2``)."""
    return [lv for lv in range(3) if patch % 2**lv == 0 and patch // 2**lv > 2 * _level_limit(limit_to, lv)]


def window_descriptors(phases: np.ndarray, limit_to: int) -> np.ndarray:
    """The descriptors :data:`NAMES` of a batch of two-phase windows ``(N, L, L)`` and of their multigrid coarse
    versions (the indicator average-pooled by 2 and 4, as :func:`characterize` makes them: without them a 3D
    reconstruction converges slowly), flattened per window, level by level."""
    field = torch.stack([channels(indicator(w, 2)) for w in phases])  # (N, 1, L, L): phase 1's indicator
    parts = []
    with torch.no_grad():
        for level in _levels(phases.shape[-1], limit_to):
            pooled = torch.nn.functional.avg_pool2d(field, 2**level) if level else field
            parts += [get_descriptor(n).func(pooled, limit_to=_level_limit(limit_to, level)) for n in NAMES]
    return torch.cat(parts, dim=1).numpy()


def fit_descriptor_head(model: VAEModel, images: Sequence[np.ndarray], stride: int | None = None,
                        limit_to: int = 8, neighbours: int = 8) -> DescriptorHead:
    """Pair the fingerprint of every window of ``images`` (at ``stride``, default a quarter patch) with the
    descriptors of the window's phase map (split at :func:`~.generation_quality.split_threshold` of the images in
    the model's input units) and fit the k-nearest-neighbour regression from one to the other."""
    check_model(model)
    if model.config["transform"] == "distance":
        raise InputError("the model was trained on grain distance maps; the descriptor bridge needs a two-phase "
                         "micrograph model (grain structures are generated by decode_labels).")
    p = model.config["patch_size"]
    limit_to = check_int(limit_to, "limit_to", 1)
    check_limit_to(limit_to, (p, p))
    neighbours = check_int(neighbours, "neighbours", 1, 1000)
    step = max(1, p // 4) if stride is None else check_int(stride, "stride", 1)
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    data = [prepare_input(model, im) for im in images]
    if any(d.ndim != 2 or min(d.shape) < p for d in data):
        raise InputError(f"every image must be 2D and at least {p} x {p} (the model's patch).")
    threshold = split_threshold(np.concatenate([d.ravel() for d in data]))
    zs, ds = [], []
    for d, image in zip(data, images):
        views = np.lib.stride_tricks.sliding_window_view(d, (p, p))[::step, ::step]
        phases = (views.reshape(-1, p, p) > threshold).astype(np.int64)
        ds.append(window_descriptors(phases, limit_to))
        zs.append(encode(model, image, stride=step).reshape(-1, model.config["latent_dim"]))
    z, desc = np.concatenate(zs), np.concatenate(ds)
    if len(z) < 2:
        raise InputError(f"the images give {len(z)} window(s); the regression needs at least 2 (lower the stride).")
    regressor = make_pipeline(StandardScaler(), KNeighborsRegressor(min(neighbours, len(z)), weights="distance"))
    regressor.fit(z, desc)
    sizes = {(lv, n): int(get_descriptor(n).func(torch.zeros(1, 1, p // 2**lv, p // 2**lv),
                                                  limit_to=_level_limit(limit_to, lv)).shape[1])
             for lv in _levels(p, limit_to) for n in NAMES}
    return DescriptorHead(regressor, sizes, limit_to, p, model.config["latent_dim"], threshold, len(z))


def structure_from_fingerprint(head: DescriptorHead, z, shape: Sequence[int], **settings) -> ReconstructionResult:
    """A 2D image or 3D volume of ``shape`` whose slices have the descriptors ``head`` predicts for the
    fingerprint ``z``; ``settings`` are those of :func:`~.reconstruction.reconstruct`."""
    if not isinstance(head, DescriptorHead):
        raise InputError(f"head must be a DescriptorHead (from fit_descriptor_head), got {type(head).__name__}.")
    targets = head.predict(z)
    if len(targets) != 1:
        raise InputError(f"z holds {len(targets)} fingerprints; give one.")
    return reconstruct(targets[0], shape, **settings)
