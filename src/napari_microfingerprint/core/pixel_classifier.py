"""Segmentation by a pixel classifier trained from a few brush strokes (paper 001 section 2.6; the approach of
ilastik, Trainable Weka Segmentation and APOC).

Every pixel (voxel) gets multi-scale filter features of the image, white-balanced to [0, 1] by the 1st and 99th
percentiles as in paper 001 section 2.2: Gaussian-smoothed intensity, gradient magnitude and the eigenvalues of
the Hessian at scales from ``sigma_min`` to ``sigma_max`` (scikit-image ``feature.multiscale_basic_features``),
plus the local standard deviation at the same scales (``sqrt(G_s * I^2 - (G_s * I)^2)``), which
multiscale_basic_features lacks: on phases that differ only by the grain of their noise it raised the mean IoU
from 0.79 to 0.96 (the test image of ``tests/core/test_pixel_classifier.py``, 0.4 % of the pixels painted).
A random forest (scikit-learn, seeded) learns the phase of the scribbled pixels and predicts the others. Large
images and volumes are predicted in tiles with a halo of the widest filter, so memory stays bounded and the result
equals a prediction of the whole image at once.

Scribbles are a label array of the image's shape: 0 = not painted, 1..P = phases. Predictions are phase maps
``0..P-1`` (scribble value minus one), like :func:`~.segmentation.segment_phases`.

Saved classifiers hold no pickle: a JSON file with the settings and an ``.npz`` with the training features and
labels, from which loading refits the same (seeded) forest.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import multiscale_basic_features
from sklearn.ensemble import RandomForestClassifier

from .segmentation import normalize
from .validation import InputError, check_greyscale, check_int, check_labels, check_positive

FORMAT = "napari-microfingerprint pixel classifier"
FEATURE_KINDS = ("intensity", "edges", "texture", "variance")
#: Pixels per tile side in 2D and voxels per tile side in 3D (plus the halo on each side).
TILE = {2: 512, 3: 96}
#: Gaussian filters reach ``truncate * sigma`` (scipy's default truncate is 4); the halo adds 2 pixels for the
#: finite differences of the gradient and Hessian.
TRUNCATE = 4.0


@dataclass(frozen=True)
class FeatureSettings:
    """The filter bank: which feature kinds, over which range of Gaussian scales (in pixels)."""

    sigma_min: float = 1.0
    sigma_max: float = 16.0
    intensity: bool = True
    edges: bool = True
    texture: bool = True
    variance: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_min) and math.isfinite(self.sigma_max)
                and 0 < self.sigma_min <= self.sigma_max):
            raise InputError(f"sigma range {self.sigma_min}..{self.sigma_max} must satisfy 0 < sigma_min <= "
                             "sigma_max (pixels), e.g. 1 and 16.")
        if not (self.intensity or self.edges or self.texture or self.variance):
            raise InputError(f"at least one feature kind ({', '.join(FEATURE_KINDS)}) is needed.")

    @property
    def sigmas(self) -> np.ndarray:
        """The scales, as multiscale_basic_features spaces them (one per octave, both ends included)."""
        n = int(np.log2(self.sigma_max) - np.log2(self.sigma_min) + 1)
        return np.logspace(np.log2(self.sigma_min), np.log2(self.sigma_max), num=max(n, 1), base=2)

    @property
    def halo(self) -> int:
        return int(math.ceil(TRUNCATE * self.sigma_max)) + 2


def pixel_features(image, settings: FeatureSettings = FeatureSettings()) -> np.ndarray:
    """Features ``(*image.shape, F)`` (float32) of a 2D or 3D greyscale image, white-balanced first."""
    return _features(normalize(image), settings)


def _features(balanced: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    parts = []
    if settings.intensity or settings.edges or settings.texture:
        parts.append(multiscale_basic_features(balanced, intensity=settings.intensity, edges=settings.edges,
                                               texture=settings.texture, sigma_min=settings.sigma_min,
                                               sigma_max=settings.sigma_max))
    if settings.variance:
        square = balanced * balanced
        parts.append(np.stack([np.sqrt(np.clip(ndi.gaussian_filter(square, s, truncate=TRUNCATE)
                                               - ndi.gaussian_filter(balanced, s, truncate=TRUNCATE) ** 2, 0, None))
                               for s in settings.sigmas], axis=-1))
    return np.concatenate(parts, axis=-1).astype(np.float32)


def _check_pair(image, scribbles, k: int) -> tuple[np.ndarray, np.ndarray]:
    img = check_greyscale(image, f"image {k}")
    lab = check_labels(scribbles, f"scribbles {k}")
    if lab.shape != img.shape:
        raise InputError(f"scribbles {k} have shape {lab.shape} but image {k} has {img.shape}; paint the scribbles "
                         "on a Labels layer of the image's shape.")
    return img, lab


@dataclass
class PixelClassifier:
    """A random forest on :func:`pixel_features`; ``classes`` are the scribble values it learnt (1..P)."""

    settings: FeatureSettings
    forest: RandomForestClassifier
    classes: np.ndarray
    ndim: int
    n_estimators: int
    seed: int
    training: tuple[np.ndarray, np.ndarray]  # the scribbled pixels' features and labels, kept for saving

    def predict_proba(self, image, tile: int | None = None) -> np.ndarray:
        """Class probabilities ``(P, *image.shape)`` (float32), in tiles of ``tile`` pixels a side plus a halo."""
        img = check_greyscale(image)
        if img.ndim != self.ndim:
            raise InputError(f"the classifier was trained on {self.ndim}D images but this image is {img.ndim}D "
                             f"{img.shape}; train another one, or predict slice by slice.")
        balanced = normalize(img)
        side = int(tile or TILE[img.ndim])
        if side < 1:
            raise InputError(f"tile must be at least 1 pixel, got {tile}.")
        out = np.empty((len(self.classes), *img.shape), dtype=np.float32)
        halo = self.settings.halo
        for core in _tiles(img.shape, side):
            padded = tuple(slice(max(0, s.start - halo), min(n, s.stop + halo)) for s, n in zip(core, img.shape))
            feats = _features(balanced[padded], self.settings)
            inner = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(core, padded))
            block = feats[inner]
            proba = self.forest.predict_proba(block.reshape(-1, block.shape[-1]))
            out[(slice(None), *core)] = proba.T.reshape(len(self.classes), *block.shape[:-1])
        return out

    def predict(self, image, tile: int | None = None) -> np.ndarray:
        """The phase map ``0..P-1`` (uint8): the most probable class, minus one."""
        return self.labels(self.predict_proba(image, tile))

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """The phase map ``0..P-1`` (uint8) of probabilities from :meth:`predict_proba`."""
        return (self.classes[np.argmax(proba, axis=0)] - 1).astype(np.uint8)

    def save(self, path: str | Path) -> tuple[str, str]:
        """Write ``<path>.json`` (settings) and ``<path>.npz`` (training features and labels); no pickle."""
        base = Path(path).with_suffix("")
        x, y = self.training
        np.savez_compressed(base.with_suffix(".npz"), features=x, labels=y)
        meta = {"format": FORMAT, "version": 1, "settings": asdict(self.settings), "ndim": self.ndim,
                "n_estimators": self.n_estimators, "seed": self.seed, "classes": self.classes.tolist(),
                "n_features": int(x.shape[1])}
        base.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return str(base.with_suffix(".json")), str(base.with_suffix(".npz"))

    @classmethod
    def load(cls, path: str | Path) -> PixelClassifier:
        """Read a classifier written by :meth:`save` and refit its forest (seeded, so it predicts the same)."""
        base = Path(path).with_suffix("")
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            if meta.get("format") != FORMAT:
                raise InputError(f"{base.with_suffix('.json').name} is not a pixel classifier file.")
            with np.load(base.with_suffix(".npz"), allow_pickle=False) as npz:
                x, y = npz["features"], npz["labels"]
            settings = FeatureSettings(**meta["settings"])
            ndim, n_estimators, seed = int(meta["ndim"]), int(meta["n_estimators"]), int(meta["seed"])
        except InputError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise InputError(f"pixel classifier {base} could not be read ({type(err).__name__}: {err}); are both "
                             f"{base.name}.json and {base.name}.npz there and complete?") from err
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != meta.get("n_features") \
                or sorted(np.unique(y).tolist()) != sorted(meta.get("classes", [])):
            raise InputError(f"pixel classifier {base}: the training data do not match its settings; the files are "
                             "damaged or from different classifiers.")
        return _fit(x, y, settings, ndim, n_estimators, seed)


def _tiles(shape: tuple[int, ...], side: int):
    """The core slices of a regular tiling of ``shape``."""
    starts = [range(0, n, side) for n in shape]
    for corner in product(*starts):
        yield tuple(slice(c, min(c + side, n)) for c, n in zip(corner, shape))


def _training_samples(balanced: np.ndarray, lab: np.ndarray,
                      settings: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the painted pixels, computed tile by tile on the bounding box of each tile's strokes
    plus the halo only (strokes on a few slices of a volume cost a few thin slabs, not the whole volume); equal
    to the whole image's features at those pixels, as in prediction."""
    xs, ys = [], []
    for core in _tiles(lab.shape, TILE[lab.ndim]):
        painted = np.nonzero(lab[core])
        if not painted[0].size:
            continue
        box = tuple(slice(s.start + int(p.min()), s.start + int(p.max()) + 1) for s, p in zip(core, painted))
        padded = tuple(slice(max(0, b.start - settings.halo), min(n, b.stop + settings.halo))
                       for b, n in zip(box, lab.shape))
        feats = _features(balanced[padded], settings)
        local = lab[padded]
        inner = np.zeros(local.shape, dtype=bool)
        inner[tuple(slice(max(c.start, p.start) - p.start, min(c.stop, p.stop) - p.start)
                    for c, p in zip(core, padded))] = True  # the core's part of the padded box
        mask = inner & (local > 0)
        xs.append(feats[mask])
        ys.append(local[mask])
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, lab.dtype)
    return np.concatenate(xs), np.concatenate(ys)


def _fit(x: np.ndarray, y: np.ndarray, settings: FeatureSettings, ndim: int, n_estimators: int,
         seed: int) -> PixelClassifier:
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    forest.fit(x, y)
    return PixelClassifier(settings, forest, forest.classes_, ndim, n_estimators, seed, (x, y))


def fit_pixel_classifier(images, scribbles, sigma_min: float = 1.0, sigma_max: float = 16.0,
                         features: Sequence[str] = FEATURE_KINDS, n_estimators: int = 100,
                         seed: int = 0) -> PixelClassifier:
    """Train a random forest on the scribbled pixels of one image (or of several, given as lists of images and
    scribbles of equal dimensionality). ``features`` chooses among intensity, edges and texture."""
    if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
        images, scribbles = [images], [scribbles]
    if len(images) != len(scribbles) or not images:
        raise InputError(f"{len(images)} image(s) but {len(scribbles)} scribble array(s); give one scribble array "
                         "per image.")
    features = (features,) if isinstance(features, str) else features
    features = list(features) if isinstance(features, Iterable) else features
    if not isinstance(features, list) or not all(isinstance(k, str) for k in features):
        raise InputError(f"features={features!r} must be a list of feature kinds from {', '.join(FEATURE_KINDS)}.")
    unknown = sorted(set(features) - set(FEATURE_KINDS))
    if unknown:
        raise InputError(f"unknown feature kind(s) {unknown}; choose from {', '.join(FEATURE_KINDS)}.")
    n_estimators = check_int(n_estimators, "n_estimators", 1, 10_000)
    settings = FeatureSettings(check_positive(sigma_min, "sigma_min"), check_positive(sigma_max, "sigma_max"),
                               *(k in features for k in FEATURE_KINDS))
    xs, ys, ndims = [], [], set()
    for k, (image, scrib) in enumerate(zip(images, scribbles)):
        img, lab = _check_pair(image, scrib, k)
        ndims.add(img.ndim)
        x, y = _training_samples(normalize(img), lab, settings)
        if y.size:
            xs.append(x)
            ys.append(y)
    if len(ndims) > 1:
        raise InputError("the training images mix 2D and 3D; train one classifier per dimensionality.")
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    classes = np.unique(y)
    if classes.size < 2:
        raise InputError(f"the scribbles paint {classes.size} phase(s) ({classes.tolist()}); paint at least two "
                         "phases (labels 1, 2, ...) with a few strokes each.")
    return _fit(np.concatenate(xs), y, settings, ndims.pop(), n_estimators, check_int(seed, "seed", 0, 2**32 - 1))


def segment_with_scribbles(image, scribbles, **kwargs) -> np.ndarray:
    """Train on the scribbles of ``image`` and segment the whole image: a phase map ``0..P-1``. Keyword
    arguments go to :func:`fit_pixel_classifier`."""
    return fit_pixel_classifier(image, scribbles, **kwargs).predict(image)
