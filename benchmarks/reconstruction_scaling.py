"""Time and memory of 2D -> 3D reconstructions of growing size, on the CPU or a GPU.

Target: a 64 x 64 crop of the bundled real ceramics micrograph (Li et al. 2018; ``load_example("ceramics")``),
characterised with volume fractions, S2 (``limit_to=8``) and the variation (weight 100); 500 loss evaluations,
multigrid, float32. Prints a table and writes ``benchmarks/results/reconstruction_scaling_<device>.json``.

    python benchmarks/reconstruction_scaling.py --sizes 64 128 [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from _report import report

from napari_microfingerprint import characterize, load_example, reconstruct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--descriptors", default="volume_fractions,s2,variation")
    args = parser.parse_args()
    target = characterize(load_example("ceramics")[:64, :64], descriptors=args.descriptors.split(","), limit_to=8)
    rows = []
    for n in args.sizes:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        res = reconstruct(target, (n, n, n), max_iter=args.max_iter, device=args.device)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        row = {"size": f"{n}^3", "device": res.settings["device_used"], "seconds": round(seconds, 2),
               "evaluations": res.evaluations, "undecided_percent": round(100 * res.undecided, 3),
               "s2_error": round(float(np.mean([e["s2"] for e in res.errors.values()])), 4),
               "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}
        if torch.cuda.is_available():
            row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
            row["gpu"] = torch.cuda.get_device_name()
        rows.append(row)
        print(json.dumps(row), flush=True)
    report(rows, f"reconstruction_scaling_{args.device}")


if __name__ == "__main__":
    main()
