"""Phase and grain segmentation of 2D and 3D micrographs.

Greyscale normalisation and illumination correction follow White et al. (paper 001, sections 2.2 and 2.6.1);
grain segmentation from a distance map follows Ji et al. (paper 000, section 2.3: distance peaks trimmed of
saddle points, then watershed), and the label map -> boundary map -> Euclidean distance map conversion is the
VAE input of paper 000 section 3.1. The heavy lifting is scikit-image's and scipy's.
"""
from __future__ import annotations

import numbers
from collections.abc import Generator, Sequence
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import feature, filters, measure, morphology, restoration, segmentation
from skimage.feature import peak_local_max

from .progress import Progress, run_to_end
from .validation import (
    InputError,
    check_choice,
    check_float,
    check_greyscale,
    check_image,
    check_int,
    check_labels,
    check_positive,
    check_spacing,
)

DenoiseMethod = Literal["auto", "nl_means", "gaussian", "median", "none"]
PhaseMethod = Literal["otsu", "multiotsu", "manual"]
GrainSource = Literal["auto", "boundaries", "binary", "distance"]
DENOISE_METHODS = ("auto", "nl_means", "gaussian", "median", "none")
PHASE_METHODS = ("otsu", "multiotsu", "manual")
GRAIN_SOURCES = ("auto", "boundaries", "binary", "distance")
BOUNDARIES = ("auto", "dark", "bright")
#: Histogram bins of the multi-Otsu search per class count. scikit-image searches every combination of
#: ``classes - 1`` thresholds among the bins, C(bins, classes - 1) of them: with 256 bins 4 classes take 0.02 s,
#: 5 classes 2.5 s and 6 classes about 50 times longer (2 minutes in the widget; 256^2 image, 2 cores, quiet
#: machine). Fewer bins keep 5 and 6 classes near 0.05 s (96 and 64 bins); beyond 6 phases give thresholds or use
#: the pixel classifier.
OTSU_BINS = {2: 256, 3: 256, 4: 256, 5: 96, 6: 64}
MAX_OTSU_PHASES = max(OTSU_BINS)
MAX_PHASES = 16


def normalize(image, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Clip intensities to the ``low``/``high`` percentiles and map them linearly to [0, 1] (paper 001, 2.2).

    The paper white-balances by clipping beyond fixed percentiles; the defaults clip the darkest and the
    brightest 1 %.
    """
    arr = check_greyscale(image)
    low, high = check_float(low, "low", 0.0, 100.0), check_float(high, "high", 0.0, 100.0)
    if low >= high:
        raise InputError(f"percentiles must satisfy low < high, got low={low:g}, high={high:g}.")
    lo, hi = np.percentile(arr, [low, high])
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


def correct_illumination(image, sigma: float = 50.0) -> np.ndarray:
    """Remove slow illumination changes with a Gaussian high-pass filter in the Fourier domain (paper 001, 2.6.1).

    ``high = image - IFFT(G_sigma * FFT(image))``, computed on the image mirror-padded by ``3 sigma`` (at most
    its size) so that a gradient across the image is not wrapped around; the image mean is added back so grey
    levels keep their meaning, then the result is rescaled to [0, 1]. ``sigma`` (pixels) should exceed the
    feature size.
    """
    arr = check_greyscale(image)
    sigma = check_positive(sigma, "sigma")
    pad = [(p, p) for p in (min(int(np.ceil(3 * sigma)), s - 1) for s in arr.shape)]
    padded = np.pad(arr, pad, mode="symmetric")
    low = np.real(np.fft.ifftn(ndimage.fourier_gaussian(np.fft.fftn(padded), sigma=sigma)))
    low = low[tuple(slice(a, a + s) for (a, _), s in zip(pad, arr.shape))]
    out = arr - low + arr.mean()
    return (out - out.min()) / max(float(np.ptp(out)), 1e-12)


def denoise(image, method: DenoiseMethod = "auto", strength: float = 1.0) -> np.ndarray:
    """Denoise a [0, 1] image.

    * ``"nl_means"``: scikit-image non-local means with the noise level estimated from the image
      (``h = 0.8 * strength * sigma``), robust on noisy SEM and optical micrographs;
    * ``"gaussian"``: Gaussian blur with ``sigma = strength`` pixels;
    * ``"median"``: median filter of width ``2 * round(strength) + 1``;
    * ``"auto"``: non-local means in 2D, median in 3D (non-local means is slow on large volumes);
    * ``"none"``: unchanged.
    """
    check_choice(method, "method", DENOISE_METHODS)
    arr = check_greyscale(image)
    if method == "auto":
        method = "nl_means" if arr.ndim == 2 else "median"
    if method == "none":
        return arr
    strength = check_positive(strength, "strength")
    if method == "gaussian":
        return ndimage.gaussian_filter(arr, strength)
    if method == "median":
        return ndimage.median_filter(arr, size=2 * max(1, int(round(strength))) + 1)
    sigma = float(np.mean(restoration.estimate_sigma(arr)))
    if sigma == 0.0:
        return arr
    return restoration.denoise_nl_means(
        arr, h=0.8 * strength * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
    )


def check_phase_method(n_phases: int, method: str, thresholds=None) -> tuple[int, np.ndarray | None]:
    """Validate the phase count, the method and manual thresholds (finite, one fewer than the phases, inside the
    [0, 1] range of the normalised image); returns ``n_phases`` and the sorted thresholds (None unless manual)."""
    check_choice(method, "method", PHASE_METHODS)
    high = MAX_PHASES if method == "manual" else MAX_OTSU_PHASES
    if isinstance(n_phases, numbers.Real) and not isinstance(n_phases, bool) and n_phases > high and method != "manual":
        raise InputError(f"n_phases={n_phases}: Otsu's exhaustive search is only computable up to {high} phases; "
                         "for more, give method='manual' with thresholds, or use the pixel classifier.")
    n_phases = check_int(n_phases, "n_phases", 2, high)
    if method != "manual":
        return n_phases, None
    if thresholds is None:
        raise InputError("method 'manual' needs thresholds (one fewer than n_phases), e.g. thresholds=[0.5].")
    try:
        th = np.sort(np.atleast_1d(np.asarray(thresholds, dtype=float)))
    except (TypeError, ValueError) as err:
        raise InputError(f"thresholds={thresholds!r} must be numbers between 0 and 1.") from err
    if th.ndim != 1 or th.size != n_phases - 1:
        raise InputError(f"{n_phases} phases need {n_phases - 1} threshold(s), got thresholds={thresholds!r}.")
    if not np.isfinite(th).all() or th.min() <= 0.0 or th.max() >= 1.0:
        raise InputError(f"thresholds={thresholds!r} must lie inside (0, 1): they apply to the image normalised to "
                         "[0, 1].")
    return n_phases, th


def phase_thresholds(image, n_phases: int = 2, method: PhaseMethod = "otsu", thresholds=None) -> np.ndarray:
    """Intensity thresholds that split ``image`` into ``n_phases`` phases (Otsu, multi-Otsu, or manual)."""
    n_phases, th = check_phase_method(n_phases, method, thresholds)
    if th is not None:
        return th
    if n_phases == 2 and method == "otsu":
        return np.array([filters.threshold_otsu(image)])
    return filters.threshold_multiotsu(image, classes=n_phases, nbins=OTSU_BINS[n_phases])


def remove_small_regions(phases: np.ndarray, min_size: int) -> np.ndarray:
    """Area opening and closing for any number of phases: connected regions of any phase smaller than
    ``min_size`` pixels are given the phase of the nearest larger region (for two phases this is
    scikit-image's ``remove_small_objects`` plus ``remove_small_holes``)."""
    if min_size <= 1:
        return phases
    small = np.zeros(phases.shape, dtype=bool)
    for p in np.unique(phases):
        comp, _ = ndimage.label(phases == p)
        sizes = np.bincount(comp.ravel())
        tiny = sizes < min_size
        tiny[0] = False
        small |= tiny[comp]
    if not small.any() or small.all():
        return phases
    _, idx = ndimage.distance_transform_edt(small, return_indices=True)
    return phases[tuple(idx)]


def segment_phases_iter(
    image,
    n_phases: int = 2,
    method: PhaseMethod = "otsu",
    thresholds=None,
    normalize_percentiles: tuple[float, float] | None = (1.0, 99.0),
    illumination_sigma: float | None = None,
    denoise_method: DenoiseMethod = "auto",
    denoise_strength: float = 1.0,
    min_size: int = 16,
) -> Generator[Progress, None, np.ndarray]:
    """Generator form of :func:`segment_phases`: yields :class:`Progress` between stages."""
    total = 5
    check_phase_method(n_phases, method, thresholds)
    check_choice(denoise_method, "denoise_method", DENOISE_METHODS)
    min_size = check_int(min_size, "min_size", 0)
    if illumination_sigma is not None:
        check_positive(illumination_sigma, "illumination_sigma")
    img = check_greyscale(image)
    yield Progress(0, total, "normalising")
    if normalize_percentiles is not None:
        img = normalize(img, *normalize_percentiles)
    else:
        img = (img - img.min()) / np.ptp(img)
    if illumination_sigma:
        yield Progress(1, total, "correcting illumination")
        img = correct_illumination(img, illumination_sigma)
    yield Progress(2, total, "denoising")
    img = denoise(img, denoise_method, denoise_strength)
    yield Progress(3, total, "thresholding")
    th = phase_thresholds(img, n_phases, method, thresholds)
    phases = np.digitize(img, th).astype(np.uint8)
    yield Progress(4, total, "removing small regions")
    phases = remove_small_regions(phases, min_size)
    yield Progress(5, total, "done")
    return phases


def segment_phases(image, n_phases: int = 2, method: PhaseMethod = "otsu", **kwargs) -> np.ndarray:
    """Segment a greyscale 2D/3D micrograph into phases 0..n_phases-1, ordered from dark to bright.

    Steps: percentile normalisation (paper 001, 2.2), optional Fourier high-pass illumination correction
    (001, 2.6.1), denoising, Otsu / multi-Otsu / manual thresholds, then area opening and closing with
    ``min_size``. Keyword arguments are those of :func:`segment_phases_iter`.
    """
    return run_to_end(segment_phases_iter(image, n_phases=n_phases, method=method, **kwargs))


def labels_to_boundaries(labels) -> np.ndarray:
    """Boolean grain-boundary map of a label map (pixels on the inner side of every label change),
    the binary data of paper 000 Fig. 2b."""
    lab = check_labels(labels, "labels")
    return segmentation.find_boundaries(lab, mode="inner")


def labels_to_distance(labels, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Label map -> boundary map -> Euclidean distance of every pixel to the nearest boundary
    (paper 000 section 3.1, Fig. 2c): the distance data the VAE is trained on. Boundary pixels are 0."""
    bnd = labels_to_boundaries(labels)
    spacing = check_spacing(spacing, bnd.ndim)
    if bnd.all():
        raise InputError("every pixel is a boundary pixel; the label map has no grain interiors.")
    if not bnd.any():
        raise InputError("labels hold a single label (no boundary anywhere), so there is no distance to measure; "
                         "pass a map with at least two grains.")
    return ndimage.distance_transform_edt(~bnd, sampling=spacing).astype(np.float32)


def _markers(distance: np.ndarray, min_distance: int, h: float, mask: np.ndarray | None) -> np.ndarray:
    """Peak markers of a distance map (paper 000 section 2.3): local maxima at least ``min_distance`` pixels
    apart that lie on an h-maximum (a maximum at least ``h`` above the saddle linking it to a higher peak,
    i.e. saddle trimming), one marker per h-maximum, the highest."""
    valid = distance > 0 if mask is None else mask & (distance > 0)
    regions = measure.label(morphology.h_maxima(distance, h) & valid) if h > 0 else measure.label(valid)
    coords = peak_local_max(distance, min_distance=max(1, int(min_distance)), exclude_border=False,
                            labels=valid.astype(np.uint8))
    coords = coords[regions[tuple(coords.T)] > 0]
    _, first = np.unique(regions[tuple(coords.T)], return_index=True)  # coords come sorted by height
    coords = coords[first]
    markers = np.zeros(distance.shape, dtype=np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    return markers


def _merge_small_grains(labels: np.ndarray, min_size: int, keep_zero: bool) -> np.ndarray:
    """Give grains smaller than ``min_size`` pixels to their nearest neighbour grain, then relabel 1..N."""
    if min_size > 1:
        sizes = np.bincount(labels.ravel())
        tiny = sizes < min_size
        tiny[0] = False
        small = tiny[labels]
        if small.any() and not small.all():
            background = labels == 0
            _, idx = ndimage.distance_transform_edt(small | background if not keep_zero else small,
                                                    return_indices=True)
            filled = labels[tuple(idx)]
            labels = np.where(small, filled, labels)
            if keep_zero:
                labels[background] = 0
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def guess_grain_source(image: np.ndarray) -> str:
    """``"binary"`` for two-valued integer or boolean input, ``"boundaries"`` otherwise (a greyscale
    micrograph). Distance maps are never guessed: pass ``source="distance"``."""
    values = np.unique(image) if image.dtype == bool or np.issubdtype(image.dtype, np.integer) else None
    if values is not None and values.size <= 2:
        return "binary"
    return "boundaries"


def boundary_strength(grey: np.ndarray, scale: float = 1.0, dark: bool = True) -> np.ndarray:
    """Valley (dark boundary) or ridge (bright boundary) strength of a 2D or 3D image: the largest Hessian
    eigenvalue across the boundary, ``sigma**2 * max(lambda_max, 0)`` of the Gaussian-smoothed image at scale
    ``sigma = scale``. It responds to thin lines in 2D and to thin sheets in 3D (where a tube filter such as
    Sato's would miss grain-boundary surfaces)."""
    img = grey if dark else -grey
    hessian = feature.hessian_matrix(img.astype(np.float32), sigma=scale, order="rc", use_gaussian_derivatives=False)
    largest = feature.hessian_matrix_eigvals(hessian)[0]
    return np.maximum(largest, 0.0) * scale**2


def boundary_polarity(image, scale: float = 1.0) -> Literal["dark", "bright"]:
    """Whether a micrograph's grain boundaries are dark or bright lines: the polarity whose line response
    (:func:`boundary_strength` of the normalised image at ``scale``) is stronger in its top 1 %. Boundaries are the
    thin, connected minority; the other polarity responds only to their flanks and to noise. Measured (99th
    percentiles, dark against bright response): the synthetic grain micrograph 0.20 / 0.12; NIST's etched steel
    (dark boundaries) 0.11 / 0.09 as it is and 0.06 / 0.12 inverted."""
    grey = normalize(image)
    dark = float(np.percentile(boundary_strength(grey, scale, dark=True), 99))
    bright = float(np.percentile(boundary_strength(grey, scale, dark=False), 99))
    return "dark" if dark >= bright else "bright"


def resolve_grain_source(image, source: GrainSource = "auto", boundary: str = "auto",
                         ridge_scale: float = 1.0) -> tuple[str, str]:
    """What ``source="auto"`` and ``boundary="auto"`` stand for on this image: ``(source, boundary)`` with both
    decided (:func:`guess_grain_source`, :func:`boundary_polarity`; ``boundary`` matters for boundaries only)."""
    check_choice(boundary, "boundary", BOUNDARIES)
    check_choice(source, "source", GRAIN_SOURCES)
    img = check_image(image)
    if source == "auto":
        source = guess_grain_source(img)
    if source == "boundaries" and boundary == "auto":
        boundary = boundary_polarity(img, ridge_scale)
    return source, boundary


def _interior_markers(interior: np.ndarray, min_size: int) -> np.ndarray:
    """Connected grain interiors of at least ``min_size`` pixels, labelled 1..N (markers for closed boundaries)."""
    comp = measure.label(interior)
    sizes = np.bincount(comp.ravel())
    small = sizes < max(int(min_size), 1)
    small[0] = True
    comp[small[comp]] = 0
    return segmentation.relabel_sequential(comp)[0].astype(np.int32)


def segment_grains_iter(
    image,
    source: GrainSource = "auto",
    boundary: Literal["auto", "dark", "bright"] = "auto",
    ridge_scale: float = 1.0,
    min_distance: int = 3,
    h: float | None = None,
    min_size: int = 5,
    denoise_method: DenoiseMethod = "auto",
    spacing: Sequence[float] | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Generator form of :func:`segment_grains`: yields :class:`Progress` between stages."""
    ridge_scale = check_positive(ridge_scale, "ridge_scale")
    min_distance = max(1, check_int(min_distance, "min_distance", 0))  # 0 and 1 both allow adjacent peaks
    min_size = check_int(min_size, "min_size", 0)
    if h is not None:
        h = check_float(h, "h", low=0.0)
    check_choice(denoise_method, "denoise_method", DENOISE_METHODS)
    img = check_image(image)
    spacing = check_spacing(spacing, img.ndim)
    source, boundary = resolve_grain_source(img, source, boundary, ridge_scale)
    if source != "binary":  # checked once, before the size checks; later steps get the float64 array as it is
        img = check_greyscale(img, "distance map" if source == "distance" else "image")
    min_distance = min(min_distance, max(img.shape))  # a larger peak distance finds the same single peak
    check_int(min_size, "min_size", 0, img.size)
    total = 4
    yield Progress(0, total, f"preparing ({source}, {boundary} boundaries)" if source == "boundaries"
                   else f"preparing ({source})")
    keep_zero = False
    if source == "binary":
        fg = check_labels(image, "image") > 0  # the input itself: an RGB image is refused, not converted
        if fg.all() or not fg.any():
            raise InputError("the binary image holds one value only; grains need foreground and background.")
        distance = ndimage.distance_transform_edt(fg, sampling=spacing)
        mask, landscape, keep_zero = fg, -distance, True
    elif source == "distance":
        distance = img
        if distance.min() < 0:
            raise InputError(f"the distance map holds negative values (min {distance.min():g}); distances to the "
                             "nearest boundary are 0 or positive. Pass source='boundaries' for a micrograph.")
        mask, landscape = None, -distance
    else:  # boundaries
        grey = denoise(normalize(img), denoise_method)
        ridges = boundary_strength(grey, ridge_scale, dark=(boundary == "dark"))
        interior = ridges < filters.threshold_triangle(ridges)
        distance = ndimage.distance_transform_edt(interior, sampling=spacing)
        mask = None
        landscape = 0.0 * ridges / max(float(ridges.max()), 1e-12) - distance / max(float(distance.max()), 1e-12)
    yield Progress(1, total, "finding markers")
    if h is None:
        h = 0.0 if source == "boundaries" else 1.0
    if source == "boundaries" and h == 0:
        markers = _interior_markers(interior, min_size)
    else:
        markers = _markers(distance, min_distance, h, mask)
    if markers.max() == 0:
        raise InputError("no grain markers were found; lower min_distance, h or min_size, or check the source type.")
    yield Progress(2, total, "watershed")
    labels = segmentation.watershed(landscape, markers, mask=mask)
    yield Progress(3, total, "merging small grains")
    labels = _merge_small_grains(labels, min_size, keep_zero)
    yield Progress(4, total, "done")
    return labels


def segment_grains(image, source: GrainSource = "auto", **kwargs) -> np.ndarray:
    """Segment grains by marker-based watershed (paper 000 section 2.3), 2D or 3D; returns labels 1..N.

    ``source`` says what ``image`` is:

    * ``"boundaries"`` - a greyscale micrograph whose grain boundaries are thin ``boundary="dark"`` lines
      (etched optical micrographs) or ``"bright"`` ones; ``"auto"`` (the default) decides by
      :func:`boundary_polarity`. After normalisation and denoising, :func:`boundary_strength` at
      scale ``ridge_scale`` (about half the boundary width, pixels) enhances the boundary lines; the
      triangle threshold of its response separates boundaries from grain interiors; the connected interiors of
      at least ``min_size`` pixels are the markers (with ``h > 0``, distance-map h-maxima instead, which also
      split grains whose boundary has gaps); the watershed of the ridge response tessellates the image;
    * ``"binary"`` - a two-valued image of objects (1) on a background or boundary network (0); objects that
      touch are split along the necks of their distance map; background stays 0;
    * ``"distance"`` - a distance-to-boundary map, e.g. a VAE's decoded distance data (paper 000, 3.3);
    * ``"auto"`` - binary for two-valued integer input, boundaries otherwise.

    Distance-map markers (binary, distance, and boundaries with ``h > 0``) are the h-maxima of the distance
    map (``h`` in pixels trims saddle points; default 1) at least ``min_distance`` apart. Grains smaller than
    ``min_size`` pixels are merged into their neighbours. Keyword arguments are those of
    :func:`segment_grains_iter`.
    """
    return run_to_end(segment_grains_iter(image, source=source, **kwargs))


def distance_to_labels(distance, min_distance: int = 3, h: float = 1.0, min_size: int = 10) -> np.ndarray:
    """Inverse of :func:`labels_to_distance`: watershed of a distance map back into grain labels 1..N
    (paper 000 section 3.3)."""
    return segment_grains(distance, source="distance", min_distance=min_distance, h=h, min_size=min_size)
