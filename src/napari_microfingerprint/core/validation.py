"""Checks on user input that fail with a message naming the problem and the fix."""
from __future__ import annotations

import numpy as np


class InputError(ValueError):
    """Bad user input; the message says what is wrong and how to fix it."""


def as_spatial_array(data, what: str = "image") -> np.ndarray:
    """Return ``data`` as a 2D or 3D numpy array, or raise :class:`InputError`.

    Rejects empty arrays, 1D data and stacks of more than three dimensions.
    """
    arr = np.asarray(data)
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


def check_greyscale(image, what: str = "image") -> np.ndarray:
    """Validate a greyscale micrograph: 2D/3D, finite, not constant. Returns it as float64."""
    arr = as_spatial_array(image, what)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"The {what} has dtype {arr.dtype}; a numeric greyscale array is needed.")
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


def check_labels(labels, what: str = "label map") -> np.ndarray:
    """Validate an integer label map (2D/3D, integer or boolean, non-negative)."""
    arr = as_spatial_array(labels, what)
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
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"The {what} has dtype {arr.dtype}; an integer label map is needed.")
    if arr.min() < 0:
        raise InputError(f"The {what} has negative labels (min {arr.min()}); labels must be 0 or positive.")
    return arr


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
