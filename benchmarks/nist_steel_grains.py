"""Grain count and size on the NIST optical steel micrograph against its manual ground truth.

Data (not shipped; see ``../shared/data/MANIFEST.md``, section 7): ``grain_structures_steel.tif`` (600 x 800,
0.2252 um/px) and ``grains_steel_labels_derived.npy`` (226 grains, 0 = manually traced boundaries), from NIST's
Grain Size Analysis Tools (usnistgov/grain-size-analysis-tools).

Our segmentation tessellates the image (boundary pixels belong to grains), the ground truth leaves its traced
boundaries at 0; sizes are therefore compared both as mean area and as mean line intercept (which skips label 0
and does not depend on boundary width). "matched" is the fraction of true grains that one segmented grain
overlaps with IoU > 0.5.

    python benchmarks/nist_steel_grains.py [--data ../shared/data/nist_gsat]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.metrics import contingency_table
from skimage.segmentation import expand_labels

from napari_microfingerprint import grain_statistics, segment_grains

UM_PER_PX = 0.2252
SETTINGS = {
    "defaults": {},
    "boundary half-width 2 px, min grain 20 px": {"ridge_scale": 2.0, "min_size": 20},
    "boundary half-width 2 px, min grain 50 px": {"ridge_scale": 2.0, "min_size": 50},
}


def matched_fraction(truth: np.ndarray, pred: np.ndarray) -> float:
    ct = contingency_table(truth, pred).tocoo()
    ta, pa = np.bincount(truth.ravel()), np.bincount(pred.ravel())
    iou = ct.data / (ta[ct.row] + pa[ct.col] - ct.data)
    best = np.zeros(ta.size)
    np.maximum.at(best, ct.row, iou)
    present = ta > 0
    present[0] = False
    return float((best[present] > 0.5).mean())


def describe(labels: np.ndarray) -> dict:
    _, s = grain_statistics(labels, spacing=(UM_PER_PX, UM_PER_PX), max_gap=3, n_lines=2000)
    filled = expand_labels(labels, distance=10)
    _, f = grain_statistics(filled, spacing=(UM_PER_PX, UM_PER_PX), n_lines=10)
    return {"N": s["n_grains"], "mean_area_um2": f["mean_area"], "mean_radius_um": f["mean_equivalent_radius"],
            "intercept_um": s["mean_intercept_length"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nist_gsat"))
    args = parser.parse_args()
    data = Path(args.data)
    image = tifffile.imread(data / "grain_structures_steel.tif").astype(float)
    truth = np.load(data / "grains_steel_labels_derived.npy").astype(np.int32)
    rows = [{"run": "ground truth (manual tracing)", **describe(truth), "matched": 1.0, "seconds": 0.0}]
    for name, kwargs in SETTINGS.items():
        start = time.perf_counter()
        labels = segment_grains(image, source="boundaries", **kwargs)
        seconds = time.perf_counter() - start
        rows.append({"run": name, **describe(labels), "matched": matched_fraction(truth, labels),
                     "seconds": seconds})
    print("| run | N | mean area (um^2) | mean eq. radius (um) | mean intercept (um) | matched IoU>0.5 | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['N']} | {r['mean_area_um2']:.1f} | {r['mean_radius_um']:.2f} | "
              f"{r['intercept_um']:.2f} | {r['matched']:.3f} | {r['seconds']:.2f} |")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "nist_steel_grains.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
