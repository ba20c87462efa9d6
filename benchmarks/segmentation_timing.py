"""Time phase segmentation, grain segmentation and grain statistics on a 1024^2 image and a 256^3 volume.

The inputs are synthetic micrographs (periodic Voronoi grains rendered with dark boundaries, uneven light
and noise, see ``make_micrograph``); the times do not depend on how realistic the grains are. Prints a table
and writes ``benchmarks/results/segmentation_timing.json``.

    python benchmarks/segmentation_timing.py [--sizes 1024x1024 256x256x256]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from _report import report

from napari_microfingerprint import grain_statistics, make_micrograph, segment_grains, segment_phases
from napari_microfingerprint.core.synthetic import voronoi_labels


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start


def run(shape: tuple[int, ...]) -> dict:
    n_grains = int(np.prod(shape) / (400 if len(shape) == 2 else 4000))
    truth = voronoi_labels(shape, n_grains, seed=0)
    image = make_micrograph(truth, seed=0)
    phases, t_phases = timed(segment_phases, image)
    grains, t_grains = timed(segment_grains, image, source="boundaries")
    (_, summary), t_stats = timed(grain_statistics, grains)
    return {
        "shape": "x".join(map(str, shape)),
        "true_grains": n_grains,
        "found_grains": summary["n_grains"],
        "phases_s": round(t_phases, 2),
        "grains_s": round(t_grains, 2),
        "statistics_s": round(t_stats, 2),
        "total_s": round(t_phases + t_grains + t_stats, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1024x1024", "256x256x256"])
    args = parser.parse_args()
    rows = [run(tuple(int(s) for s in size.split("x"))) for size in args.sizes]
    report(rows, "segmentation_timing")


if __name__ == "__main__":
    main()
