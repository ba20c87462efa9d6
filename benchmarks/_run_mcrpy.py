"""Run one MCRpy 0.2.0 reconstruction (in MCRpy's own virtual environment) and report time and memory.

    python _run_mcrpy.py TARGET.npy OUT.npy SHAPE MAX_ITER LIMIT_TO

Prints one JSON line: {"seconds": ..., "peak_rss_gb": ...}. OUT.npy holds MCRpy's final soft field of phase 1.
"""
import json
import resource
import sys
import tempfile
import time

import numpy as np


def main() -> None:
    target, out, shape, max_iter, limit_to = sys.argv[1:6]
    shape = tuple(int(s) for s in shape.split("x"))
    import mcrpy

    ms = mcrpy.Microstructure(np.load(target).astype(np.int64))
    folder = tempfile.mkdtemp()
    common = {"descriptor_types": ["Correlations", "Variation"], "limit_to": int(limit_to), "data_folder": folder}
    start = time.perf_counter()
    characterization = mcrpy.characterize(ms, mcrpy.CharacterizationSettings(**common))
    settings = mcrpy.ReconstructionSettings(**common, descriptor_weights=[1.0, 100.0], max_iter=int(max_iter))
    _, last = mcrpy.reconstruct(characterization, shape, settings=settings)
    seconds = time.perf_counter() - start
    field = np.asarray(last.numpy())[..., -1]
    np.save(out, field)
    print(json.dumps({"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))


if __name__ == "__main__":
    main()
