"""Run one MCRpy 0.2.0 reconstruction (in MCRpy's own virtual environment) and report time and memory.

    python _run_mcrpy.py TARGET.npy OUT.npy SHAPE MAX_ITER LIMIT_TO [CONFIG]

CONFIG: ``correlations`` (default: "Correlations" = S2 + S3, plus "Variation") or ``fft-multigrid``, MCRpy's
fastest documented setting ("FFTCorrelations" + "Variation" with multigrid reconstruction, as its README
recommends for speed).

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
    config = sys.argv[6] if len(sys.argv) > 6 else "correlations"
    shape = tuple(int(s) for s in shape.split("x"))
    import mcrpy

    ms = mcrpy.Microstructure(np.load(target).astype(np.int64))
    folder = tempfile.mkdtemp()
    first = {"correlations": "Correlations", "fft-multigrid": "FFTCorrelations"}[config]
    common = {"descriptor_types": [first, "Variation"], "limit_to": int(limit_to), "data_folder": folder}
    extra = {"use_multigrid_reconstruction": True} if config == "fft-multigrid" else {}
    start = time.perf_counter()
    characterization = mcrpy.characterize(ms, mcrpy.CharacterizationSettings(**common))
    settings = mcrpy.ReconstructionSettings(**common, descriptor_weights=[1.0, 100.0], max_iter=int(max_iter),
                                             **extra)
    _, last = mcrpy.reconstruct(characterization, shape, settings=settings)
    seconds = time.perf_counter() - start
    field = np.asarray(last.numpy())[..., -1]
    np.save(out, field)
    print(json.dumps({"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))


if __name__ == "__main__":
    main()
