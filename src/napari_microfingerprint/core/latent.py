"""Walks through a VAE's latent space, each returning fingerprints and their decodings: per-dimension sweeps
(paper 002 section 4.3), straight paths (paper 001 section 2.9), Gaussian clouds (001 2.9, Figs. 14-16),
sampling from fitted per-dimension normals (paper 000 section 3.3, Fig. 8), decoder probes (000 Fig. 6), and an
out-of-distribution score in PCA space (001 Fig. 16)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from .analysis import as_fingerprints
from .vae.model_io import check_model, decode, decode_labels
from .vae.training import VAEModel
from .validation import InputError, check_float, check_int, check_positive


@dataclass
class LatentWalk:
    """Fingerprints ``z`` ``(steps, latent)`` and their decodings ``images`` ``(steps, H, W)`` in the training
    data's units; ``labels`` (grain label maps, distance models only) and ``ood`` (one score per step) when asked
    for; ``kind`` and ``parameters`` say how the walk was made."""

    kind: str
    z: np.ndarray
    images: np.ndarray
    parameters: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    ood: np.ndarray | None = None


#: Most fingerprints one walk decodes (each is a decoded image); more is refused with the fix.
MAX_STEPS = 10_000


def _latent(model: VAEModel, z, what: str = "z") -> np.ndarray:
    """One fingerprint of the model's latent size as float32 (a ``(1, D)`` row is accepted)."""
    check_model(model)
    arr = as_fingerprints(z, what, model.config["latent_dim"])
    if arr.shape[0] != 1:
        raise InputError(f"{what} must be one fingerprint of {model.config['latent_dim']} numbers (the model's "
                         f"latent size); got {arr.shape[0]} rows.")
    return arr[0].astype(np.float32)


def _walk(model: VAEModel, kind: str, z: np.ndarray, reference=None, labels: bool = False,
          **parameters) -> LatentWalk:
    walk = LatentWalk(kind, z.astype(np.float32), decode(model, z), parameters)
    if labels:
        walk.labels = np.zeros(walk.images.shape, dtype=np.int32)
        for i, step in enumerate(z):
            try:
                walk.labels[i] = decode_labels(model, step)
            except InputError:  # a flat decoded distance map holds no grains
                walk.parameters.setdefault("no_grains", []).append(i)
    if reference is not None:
        walk.ood = ood_score(z, reference)
    return walk


def traverse(model: VAEModel, z, dim: int, values=None, reference=None, labels: bool = False) -> LatentWalk:
    """Sweep latent dimension ``dim`` of ``z`` through ``values`` (default 10 values over [-4, 4], paper 002
    section 4.3), keeping every other dimension as it is."""
    start = _latent(model, z)
    dim = check_int(dim, "dim", 0, start.size - 1)
    vals = np.linspace(-4.0, 4.0, 10) if values is None else \
        as_fingerprints(np.ravel(values)[:, None], "values")[:MAX_STEPS, 0]
    zs = np.repeat(start[None], len(vals), axis=0)
    zs[:, int(dim)] = vals
    return _walk(model, "sweep", zs, reference, labels, dim=int(dim), values=vals.tolist())


def interpolate_latent(model: VAEModel, z1, z2, steps: int = 10, reference=None, labels: bool = False) -> LatentWalk:
    """The straight path ``e1 + t (e2 - e1)``, ``t`` in [0, 1] with ``steps`` values, endpoints included
    (paper 001 section 2.9, its equation with the sign typo corrected)."""
    a, b = _latent(model, z1, "z1"), _latent(model, z2, "z2")
    steps = check_int(steps, "steps (both endpoints included)", 2, MAX_STEPS)
    t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]
    return _walk(model, "path", a + t * (b - a), reference, labels, steps=int(steps))


def gaussian_cloud(model: VAEModel, z, gamma: float, n: int = 10, seed: int = 0, reference=None,
                   labels: bool = False) -> LatentWalk:
    """``n`` fingerprints ``z + gamma * e``, ``e`` standard normal (paper 001 section 2.9, Figs. 14-16)."""
    centre = _latent(model, z)
    gamma = check_positive(gamma, "gamma")
    n = check_int(n, "n", 1, MAX_STEPS)
    noise = np.random.default_rng(seed).standard_normal((int(n), centre.size)).astype(np.float32)
    return _walk(model, "cloud", centre + float(gamma) * noise, reference, labels, gamma=float(gamma), n=int(n),
                 seed=seed)


def sample_latent(model: VAEModel, fingerprints, n: int = 10, seed: int = 0, reference=None,
                  labels: bool = False) -> LatentWalk:
    """``n`` new fingerprints drawn from independent normals fitted per dimension (mean and standard deviation)
    to a set or class of ``fingerprints`` (paper 000 section 3.3, Fig. 8)."""
    check_model(model)
    z = as_fingerprints(fingerprints, "fingerprints", model.config["latent_dim"])
    n = check_int(n, "n", 1, MAX_STEPS)
    if z.shape[0] < 2:
        raise InputError("fitting normals needs at least two fingerprints; encode more patches.")
    mean, std = z.mean(axis=0), z.std(axis=0, ddof=1)
    drawn = np.random.default_rng(seed).normal(mean, std, size=(int(n), z.shape[1])).astype(np.float32)
    return _walk(model, "sample", drawn, reference, labels, n=int(n), seed=seed, fitted_on=int(z.shape[0]))


def decoder_probes(model: VAEModel, dims=(0,), k_values=(1, 4, 16), amplitudes=(1.0, 2.0, 3.0),
                   labels: bool = False) -> LatentWalk:
    """Black-box probes of the decoder (paper 000 Fig. 6): the all-zero baseline; each of ``dims`` switched on
    alone (value 1); the first ``k`` dimensions switched on for each ``k`` in ``k_values``; and the first of
    ``dims`` at each amplitude. ``parameters["steps"]`` names every step."""
    check_model(model)
    d = model.config["latent_dim"]
    if not len(dims):
        raise InputError("dims must name at least one latent dimension, e.g. dims=(0,).")
    dims = [check_int(i, "dims entry", 0, d - 1) for i in dims]
    k_values = [check_int(k, "k_values entry", 1, d) for k in k_values]
    amplitudes = [check_float(a, "amplitudes entry") for a in amplitudes]
    rows, names = [np.zeros(d, np.float32)], ["baseline (all zero)"]
    for i in dims:
        rows.append(np.eye(d, dtype=np.float32)[int(i)])
        names.append(f"dimension {int(i)} = 1")
    for k in k_values:
        rows.append((np.arange(d) < int(k)).astype(np.float32))
        names.append(f"first {int(k)} dimensions = 1")
    for a in amplitudes:
        rows.append(float(a) * np.eye(d, dtype=np.float32)[int(dims[0])])
        names.append(f"dimension {int(dims[0])} = {float(a):g}")
    return _walk(model, "probes", np.stack(rows), None, labels, steps=names)


def ood_score(z, reference, variance: float = 0.95) -> np.ndarray:
    """Out-of-distribution score of fingerprints ``z`` against ``reference`` fingerprints (e.g. the training
    patches'), after paper 001 Fig. 16: project both on the principal components explaining ``variance`` of the
    reference and take each ``z``'s distance to its nearest reference point, in units of the reference cloud's
    RMS radius in that space. Near 0 inside the cloud; above about 1 outside it."""
    variance = check_float(variance, "variance", 0.0, 1.0, open_low=True, open_high=True)
    ref = as_fingerprints(reference, "reference")
    zz = as_fingerprints(z, "z", ref.shape[1])
    if ref.shape[0] < 3:
        raise InputError("the out-of-distribution score needs at least 3 reference fingerprints.")
    pca = PCA(n_components=variance, svd_solver="full").fit(ref)
    radius = float(np.sqrt(pca.explained_variance_.sum()))
    nn = NearestNeighbors(n_neighbors=1).fit(pca.transform(ref))
    return nn.kneighbors(pca.transform(zz))[0][:, 0] / max(radius, 1e-12)
