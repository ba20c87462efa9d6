"""Training data for the VAEs: folders of image files, per-image greyscale white balance (paper 001 section 2.2),
patches at random positions with arbitrary rotations cropped so that no padding enters (paper 000 Fig. 2d-e) and
reflections (paper 001 section 2.1), and a 0.7 / 0.15 / 0.15 split."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..validation import InputError, to_greyscale

#: Image files a training folder may hold.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
#: Percentiles of the per-image white balance: intensities outside the central 90 % are clipped (paper 001 2.2).
WHITE_BALANCE = (5.0, 95.0)

SPLIT = (0.7, 0.15, 0.15)


def load_image_folder(folder: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """The 2D images of every image file directly in ``folder`` (sorted by name) and their file names. RGB(A)
    files become greyscale; 3D files and unreadable files raise :class:`InputError` naming the file."""
    from skimage.io import imread

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; choose a folder of image files.")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"{root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    images = []
    for path in files:
        try:
            arr = np.load(path, allow_pickle=False) if path.suffix == ".npy" else imread(path)
        except Exception as err:  # imageio, tifffile and PIL raise many error types for damaged files
            raise InputError(f"{path.name} could not be read ({type(err).__name__}: {err}).") from err
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = to_greyscale(arr, rgb=True)
        if arr.ndim != 2:
            raise InputError(f"{path.name} has shape {arr.shape}; training images must be 2D (or RGB).")
        images.append(arr)
    return images, [p.name for p in files]


def white_balance(image: np.ndarray, percentiles: tuple[float, float] = WHITE_BALANCE) -> np.ndarray:
    """Per-image greyscale normalisation of paper 001 section 2.2: clip intensities outside the given
    percentiles and remap to [0, 1]. An image whose percentiles coincide (a nearly uniform or two-valued image
    with a rare phase) is remapped between its minimum and maximum instead; a constant image becomes zeros."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, percentiles)
    if hi - lo <= 1e-12:
        lo, hi = float(img.min()), float(img.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0)


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


def sliding_windows(image: np.ndarray, patch_size: int, stride: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The ``patch_size`` windows of a 2D array at ``stride``, row by row, ``(n, L, L)``, with their top-left
    corners: the windows :func:`~.model_io.encode` fingerprints."""
    img = np.asarray(image)
    corners = [(y, x) for y in range(0, img.shape[0] - patch_size + 1, stride)
               for x in range(0, img.shape[1] - patch_size + 1, stride)]
    if not corners:
        raise InputError(f"the image {img.shape} is smaller than the patch size {patch_size}; tile or crop it.")
    return np.stack([img[y:y + patch_size, x:x + patch_size] for y, x in corners]), corners


def split_indices(n: int, rng: np.random.Generator, fractions: tuple[float, float, float] = SPLIT):
    """Shuffled index arrays for training, validation and test (papers 000 and 001: 0.7 / 0.15 / 0.15)."""
    order = rng.permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
