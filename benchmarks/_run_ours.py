"""Run one napari-microfingerprint reconstruction and report time and memory.

    python _run_ours.py TARGET.npy OUT.npy SHAPE MAX_ITER LIMIT_TO DESCRIPTORS DEVICE

DESCRIPTORS is a comma-separated list (e.g. volume_fractions,s2,variation). Prints one JSON line; OUT.npy holds
the soft field of phase 1.
"""
import json
import resource
import sys
import time

import numpy as np
import torch

from napari_microfingerprint import characterize, reconstruct


def main() -> None:
    target, out, shape, max_iter, limit_to, names, device = sys.argv[1:8]
    shape = tuple(int(s) for s in shape.split("x"))
    names = names.split(",")
    weights = {n: {"volume_fractions": 100.0, "variation": 100.0}.get(n, 1.0) for n in names}
    start = time.perf_counter()
    ds = characterize(np.load(target), descriptors=names, limit_to=int(limit_to))
    res = reconstruct(ds, shape, max_iter=int(max_iter), weights=weights, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    np.save(out, res.soft[1])
    info = {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "evaluations": res.evaluations}
    if device.startswith("cuda"):
        info["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    print(json.dumps(info))


if __name__ == "__main__":
    main()
