"""Ensemble throughput: 64^3 volumes per hour from the ceramics crop on this machine (issue 10).

Modes, each on a fresh store with the same seeds:

- ``serial``: one process, one volume after another (torch threads chosen by the governor: all free cores);
- ``dask``: :func:`reconstruct_ensemble` on a ``LocalCluster`` of one single-threaded worker process per core.

On a GPU (``--device cuda``, or ``auto`` where one exists) both rows run in this process, on the device: one
volume at a time against batches of ``--batch`` seeds in one optimisation.

    python benchmarks/ensemble_throughput.py [--n 6] [--size 64] [--device cpu|cuda] [--batch 4]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from napari_microfingerprint import characterize, load_example, reconstruct_ensemble
from napari_microfingerprint.core.device import resolve_device
from napari_microfingerprint.core.threads import cpu_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--batch", type=int, default=4, help="seeds per optimisation in the batched mode")
    args = parser.parse_args()
    target = characterize(load_example("ceramics")[:64, :64], limit_to=8, levels=2)
    shape = (args.size,) * 3
    print("load before:", os.getloadavg(), "cores:", cpu_count())
    print("| mode | volumes | wall s | s per volume (task) | volumes per hour | max S2 error | undecided |")
    print("|---|---|---|---|---|---|---|")
    modes = [("serial, 1 process", "serial", 1), (f"Dask LocalCluster, {cpu_count()} x 1 thread", None, 1)]
    if resolve_device(args.device).type != "cpu":
        modes = [("serial, one at a time", "serial", 1), (f"serial, batches of {args.batch}", "serial", args.batch)]
    for mode, client, batch in modes:
        store = Path(tempfile.mkdtemp()) / "ens"
        start = time.perf_counter()
        table = reconstruct_ensemble(target, shape, n=args.n, client=client, store=store, device=args.device,
                                     batch=batch)
        wall = time.perf_counter() - start
        done = table[table["status"] == "done"]
        print(f"| {mode} | {len(done)} | {wall:.1f} | {done['seconds'].mean():.1f} | {3600 * len(done) / wall:.0f} | "
              f"{done['error_s2'].max():.4f} | {done['undecided'].max():.2%} |", flush=True)
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
