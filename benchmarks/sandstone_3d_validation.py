"""Validate 2D -> 3D reconstruction on a real 3D volume: the Leopard sandstone micro-CT subvolume.

Data (not shipped; ``../shared/data/porespy/image_Leopard_slice100.npy``, 100^3, from PoreSpy's test fixtures,
MIT, Digital Rocks Portal project 317). One 2D slice (the middle z slice, 100 x 100) is characterised with
volume fractions, S2 (``--limit-to``, default 8) and the variation; a 64^3 volume is reconstructed from it (500
evaluations). Compared with the real volume: porosity and the two-point correlation along each axis,
``S2(r e_a) = <I(x) I(x + r e_a)>`` for r = 0..16, computed directly on both volumes (non-periodic for the real
one). Prints a table and writes ``benchmarks/results/sandstone_3d_validation.json``.

    python benchmarks/sandstone_3d_validation.py [--data ../shared/data/porespy/image_Leopard_slice100.npy]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_microfingerprint import characterize, reconstruct

MAX_R = 16


def axis_s2(volume: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    """S2 of phase 1 along one axis for r = 0..MAX_R (direct products, no FFT)."""
    v = volume.astype(float)
    n = v.shape[axis]
    out = []
    for r in range(MAX_R + 1):
        if periodic:
            out.append(float((v * np.roll(v, -r, axis=axis)).mean()))
        else:
            a = np.take(v, np.arange(0, n - r), axis=axis)
            b = np.take(v, np.arange(r, n), axis=axis)
            out.append(float((a * b).mean()))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared/data/porespy/image_Leopard_slice100.npy"
    parser.add_argument("--data", default=str(default))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit-to", type=int, default=8)
    args = parser.parse_args()
    real = (np.load(args.data) > 0).astype(np.uint8)
    section = real[real.shape[0] // 2]
    start = time.perf_counter()
    target = characterize(section, descriptors=("volume_fractions", "s2", "variation"),
                          limit_to=args.limit_to)
    res = reconstruct(target, (args.size,) * 3, device=args.device)
    seconds = time.perf_counter() - start
    rec = res.labels
    rows = {"seconds": seconds, "undecided": res.undecided, "porosity_real_volume": float(real.mean()),
            "porosity_section": float(section.mean()), "porosity_reconstruction": float(rec.mean()), "axes": {}}
    print(f"reconstruction {args.size}^3 from one {section.shape[0]}^2 slice, limit_to {args.limit_to}, in {seconds:.1f} s, "
          f"undecided {100 * res.undecided:.2f} %")
    print(f"porosity: real volume {real.mean():.4f}, the slice {section.mean():.4f}, reconstruction {rec.mean():.4f}")
    print("| axis | r | S2 real volume | S2 reconstruction |")
    print("|---|---|---|---|")
    for axis, name in enumerate("zyx"):
        a = axis_s2(real, axis, periodic=False)
        b = axis_s2(rec, axis, periodic=True)
        rel = float(np.linalg.norm(a - b) / np.linalg.norm(a))
        rows["axes"][name] = {"real": a.tolist(), "reconstruction": b.tolist(), "relative_difference": rel}
        for r in (0, 2, 4, 8, 16):
            print(f"| {name} | {r} | {a[r]:.4f} | {b[r]:.4f} |")
        print(f"| {name} | relative L2 difference r=0..{MAX_R} | {rel:.3f} | |")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"sandstone_3d_validation_limit{args.limit_to}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
