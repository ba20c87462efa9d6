"""Colour a fingerprint map by its first three principal components (scikit-learn PCA)."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from ..validation import InputError


def pca_rgb(fingerprints: np.ndarray) -> np.ndarray:
    """An RGB image ``(rows, cols, 3)`` in [0, 1] of a fingerprint map ``(rows, cols, latent)``: the first three
    principal components over all windows, each scaled to [0, 1] (missing components stay 0)."""
    fmap = np.asarray(fingerprints, dtype=float)
    if fmap.ndim != 3:
        raise InputError(f"a fingerprint map has shape (rows, cols, latent); got {fmap.shape}.")
    rows, cols, dim = fmap.shape
    flat = fmap.reshape(-1, dim)
    k = min(3, flat.shape[0], dim)
    rgb = np.zeros((flat.shape[0], 3))
    if k > 0 and flat.shape[0] > 1:
        scores = PCA(n_components=k).fit_transform(flat)
        span = np.ptp(scores, axis=0)
        rgb[:, :k] = (scores - scores.min(axis=0)) / np.where(span > 0, span, 1.0)
    return rgb.reshape(rows, cols, 3)
