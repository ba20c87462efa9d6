"""Scribble pixel classifier (issue 12): mean IoU against Otsu and time to train and predict, on generated
images whose two phases differ only by texture (same mean and spread of grey values), with strokes covering under
1 % of the pixels (`tests/core/test_pixel_classifier.py` makes them), and on a real micrograph with a reference:
NIST's etched steel (`../shared/data/nist_gsat`), boundary against grain, strokes taken from the reference
(12-px runs inside grains, 13-px pieces of the boundary skeleton), then after rounds of simulated corrections
(strokes on the largest wrongly predicted regions, as a user corrects a prediction).

    python benchmarks/pixel_classifier.py [--size 1024] [--volume 256]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from napari_microfingerprint import fit_pixel_classifier, segment_phases

STEEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist_gsat"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
from test_pixel_classifier import _iou, _strokes, _textured  # noqa: E402


def train_and_predict(image: np.ndarray, scribbles: np.ndarray, **kwargs) -> tuple[np.ndarray, float, float]:
    """The prediction of the whole image and the seconds to train and to predict."""
    start = time.perf_counter()
    clf = fit_pixel_classifier(image, scribbles, **kwargs)
    train = time.perf_counter() - start
    start = time.perf_counter()
    labels = clf.predict(image)
    return labels, train, time.perf_counter() - start


def steel_strokes(boundary: np.ndarray, seed: int = 0) -> np.ndarray:
    """25 runs of 12 px inside grains (label 1) and 20 pieces of the boundary skeleton (label 2)."""
    rng = np.random.default_rng(seed)
    strokes = np.zeros(boundary.shape, dtype=np.uint8)
    inside = np.argwhere(ndi.binary_erosion(~boundary, iterations=3))
    for y, x in inside[rng.choice(len(inside), 25, replace=False)]:
        strokes[y, x:x + 12] = 1
    skeleton = skeletonize(boundary)
    pieces, _ = ndi.label(skeleton, np.ones((3, 3)))
    points = np.argwhere(skeleton)
    for y, x in points[rng.choice(len(points), 20, replace=False)]:
        win = (slice(max(0, y - 6), y + 7), slice(max(0, x - 6), x + 7))
        strokes[win][skeleton[win] & (pieces[win] == pieces[y, x])] = 2
    return strokes


def steel_rows() -> list[str]:
    image = tifffile.imread(STEEL / "grain_structures_steel.tif").astype(float)
    boundary = tifffile.imread(STEEL / "grains_steel_highlighted_segmented.tif") > 0
    truth = boundary.astype(np.uint8)
    strokes = steel_strokes(boundary)
    otsu = 1 - segment_phases(image, n_phases=2)  # boundaries are the dark class
    rows = []
    for sigma_max in (2.0, 4.0, 8.0, 16.0):
        labels, train, predict = train_and_predict(image, strokes, sigma_max=sigma_max)
        rows.append(f"| NIST steel {image.shape[0]}x{image.shape[1]}, boundary / grain, sigma_max {sigma_max:g} | "
                    f"{(strokes > 0).mean():.3%} | {_iou(otsu, truth):.3f} | {_iou(labels, truth):.3f} | "
                    f"{train:.1f} | {predict:.1f} |")
    return rows


def correction_strokes(strokes: np.ndarray, pred: np.ndarray, truth: np.ndarray, n: int = 20) -> np.ndarray:
    """A simulated round of corrections, as a user works in ilastik or napari (paint, predict, correct, repeat):
    one stroke of up to 9 px along x through the middle of each of the ``n`` largest wrongly predicted regions,
    labelled with the reference's phase (grain 1, boundary 2)."""
    out = strokes.copy()
    wrong, _ = ndi.label(pred != truth)
    sizes = np.bincount(wrong.ravel())[1:]
    for region in np.argsort(sizes)[::-1][:n] + 1:
        points = np.argwhere(wrong == region)
        y, x = points[len(points) // 2]
        xs = np.arange(max(0, x - 4), min(truth.shape[1], x + 5))
        xs = xs[wrong[y, xs] == region]
        out[y, xs] = truth[y, xs] + 1
    return out


def steel_correction_rows(rounds: int = 8) -> list[str]:
    """The steel classifier (sigma_max 4) after 0 ... ``rounds`` rounds of :func:`correction_strokes`."""
    image = tifffile.imread(STEEL / "grain_structures_steel.tif").astype(float)
    boundary = tifffile.imread(STEEL / "grains_steel_highlighted_segmented.tif") > 0
    truth = boundary.astype(np.uint8)
    otsu = _iou(1 - segment_phases(image, n_phases=2), truth)
    strokes = steel_strokes(boundary)
    rows = []
    for k in range(rounds + 1):
        labels, train, predict = train_and_predict(image, strokes, sigma_max=4.0)
        rows.append(f"| NIST steel, after {k} correction rounds | {(strokes > 0).mean():.3%} | {otsu:.3f} | "
                    f"{_iou(labels, truth):.3f} | {train:.1f} | {predict:.1f} |")
        strokes = correction_strokes(strokes, labels, truth)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--volume", type=int, default=256)
    args = parser.parse_args()
    print("load before:", os.getloadavg())
    print("| image | painted | Otsu IoU | classifier IoU | train s | predict s |")
    print("|---|---|---|---|---|---|")
    image, truth = _textured((args.size, args.size), correlation=args.size / 16)
    scribbles = _strokes(truth, per_phase=12, length=15)
    otsu = segment_phases(image, n_phases=2)
    labels, train, predict = train_and_predict(image, scribbles)
    print(f"| {args.size}^2 | {(scribbles > 0).mean():.3%} | {max(_iou(otsu, truth), _iou(1 - otsu, truth)):.3f} | "
          f"{_iou(labels, truth):.3f} | {train:.1f} | {predict:.1f} |", flush=True)
    n = args.volume
    vol, vtruth = _textured((n, n, n), correlation=n / 16, grain=1.5)
    vscrib = np.zeros_like(vtruth)
    for z in range(n // 8, n, n // 4):
        vscrib[z] = _strokes(vtruth[z], per_phase=6, length=15, seed=z)
    vlabels, train, predict = train_and_predict(vol, vscrib, sigma_max=4)
    print(f"| {n}^3 (strokes on 4 slices, sigma_max 4) | {(vscrib > 0).mean():.4%} | - | {_iou(vlabels, vtruth):.3f} | "
          f"{train:.1f} | {predict:.1f} |", flush=True)
    if STEEL.is_dir():
        print("\n".join(steel_rows()), flush=True)
        print("\n".join(steel_correction_rows()), flush=True)
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
