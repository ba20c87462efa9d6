"""Thread sharing: how a reconstruction's speed holds up when other work uses the CPU (issue 10).

Runs the same 2D -> 3D reconstruction (ceramics crop, ``N^3``) under three conditions and two thread policies:

- conditions: alone; beside a busy loop that keeps one core at 100 % (another process, or napari's preview);
  two reconstructions at once;
- policies: ``threads=<all cores>`` (torch's default, the behaviour before issue 10) and ``threads=None``
  (the :class:`~napari_microfingerprint.core.threads.ThreadGovernor`).

Each run is a separate process. Prints wall and CPU seconds and the ratio to the same policy's run alone.

    python benchmarks/thread_sharing.py [--sizes 32 64] [--policies fixed auto]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RUN = r"""
import json, sys, time
from napari_microfingerprint import characterize, load_example, reconstruct
from napari_microfingerprint.core.threads import cpu_count
n, policy = int(sys.argv[1]), sys.argv[2]
threads = cpu_count() if policy == "fixed" else None
target = characterize(load_example("ceramics")[:64, :64], limit_to=8, levels=2)
reconstruct(target, (20, 20, 20), max_iter=20, threads=threads)  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
r = reconstruct(target, (n, n, n), seed=1, threads=threads)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "threads": r.settings["threads_used"]}))
"""
BURN = "import time\nend = time.time() + 900\nwhile time.time() < end: pass"


def runs(n: int, policy: str, copies: int) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(n), policy], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--policies", nargs="+", default=["fixed", "auto"], choices=["fixed", "auto"])
    args = parser.parse_args()
    print("load before:", os.getloadavg())
    print("| size | policy | condition | wall s | CPU s | threads used | wall / alone |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for policy in args.policies:
            alone = runs(n, policy, 1)[0]
            burner = subprocess.Popen([sys.executable, "-c", BURN])
            time.sleep(0.5)
            try:
                loaded = runs(n, policy, 1)[0]
            finally:
                burner.kill()
            pair = runs(n, policy, 2)
            name = "all cores (before)" if policy == "fixed" else "governor (after)"
            for cond, rs in (("alone", [alone]), ("one core busy", [loaded]), ("two runs at once", pair)):
                for r in rs:
                    print(f"| {n}^3 | {name} | {cond} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['threads']} | "
                          f"{r['wall'] / alone['wall']:.2f} |", flush=True)
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
