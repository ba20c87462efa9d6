"""Training patches for the VAEs: random positions, arbitrary rotations cropped so that no padding enters
(paper 000 Fig. 2d-e), reflections (paper 001 section 2.1), and a 0.7 / 0.15 / 0.15 split."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..validation import InputError

SPLIT = (0.7, 0.15, 0.15)


def bounding_side(patch_size: int, angle_deg: float) -> int:
    """Side of the axis-aligned box that holds a ``patch_size`` square rotated by ``angle_deg``:
    ``L_b = L (|cos a| + |sin a|)`` (paper 000 Fig. 2e), rounded up, plus a pixel for interpolation."""
    a = math.radians(angle_deg)
    return int(math.ceil(patch_size * (abs(math.cos(a)) + abs(math.sin(a))))) + 2


def sample_patches(image: np.ndarray, n: int, patch_size: int, rng: np.random.Generator, rotate: bool = True,
                   reflect: bool = True, order: int = 1) -> np.ndarray:
    """``n`` square patches ``(n, L, L)`` from a 2D array at random positions, each rotated by a random angle
    (``rotate``) and mirrored at random (``reflect``). The bounding box of the rotated square is cut from the
    image first and the patch from its centre, so every pixel comes from the image (no padding). ``order`` is
    the interpolation order (0 for labels)."""
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"patches are cut from 2D images; got shape {img.shape}.")
    if min(img.shape) < patch_size:
        raise InputError(
            f"the image ({img.shape[0]} x {img.shape[1]}) is smaller than the patch size {patch_size}; "
            "choose a smaller patch size or a larger image."
        )
    out = np.empty((n, patch_size, patch_size), dtype=np.float32)
    for k in range(n):
        angle = float(rng.uniform(0.0, 360.0)) if rotate else 0.0
        side = bounding_side(patch_size, angle) if rotate else patch_size
        if side > min(img.shape):  # the image is too small for this angle: fall back to a right angle
            angle = float(90 * rng.integers(4))
            side = patch_size
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        box = img[y:y + side, x:x + side].astype(np.float32)
        if angle:
            box = ndimage.rotate(box, angle, reshape=False, order=order, mode="constant", cval=np.nan)
        c = (side - patch_size) // 2
        patch = box[c:c + patch_size, c:c + patch_size]
        if reflect and rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[k] = patch
    return out


def split_indices(n: int, rng: np.random.Generator, fractions: tuple[float, float, float] = SPLIT):
    """Shuffled index arrays for training, validation and test (papers 000 and 001: 0.7 / 0.15 / 0.15)."""
    order = rng.permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
