"""Several seeds in one optimisation against one at a time (issue 10): ``reconstruct_batch_iter`` against
``reconstruct`` per seed, same target (ceramics crop), same budget (500 evaluations), on one device.

    python benchmarks/batched_seeds.py [--device cpu] [--cases 32x4 64x4 128x2]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from napari_microfingerprint import characterize, load_example, reconstruct, reconstruct_batch_iter
from napari_microfingerprint.core.progress import run_to_end


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=["32x4", "64x4"])
    args = parser.parse_args()
    target = characterize(load_example("ceramics")[:64, :64], limit_to=8, levels=2)
    reconstruct(target, (24, 24, 24), max_iter=20, device=args.device)  # warm-up
    print("load before:", os.getloadavg(), "device:", args.device)
    print("| size | seeds | one at a time s | batched s | speed-up | volumes per hour (batched) | "
          "S2 error one at a time | S2 error batched |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        n, b = (int(v) for v in case.split("x"))
        seeds = list(range(b))
        start = time.perf_counter()
        singles = [reconstruct(target, (n,) * 3, seed=s, device=args.device) for s in seeds]
        _sync(args.device)
        t_single = time.perf_counter() - start
        start = time.perf_counter()
        batch = run_to_end(reconstruct_batch_iter(target, (n,) * 3, seeds, device=args.device))
        _sync(args.device)
        t_batch = time.perf_counter() - start

        def span(results) -> str:
            errs = [max(r.errors[a]["s2"] for a in "zyx") for r in results]
            return f"{min(errs):.4f}-{max(errs):.4f}"

        print(f"| {n}^3 | {b} | {t_single:.1f} | {t_batch:.1f} | {t_single / t_batch:.2f}x | "
              f"{3600 * b / t_batch:.0f} | {span(singles)} | {span(batch)} |", flush=True)
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
