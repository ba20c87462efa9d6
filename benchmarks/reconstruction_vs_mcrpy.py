"""Side-by-side descriptor-based reconstruction: napari-microfingerprint against MCRpy 0.2.0, on one machine.

MCRpy (TensorFlow) is installed in its own virtual environment when missing (``pip install mcrpy==0.2.0
"numpy<2"``; it crashes with numpy 2), never as a dependency of the plugin. Both run on the same targets with
correlations, ``limit_to=8``, variation weight 100 and the same budget of loss evaluations (500). Each run is a
fresh process, so its peak RSS is its own.

Reported per case: wall time (characterisation included), peak memory, the fraction of undecided voxels
(phase-1 value between 0.05 and 0.95), and the relative S2 error (paper 003 Eq. 10, offsets up to 8, per
slice along every axis) of the **binarised** result (> 0.5) against the target, computed for both by
:func:`s2_error` below (plain numpy FFTs, independent of either code), next to the noise floor: the same error
of independent samples of the same structure, of the slice size, against the same target.

Targets: the real ceramics micrograph of MCRpy's examples (Li et al. 2018, 256 x 256 at full resolution;
non-overlapping crops give the target and the independent samples) and PyMKS's synthetic 64^2 / 128^2 examples
(three realisations each: one target, two for the noise floor). ``--mcrpy-max-iter-3d`` cuts MCRpy's 64^3 run
short; its time is then extrapolated linearly to 500 evaluations and marked so.

    python benchmarks/reconstruction_vs_mcrpy.py [--cases 2d64 2d128 3d32 3d64] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "mcrpy"
MCRPY_VENV = HERE / ".mcrpy-venv"
LIMIT_TO = 8
BUDGET = 500
OURS = {"ours (vf+S2+V)": "volume_fractions,s2,variation", "ours (vf+S2+S3+V)": "volume_fractions,s2,s3,variation"}


def s2_error(structure: np.ndarray, target2d: np.ndarray, limit_to: int = LIMIT_TO) -> float:
    """Mean relative S2 error over all slices (all three axes for a volume) of a binary structure against the
    S2 of a binary 2D target, offsets |dy|, |dx| <= limit_to, periodic (paper 003 Eq. 10)."""

    def s2(img: np.ndarray) -> np.ndarray:
        f = np.fft.fft2(img.astype(float), axes=(-2, -1))
        corr = np.real(np.fft.ifft2(f * np.conj(f), axes=(-2, -1))) / (img.shape[-1] * img.shape[-2])
        idx = np.arange(-limit_to, limit_to + 1)
        return corr[..., idx[:, None] % img.shape[-2], idx[None, :] % img.shape[-1]].reshape(*img.shape[:-2], -1)

    want = s2(target2d)
    if structure.ndim == 2:
        stacks = [structure[None]]
    else:
        stacks = [structure, structure.transpose(1, 0, 2), structure.transpose(2, 0, 1)]
    errs = [np.linalg.norm(s2(st) - want, axis=-1) / np.linalg.norm(want) for st in stacks]
    return float(np.mean(np.concatenate(errs)))


def ensure_mcrpy() -> Path:
    python = MCRPY_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import mcrpy"], capture_output=True).returncode:
        print("installing MCRpy 0.2.0 into", MCRPY_VENV, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MCRPY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mcrpy==0.2.0", "numpy<2"], check=True)
    return python


def crops(image: np.ndarray, size: int) -> list[np.ndarray]:
    n = image.shape[0] // size
    return [image[i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(n) for j in range(n)]


def targets() -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """name -> (2D target, independent samples of the same structure at full size)."""
    ceramics = np.load(DATA / "ceramics_resized.npy").astype(np.uint8)
    out = {}
    for size in (64, 128):
        c = crops(ceramics, size)
        out[f"ceramics {size}"] = (c[0], c[1:])
        p = [np.load(DATA / f"pymks_ms_{size}x{size}_{k}.npy").astype(np.uint8) for k in (1, 2, 3)]
        out[f"pymks {size}"] = (p[0], p[1:])
    return out


CASES = {  # case -> (target size, output shape)
    "2d64": (64, (64, 64)),
    "2d128": (128, (128, 128)),
    "3d32": (64, (32, 32, 32)),
    "3d64": (64, (64, 64, 64)),
}


def run(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cmd[1]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--structures", nargs="+", default=["ceramics", "pymks"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-mcrpy", action="store_true")
    parser.add_argument("--mcrpy-max-iter-3d", type=int, default=50)
    parser.add_argument("--mcrpy-configs", nargs="+", default=["correlations", "fft-multigrid"],
                        help="MCRpy settings: correlations (Correlations + Variation) and/or fft-multigrid "
                             "(FFTCorrelations + Variation, multigrid reconstruction)")
    parser.add_argument("--ours", nargs="+", default=list(OURS), help="which of our descriptor sets to run")
    args = parser.parse_args()
    mcrpy_python = None if args.skip_mcrpy else ensure_mcrpy()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    all_targets = targets()
    for case in args.cases:
        size, shape = CASES[case]
        for struct in args.structures:
            target, samples = all_targets[f"{struct} {size}"]
            tpath = tmp / f"{struct}{size}.npy"
            np.save(tpath, target)
            slice_side = shape[-1]
            floor_samples = [c for s in samples for c in crops(s, slice_side)]
            floor = float(np.mean([s2_error(c, target) for c in floor_samples]))
            shape_arg = "x".join(map(str, shape))
            runs = {name: [sys.executable, str(HERE / "_run_ours.py"), str(tpath), "", shape_arg, str(BUDGET),
                           str(LIMIT_TO), names, args.device] for name, names in OURS.items() if name in args.ours}
            mcrpy_iter = BUDGET
            if mcrpy_python is not None:
                if len(shape) == 3 and shape[0] >= 64:
                    mcrpy_iter = args.mcrpy_max_iter_3d
                for config in args.mcrpy_configs:
                    runs[f"MCRpy 0.2.0 {config}"] = [str(mcrpy_python), str(HERE / "_run_mcrpy.py"), str(tpath), "",
                                                     shape_arg, str(mcrpy_iter), str(LIMIT_TO), config]
            for name, cmd in runs.items():
                out = tmp / f"{case}-{struct}-{name.split()[0]}-{len(rows)}.npy"
                cmd[3] = str(out)
                info = run(cmd)
                field = np.load(out)
                row = {"case": case, "structure": struct, "code": name, "shape": shape_arg,
                       "seconds": info["seconds"], "peak_rss_gb": info["peak_rss_gb"],
                       "peak_gpu_gb": info.get("peak_gpu_gb"),
                       "undecided": float(((field > 0.05) & (field < 0.95)).mean()),
                       "s2_error": s2_error((field > 0.5).astype(np.uint8), target), "noise_floor": floor,
                       "note": ""}
                if name.startswith("MCRpy") and mcrpy_iter < BUDGET:
                    row["note"] = f"cut at {mcrpy_iter} evaluations; time extrapolated x{BUDGET / mcrpy_iter:g}"
                    row["seconds"] *= BUDGET / mcrpy_iter
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| case | structure | code | time (s) | peak RSS (GB) | undecided | S2 error (binarised) | noise floor | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} {r['shape']} | {r['structure']} | {r['code']} | {r['seconds']:.1f} | "
              f"{r['peak_rss_gb']:.2f} | {100 * r['undecided']:.2f} % | {r['s2_error']:.4f} | {r['noise_floor']:.4f} | "
              f"{r['note']} |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "reconstruction_vs_mcrpy.json").write_text(json.dumps(
        {"machine": platform.platform(), "device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
