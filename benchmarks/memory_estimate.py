"""The reconstruction's memory estimate against the measured peak on the CPU (issue 11).

Each case runs in a fresh process: import, a tiny warm-up reconstruction (so that libraries and allocator arenas
are in place), then the measured run; the peak is the largest resident set size sampled every 5 ms during the run
minus the resident set just before it (``ru_maxrss`` would hide the run behind the import's own peak). The
estimate is :func:`estimate_memory` for the same target and settings, i.e. what the guard in ``reconstruct``
compares with the free memory. A ratio below 1 means a run the guard lets through can need more
memory than it was told.

    python benchmarks/memory_estimate.py
    python benchmarks/memory_estimate.py --cases 3d64 3d96
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = {
    "2d256": {"shape": (256, 256), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d32": {"shape": (32, 32, 32), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d64": {"shape": (64, 64, 64), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d96": {"shape": (96, 96, 96), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d128": {"shape": (128, 128, 128), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d64-3phase": {"shape": (64, 64, 64), "phases": 3, "descriptors": ("volume_fractions", "s2", "variation")},
    "3d64-chord_lengths": {"shape": (64, 64, 64), "phases": 2,
                           "descriptors": ("volume_fractions", "s2", "variation", "chord_lengths")},
    "3d64-tortuosity": {"shape": (64, 64, 64), "phases": 2, "descriptors": ("volume_fractions", "s2", "variation"),
                        "tortuosity": 2.0},
}

CHILD = r"""
import json, os, sys, threading, time
import numpy as np
import napari_microfingerprint as m
from napari_microfingerprint.core.reconstruction import ReconstructionSettings, memory_per_structure
case = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
image = m.make_two_phase((128, 128), 0.35, 4.0, seed=0).astype(np.int64)
if case["phases"] == 3:
    image[(image == 0) & (rng.random(image.shape) < 0.3)] = 2
    image = m.smooth(image, 1.0)
target = m.characterize(image, descriptors=list(case["descriptors"]), limit_to=8)
extra = {"tortuosity": case["tortuosity"]} if case.get("tortuosity") else {}
small = tuple(24 for _ in case["shape"])
m.reconstruct(target, small, max_iter=5, device="cpu", threads=2, **extra)

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

base, top, done = rss(), [0], threading.Event()

def sample():
    while not done.is_set():
        top[0] = max(top[0], rss())
        time.sleep(0.005)

watcher = threading.Thread(target=sample)
watcher.start()
shape = tuple(case["shape"])
settings = ReconstructionSettings(max_iter=60, device="cpu", threads=2, **extra)
estimate = memory_per_structure(target, shape, settings)
m.reconstruct(target, shape, settings=None, max_iter=60, device="cpu", threads=2, **extra)
done.set()
watcher.join()
peak = top[0] - base
print(json.dumps({"estimate": estimate, "peak": peak}))
"""


def measure(case: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    print("| case | shape | phases | estimate (MB) | measured peak (MB) | estimate / peak |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.cases:
        case = CASES[name]
        r = measure(case)
        print(f"| {name} | {'x'.join(map(str, case['shape']))} | {case['phases']} | {r['estimate'] / 2**20:.0f} | "
              f"{r['peak'] / 2**20:.0f} | {r['estimate'] / max(r['peak'], 1):.2f} |", flush=True)


if __name__ == "__main__":
    main()
