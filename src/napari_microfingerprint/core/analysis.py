"""Fingerprint analysis: 2D embeddings (PCA; t-SNE initialised by PCA, paper 001 section 2.8), properties of
fingerprinted windows from the Segmentation core, and cross-validated structure–property models with
scikit-learn (SVR and linear regression, paper 001 sections 2.7 and 3.4; SVM classification and
leave-one-image-out generalisation, paper 002 section 4.4 and Table 3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.manifold import TSNE
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from .characterization import grain_statistics
from .segmentation import segment_phases
from .vae.data import sliding_windows
from .validation import (
    InputError,
    check_choice,
    check_fingerprints,
    check_greyscale,
    check_int,
    check_labels,
    check_positive,
)

#: Properties of a patch that :func:`window_properties` measures with the Segmentation core.
PATCH_PROPERTIES = ("phase fraction", "mean grain area", "R-n slope")

#: Regressors of :func:`fit_property`.
REGRESSORS = ("svr", "linear")
EMBEDDINGS = ("pca", "tsne")


def make_regressor(model: str, dim: int):
    """An unfitted scikit-learn regressor for fingerprints of ``dim`` numbers, standardised first.
    ``"svr"``: RBF support vector regression on a standardised target (so that its epsilon tube does not depend
    on the property's units), with C and the kernel width chosen by an inner 3-fold grid search on the training
    folds only; ``"linear"``: ridge regression with its penalty chosen by efficient leave-one-out."""
    if model == "svr":
        svr = make_pipeline(StandardScaler(), SVR(kernel="rbf", epsilon=0.05))
        grid = {"svr__C": [1.0, 10.0, 100.0], "svr__gamma": [0.01 / dim, 0.1 / dim, 1.0 / dim]}
        return TransformedTargetRegressor(GridSearchCV(svr, grid, cv=3), transformer=StandardScaler())
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def as_fingerprints(fingerprints, name: str = "fingerprints", width: int | None = None) -> np.ndarray:
    """Fingerprints as a finite ``(n, latent)`` float array (:func:`~.validation.check_fingerprints`); a map
    ``(rows, cols, latent)`` from :func:`~.vae.model_io.encode` is flattened row by row."""
    if isinstance(fingerprints, np.ndarray) and fingerprints.ndim == 3:
        fingerprints = fingerprints.reshape(-1, fingerprints.shape[-1])
    return check_fingerprints(fingerprints, name, width)


def embed(fingerprints, method: str = "pca", perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2D embedding ``(n, 2)`` of fingerprints: their first two principal components, or t-SNE initialised
    with PCA (paper 001 section 2.8). The perplexity is lowered to ``(n - 1) / 3`` for small sets."""
    check_choice(method, "method", EMBEDDINGS)
    perplexity = check_positive(perplexity, "perplexity")
    z = as_fingerprints(fingerprints)
    if z.shape[0] < 3:
        raise InputError(f"an embedding needs at least 3 fingerprints; got {z.shape[0]}.")
    distinct = np.unique(z, axis=0).shape[0]
    # identical fingerprints give t-SNE's PCA start a zero spread, and its Barnes-Hut tree then crashes the whole
    # process (a segmentation fault, which would close napari): refuse before
    if distinct == 1 or (method == "tsne" and distinct < 3):
        raise InputError(f"the {z.shape[0]} fingerprints hold only {distinct} different value(s), so there is "
                         "nothing to embed; a model that encodes every patch alike has not learnt yet (train it "
                         "longer), or choose layers that differ.")
    if method == "pca":
        scores = PCA(n_components=min(2, z.shape[1]), random_state=seed).fit_transform(z)
        return np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))
    tsne = TSNE(n_components=2, init="pca", perplexity=min(perplexity, (z.shape[0] - 1) / 3.0), random_state=seed)
    return tsne.fit_transform(z)


def patch_property(patch: np.ndarray, name: str, is_labels: bool) -> float:
    """A property of one patch from the Segmentation core: the phase fraction (the brighter phase of an Otsu
    segmentation, or labels > 0 for a label map), the mean grain area in pixels, or the slope of the grain radius
    against the neighbour count (R-n, paper 000 Fig. 4); the last two need a grain label map."""
    if name not in PATCH_PROPERTIES:
        raise InputError(f"unknown property {name!r}; use one of {', '.join(PATCH_PROPERTIES)}.")
    if name == "phase fraction":
        if is_labels:
            return float((patch > 0).mean())
        if np.ptp(patch) == 0:
            return 0.0
        return float((segment_phases(patch, 2, denoise_method="none", min_size=0) == 1).mean())
    if not is_labels:
        raise InputError(f"the {name} needs a grain label map; segment the grains first.")
    summary = grain_statistics(patch)[1]
    if name == "R-n slope":
        if not np.isfinite(summary["rn_slope"]):
            raise InputError("a patch holds too few inner grains for an R-n slope; use larger patches or "
                             "another property.")
        return float(summary["rn_slope"])
    return float(summary["mean_area"])


def window_properties(image: np.ndarray, patch_size: int, stride: int, name: str, is_labels: bool) -> np.ndarray:
    """:func:`patch_property` of every sliding window of ``image``, in the order :func:`~.vae.model_io.encode`
    returns their fingerprints (its map flattened row by row)."""
    check_choice(name, "name", PATCH_PROPERTIES)
    image = check_labels(image, "image", relabel=True) if is_labels else check_greyscale(image, "image")
    if image.ndim != 2:
        raise InputError(f"image has shape {image.shape}; window properties are measured on 2D images.")
    patch_size = check_int(patch_size, "patch_size", 2, min(image.shape))
    stride = check_int(stride, "stride", 1, min(image.shape))
    windows, _ = sliding_windows(image, patch_size, stride)
    return np.array([patch_property(w, name, is_labels) for w in windows])


@dataclass
class PropertyReport:
    """Cross-validated prediction of a property from fingerprints. ``predictions`` holds each sample's
    out-of-fold prediction, ``fold`` the fold that predicted it; ``r2`` and ``mape`` (mean absolute percentage
    error, in %, the "mean percentage error" of paper 001 Table 1) are over all out-of-fold predictions,
    ``fold_mape`` per fold, ``mae`` in the property's units. Percentage errors are undefined where the true value
    is zero: those samples (``zero_values`` of them) count in ``r2`` and ``mae`` but not in ``mape``."""

    model: str
    values: np.ndarray
    predictions: np.ndarray
    fold: np.ndarray
    r2: float
    mape: float
    mae: float
    fold_mape: np.ndarray
    zero_values: int = 0

    def summary(self) -> str:
        zeros = f"; {self.zero_values} zero values left out of the percentage" if self.zero_values else ""
        return (f"{self.model}: R² {self.r2:.3f}, mean percentage error {self.mape:.2f} % "
                f"(± {np.nanstd(self.fold_mape):.2f} over {len(self.fold_mape)} folds), MAE {self.mae:.4g}{zeros}")


def _splits(n: int, folds: int, groups, seed: int, y=None, stratify: bool = False):
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise InputError(f"groups need one entry per fingerprint ({n}); got shape {groups.shape}.")
        if np.unique(groups).size < 2:
            raise InputError("leave-one-group-out needs at least two groups (images).")
        return list(LeaveOneGroupOut().split(np.zeros(n), groups=groups))
    if folds < 2 or n < folds:
        raise InputError(f"{n} samples are too few for {folds}-fold cross-validation; "
                         f"use at most {max(n, 2)} folds and at least 2, or add samples.")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if stratify else \
        KFold(folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n), y))


def fit_property(fingerprints, values, model: str = "svr", folds: int = 10, groups=None,
                 seed: int = 0) -> PropertyReport:
    """Predict a property from fingerprints with ``folds``-fold cross-validation (paper 001 section 2.7: SVR;
    ``"linear"``: ridge regression; see :func:`make_regressor`). With ``groups`` (for
    example the image each patch came from) the folds are leave-one-group-out instead (paper 002 Table 3)."""
    check_choice(model, "model", REGRESSORS)
    folds = check_int(folds, "folds", 2)
    z = as_fingerprints(fingerprints)
    try:
        y = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise InputError(f"values must be one number per fingerprint ({err}).") from err
    if y.shape[0] != z.shape[0]:
        raise InputError(f"{z.shape[0]} fingerprints but {y.shape[0]} property values; give one value each.")
    if not np.isfinite(y).all():
        raise InputError("the property values hold NaN or infinite values.")
    predictions, fold = np.empty_like(y), np.empty(len(y), dtype=int)
    for k, (train, test) in enumerate(_splits(len(y), folds, groups, seed)):
        predictions[test] = make_regressor(model, z.shape[1]).fit(z[train], y[train]).predict(z[test])
        fold[test] = k
    nonzero = np.abs(y) > 1e-9 * max(float(np.abs(y).max()), 1e-300)
    pct = np.full(len(y), np.nan)
    pct[nonzero] = 100.0 * np.abs(predictions - y)[nonzero] / np.abs(y)[nonzero]
    with np.errstate(invalid="ignore"):
        fold_mape = np.array([np.nanmean(pct[fold == k]) if nonzero[fold == k].any() else np.nan
                              for k in range(fold.max() + 1)])
    return PropertyReport(model, y, predictions, fold, float(r2_score(y, predictions)),
                          float(np.nanmean(pct)) if nonzero.any() else float("nan"),
                          float(np.abs(predictions - y).mean()), fold_mape, int((~nonzero).sum()))


@dataclass
class ClassReport:
    """Cross-validated SVM classification of fingerprints: per-sample out-of-fold predictions and accuracy."""

    labels: np.ndarray
    predictions: np.ndarray
    accuracy: float
    chance: float

    def summary(self) -> str:
        return f"SVM: accuracy {100 * self.accuracy:.1f} % (chance {100 * self.chance:.1f} %)"


def classify(fingerprints, labels, folds: int = 10, groups=None, seed: int = 0) -> ClassReport:
    """SVM (RBF) classification of fingerprints into classes (e.g. process routes, paper 002 section 4.4) with
    stratified ``folds``-fold or leave-one-group-out cross-validation; ``chance`` is the majority-class share."""
    folds = check_int(folds, "folds", 2)
    z = as_fingerprints(fingerprints)
    y = np.asarray(labels).ravel()
    if y.shape[0] != z.shape[0]:
        raise InputError(f"{z.shape[0]} fingerprints but {y.shape[0]} labels; give one label each.")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InputError("classification needs at least two classes.")
    if groups is None and counts.min() < folds:
        raise InputError(f"the smallest class has {counts.min()} samples, too few for {folds} folds; "
                         "lower the folds or add samples.")
    predictions = np.empty_like(y)
    pipeline = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0))
    for train, test in _splits(len(y), folds, groups, seed, y=y, stratify=True):
        predictions[test] = clone(pipeline).fit(z[train], y[train]).predict(z[test])
    return ClassReport(y, predictions, float(np.mean(predictions == y)), float(counts.max() / counts.sum()))
