"""The input contract: checks on user input at every public entry point (package root, command line, widgets).

Each check fails with :class:`InputError` and a message that names the argument, the value, what is allowed and
the fix. They run before any heavy work; the memory check compares what a call will allocate with what the
machine has.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Collection, Sequence

import numpy as np

#: A call may take at most this fraction of the free memory before it is refused.
MEMORY_FRACTION = 0.5


class InputError(ValueError):
    """Bad user input; the message says what is wrong and how to fix it."""


def _as_array(data, what: str) -> np.ndarray:
    """``data`` as a numeric numpy array (lists, dask arrays and object arrays of numbers are converted), or
    :class:`InputError` for None, ragged input, text and complex values."""
    if data is None:
        raise InputError(f"The {what} is None; pass a 2D (Y, X) or 3D (Z, Y, X) array.")
    try:
        arr = np.asarray(data)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"The {what} cannot be read as a numeric array ({err}); pass a rectangular array of "
                         "numbers.") from err
    if arr.dtype.kind in "USV":
        raise InputError(f"The {what} holds text (dtype {arr.dtype}); pass an array of numbers.")
    if arr.dtype.kind == "c":
        raise InputError(f"The {what} is complex (dtype {arr.dtype}); pass real values, e.g. numpy.abs(data) "
                         "or data.real.")
    return arr


def looks_rgb(arr: np.ndarray) -> bool:
    """True for a ``(Y, X, 3)`` or ``(Y, X, 4)`` array: a colour image, not a volume with 3 or 4 columns."""
    return arr.ndim == 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) >= 8


def _to_unit(arr: np.ndarray) -> np.ndarray:
    """An RGB(A) array as floats in [0, 1]: integer images are divided by their dtype's maximum."""
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / np.iinfo(arr.dtype).max
    return arr.astype(np.float64)


def as_spatial_array(data, what: str = "image") -> np.ndarray:
    """Return ``data`` as a 2D or 3D numeric numpy array, or raise :class:`InputError`.

    Rejects None, text, complex values, empty arrays, 1D data and stacks of more than three dimensions.
    """
    arr = _as_array(data, what)
    if arr.size == 0:
        raise InputError(f"The {what} is empty (shape {arr.shape}); choose a layer that holds data.")
    if arr.ndim < 2:
        raise InputError(f"The {what} has {arr.ndim} dimension(s); a 2D (Y, X) or 3D (Z, Y, X) array is needed.")
    if arr.ndim > 3:
        raise InputError(
            f"The {what} has {arr.ndim} dimensions {arr.shape}; only 2D (Y, X) and 3D (Z, Y, X) are supported. "
            "Select one time point or channel first, e.g. data[0]."
        )
    return arr


def check_image(image, what: str = "image") -> np.ndarray:
    """A 2D/3D numeric array whose kind (grey, labels, distance) is decided later; RGB(A) ``(Y, X, 3|4)`` input
    is converted to grey with a warning (see :func:`check_greyscale`)."""
    arr = _as_array(image, what)
    if looks_rgb(arr):
        return check_greyscale(arr, what)
    return as_spatial_array(arr, what)


def check_greyscale(image, what: str = "image") -> np.ndarray:
    """Validate a greyscale micrograph: 2D/3D, finite, not constant. Returns it as float64.

    An RGB(A) image ``(Y, X, 3|4)`` is converted to grey (scikit-image's luminance weights) with a warning."""
    arr = _as_array(image, what)
    if looks_rgb(arr):
        warnings.warn(f"The {what} looks like an RGB(A) image {arr.shape}; it was converted to greyscale.",
                      UserWarning, stacklevel=2)
        arr = to_greyscale(_to_unit(arr), rgb=True)
    arr = as_spatial_array(arr, what)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(
            f"The {what} contains {int(bad.sum())} NaN or infinite value(s); replace them first "
            "(for example numpy.nan_to_num) or crop them away."
        )
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"The {what} is constant (every value is {lo:g}); there is nothing to segment.")
    return arr


def check_labels(labels, what: str = "label map", relabel: bool = False) -> np.ndarray:
    """Validate an integer label map (2D/3D, integer or boolean, non-negative); RGB images are refused.

    With ``relabel``, sparse huge label values are renumbered 1..N in order (:func:`compact_labels`), for
    functions whose result does not name the labels."""
    arr = _as_array(labels, what)
    if arr.dtype == np.uint8 and looks_rgb(arr):  # 8-bit colour; wider integer data with 3 or 4 columns are labels
        raise InputError(
            f"The {what} looks like an RGB(A) image {arr.shape}; labels need one whole number per pixel. Segment the "
            "image first (segment_phases / segment_grains), or pass one channel, e.g. data[..., 0]."
        )
    arr = as_spatial_array(arr, what)
    if arr.dtype == bool:
        return arr.astype(np.int32)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"The {what} contains NaN or infinite values; labels must be whole numbers.")
        if not np.array_equal(arr, np.round(arr)):
            raise InputError(
                f"The {what} holds fractional values (dtype {arr.dtype}); labels must be integers. "
                "Segment the image first (Segmentation > phases or grains)."
            )
        if np.abs(arr).max() >= 2**62:
            raise InputError(f"The {what} holds values up to {arr.max():g}; labels must be below 2**62.")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"The {what} has dtype {arr.dtype}; an integer label map is needed.")
    if arr.min() < 0:
        raise InputError(f"The {what} has negative labels (min {arr.min()}); labels must be 0 or positive.")
    if arr.dtype == np.uint64:
        if arr.max() >= 2**63:
            raise InputError(f"The {what} holds values up to {arr.max()}; labels must be below 2**63.")
        arr = arr.astype(np.int64)
    if relabel:
        arr, _ = compact_labels(arr)
    return arr


#: Label values up to this (or up to the pixel count, if larger) are kept as they are; per-label tables allocated
#: by value then take at most about 0.4 GB.
MAX_DENSE_LABEL = 2**22


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Sparse huge label values (ids such as 2**40, which would make per-label tables allocate by the largest
    value) renumbered 1..N in order, with the map back to the original ids (``original = inverse[new]``);
    ``(labels, None)`` when the values are small enough to keep (see :data:`MAX_DENSE_LABEL`)."""
    if int(labels.max()) <= max(labels.size, MAX_DENSE_LABEL):
        return labels, None
    from skimage.segmentation import relabel_sequential

    compact, _, inverse = relabel_sequential(labels)
    return compact, np.asarray(inverse)


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (whole-number floats and 0-d arrays are accepted) inside ``[low, high]``, or
    :class:`InputError`."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    ok = isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and math.isfinite(value)
                                                 and float(value).is_integer())
    if isinstance(value, bool) or not ok:
        raise InputError(f"{name}={value!r} must be a whole number{_range_text(low, high)}.")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        raise InputError(f"{name}={out} is out of range; it must be a whole number{_range_text(low, high)}.")
    return out


def check_float(value, name: str, low: float | None = None, high: float | None = None,
                open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite float inside ``[low, high]`` (ends excluded with ``open_low`` / ``open_high``)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{name}={value!r} must be a finite number{_range_text(low, high, open_low, open_high)}.")
    out = float(value)
    below = low is not None and (out <= low if open_low else out < low)
    above = high is not None and (out >= high if open_high else out > high)
    if below or above:
        raise InputError(f"{name}={out:g} is out of range; it must be a number"
                         f"{_range_text(low, high, open_low, open_high)}.")
    return out


def check_positive(value, name: str) -> float:
    """``value`` as a finite float > 0."""
    return check_float(value, name, low=0.0, open_low=True)


def _range_text(low, high, open_low: bool = False, open_high: bool = False) -> str:
    def show(v) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {show(low)}")
    if high is not None:
        parts.append(f"{'<' if open_high else '<='} {show(high)}")
    return (" " + " and ".join(parts)) if parts else ""


def check_choice(value, name: str, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``, else :class:`InputError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name}={value!r} is unknown; use one of {', '.join(map(repr, choices))}.")
    return value


def check_shape(shape, name: str = "shape", ndims: Collection[int] = (2, 3), allow_int: bool = False
                ) -> tuple[int, ...]:
    """``shape`` as a tuple of positive whole numbers with a length in ``ndims``; with ``allow_int`` a single
    number ``n`` means ``(n, n)``. A shape of ``(16.7, 16, 16)`` is refused, not truncated."""
    example = ", ".join(["64"] * max(ndims))
    if allow_int and isinstance(shape, numbers.Real) and not isinstance(shape, bool):
        shape = (shape, shape)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence | np.ndarray):
        raise InputError(f"{name}={shape!r} must be a tuple of {' or '.join(map(str, ndims))} whole numbers, "
                         f"e.g. ({example}).")
    dims = tuple(check_int(v, f"{name} entry", low=1) for v in shape)
    if len(dims) not in ndims:
        raise InputError(f"{name}={dims} has {len(dims)} axes; it must have {' or '.join(map(str, ndims))}, "
                         f"e.g. ({example}).")
    return dims


def check_spacing(spacing, ndim: int, name: str = "spacing") -> tuple[float, ...] | None:
    """``None``, or the voxel size per axis as ``ndim`` positive finite numbers (one number is used for all)."""
    if spacing is None:
        return None
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        spacing = (spacing,) * ndim
    if isinstance(spacing, (str, bytes)) or not isinstance(spacing, Sequence | np.ndarray):
        raise InputError(f"{name}={spacing!r} must be {ndim} positive numbers (the pixel size per axis).")
    if len(spacing) != ndim:
        raise InputError(f"{name}={tuple(spacing)} has {len(spacing)} values for {ndim}D data; give {ndim} positive "
                         "numbers, one per axis.")
    return tuple(check_positive(v, f"{name} entry") for v in spacing)


def spacing_array(spacing, ndim: int) -> np.ndarray:
    """:func:`check_spacing` as a float array, ones (pixel units) when ``spacing`` is None."""
    checked = check_spacing(spacing, ndim)
    return np.ones(ndim) if checked is None else np.asarray(checked)


def check_fingerprints(z, name: str = "fingerprints", width: int | None = None, min_rows: int = 1) -> np.ndarray:
    """Fingerprints as a finite float64 ``(N, D)`` array; one fingerprint ``(D,)`` becomes ``(1, D)``. ``width``
    is the model's latent dimension when there is one."""
    arr = _as_array(z, name)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise InputError(f"{name} has shape {arr.shape}; it must be (N, D) with N >= {min_rows} rows, one "
                         "fingerprint per row.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values; drop those rows first.")
    if width is not None and arr.shape[1] != width:
        raise InputError(f"{name} has {arr.shape[1]} columns; the model's latent dimension is {width}. Encode with "
                         "the same model.")
    return arr


def check_fits(nbytes: float, what: str, fix: str = "crop or downsample the data") -> None:
    """:class:`InputError` when ``nbytes`` exceed :data:`MEMORY_FRACTION` of the free CPU memory."""
    import torch

    from . import memory

    available = memory.available_bytes(torch.device("cpu"))
    if nbytes > available * MEMORY_FRACTION:
        raise InputError(f"{what} would need {memory.format_bytes(nbytes)} of memory, more than half of the "
                         f"{memory.format_bytes(available)} free; {fix}.")


def to_greyscale(data, rgb: bool) -> np.ndarray:
    """Return a greyscale version of ``data``: RGB(A) images (``rgb=True``, last axis of 3 or 4 channels) are
    converted with scikit-image's luminance weights; anything else is returned unchanged."""
    arr = np.asarray(data)
    if not rgb:
        return arr
    from skimage.color import rgb2gray, rgba2rgb

    if arr.shape[-1] == 4:
        arr = rgba2rgb(arr)
    return rgb2gray(arr)
