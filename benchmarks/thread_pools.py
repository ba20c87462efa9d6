"""Two OpenMP pools in one process: torch work in a worker thread (as napari's widgets run it) while the main
thread has, or has not, its own pool (it gets one the first time it runs a parallel torch operation: napari's
console, a model loaded there, a test fixture).

Each case runs in a fresh process: a 256^2 Potts grain growth (60 Monte Carlo steps, ``potts_grain_growth``) and
a 64^3 reconstruction from a 96^2 two-phase image (``--evaluations``, default 300), with torch's threads fixed at
2 or 1, or left to the governor (``ThreadGovernor``, which probes ``parallel_pays`` in a worker thread).

    python benchmarks/thread_pools.py [--evaluations 300]
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys

CASE = r"""
import sys, threading, time
import torch
import napari_microfingerprint as m
from napari_microfingerprint.core.synthetic import potts_grain_growth, voronoi_labels
from napari_microfingerprint.core.threads import ThreadGovernor

pool, where, threads, evaluations = sys.argv[1] == "yes", sys.argv[2], sys.argv[3], int(sys.argv[4])
threads = None if threads == "governor" else int(threads)
if pool:
    torch.rand(512, 512).sum()  # the main thread's OpenMP pool
seconds = []

def run():
    grains = voronoi_labels((256, 256), 2600, seed=0)  # made here: torch work in the main thread makes its pool
    target = m.characterize(m.make_two_phase((96, 96), 0.35, 3.0, seed=0))
    with ThreadGovernor(threads) as governor:
        start = time.perf_counter()
        potts_grain_growth(grains, [60], temperature=0.5, seed=0, device="cpu")
        seconds.append(time.perf_counter() - start)
        seconds.append(governor.max_threads)
    start = time.perf_counter()
    m.reconstruct(target, (64, 64, 64), device="cpu", threads=threads, max_iter=evaluations)
    seconds.append(time.perf_counter() - start)

if where == "main":
    run()
else:
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
print(seconds)
"""

#: (main thread's pool, where the work runs, torch threads)
CASES = [("yes", "main", "2"), ("yes", "worker", "2"), ("yes", "worker", "1"), ("yes", "worker", "governor"),
         ("no", "worker", "2"), ("no", "worker", "governor")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=300)
    args = parser.parse_args()
    print("load:", os.getloadavg())
    print("| main thread's pool | work runs in | torch threads | Potts 256^2, 60 steps (s) | 64^3 reconstruction, "
          f"{args.evaluations} evaluations (s) |\n|---|---|---|---:|---:|")
    for pool, where, threads in CASES:
        out = subprocess.run([sys.executable, "-c", CASE, pool, where, threads, str(args.evaluations)],
                             capture_output=True, text=True, check=True).stdout
        potts, chosen, recon = ast.literal_eval(out.strip().splitlines()[-1])
        shown = f"governor: {chosen:g}" if threads == "governor" else threads
        print(f"| {pool} | {where} thread | {shown} | {potts:.2f} | {recon:.1f} |", flush=True)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
