"""The chord-length descriptor (``chord_lengths``) as a candidate against the default, on the Leopard sandstone.

Issue 9 left the chord means outside the real crops' spread: the default reconstruction of one slice has solid
chords of 23-35 voxels where the rock's 64^3 crops have 12-13. This script reconstructs 64^3 from one z slice
with the default descriptors and with ``chord_lengths`` added (weight ``--weight``), and compares every metric
of :func:`structure_report` with 8 random 64^3 crops of the real volume, as ``benchmarks/connectivity.py``
does. It also prints the slice's own chord means in 64^2 windows (what a reconstruction that reproduces the
slice exactly would have in its sections), beside the crops'.

    python benchmarks/chord_descriptor.py [--data ../shared/data] [--slices 50 15] [--weight 100]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import report as write_report

from napari_microfingerprint import match, structure_report
from napari_microfingerprint.core.descriptors.sets import DEFAULT_WEIGHTS
from napari_microfingerprint.core.morphometry import chord_lengths

CHORDS = ("chord_mean_z", "chord_mean_y", "chord_mean_x")


def slice_chord_means(image: np.ndarray, side: int = 64, step: int = 6) -> dict[int, float]:
    """Mean chord length per phase over the rows and columns of ``side``-square windows of a 2D slice."""
    out = {}
    for phase in (0, 1):
        runs = [chord_lengths(image[y:y + side, x:x + side] == phase, ax)
                for y in range(0, image.shape[0] - side + 1, step)
                for x in range(0, image.shape[1] - side + 1, step) for ax in (0, 1)]
        out[phase] = float(np.concatenate(runs).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--slices", type=int, nargs="*", default=[50, 15])
    parser.add_argument("--weight", type=float, default=100.0)
    args = parser.parse_args()
    vol = np.load(args.data / "porespy" / "image_Leopard_slice100.npy").astype(np.uint8)
    with_chords = {**DEFAULT_WEIGHTS, "chord_lengths": args.weight}
    methods = {"default": {}, f"default + chord_lengths ({args.weight:g})":
               {"descriptors": tuple(with_chords), "weights": with_chords}}
    rows = []
    for z in args.slices:
        own = slice_chord_means(vol[z])
        for name, kwargs in methods.items():
            start = time.perf_counter()
            res = match(vol[z], (64, 64, 64), seed=0, **kwargs)
            seconds = time.perf_counter() - start
            rep = structure_report(res.labels, vol, n_windows=8, seed=0)
            cmp = rep.comparison.set_index(["phase", "metric"])
            row = {"slice (porosity)": f"z={z} ({vol[z].mean():.3f})", "method": name, "seconds": round(seconds, 1),
                   "outside 2 sd": f"{int((~cmp.inside).sum())}/{len(cmp)}",
                   "porosity": round(float(res.labels.mean()), 3), "s2 error (z)": round(res.errors["z"]["s2"], 3),
                   "pore percolating axes": int(rep.phases[1].values["percolating_axes"])}
            for phase, label in ((0, "solid"), (1, "pore")):
                got = [cmp.loc[(phase, c)] for c in CHORDS]
                row[f"{label} chord means z/y/x"] = "/".join(
                    f"{g.value:.1f}{'' if g.inside else '*'}" for g in got)
                row[f"{label} crops z/y/x (mean ± sd)"] = "/".join(f"{g.ref_mean:.1f}±{g.ref_sd:.1f}" for g in got)
                row[f"{label} slice, 64^2 windows"] = round(own[phase], 1)
            row["outside"] = "; ".join(f"{p}:{m}" for (p, m), r in cmp.iterrows() if not r.inside)
            rows.append(row)
            print(row, flush=True)
    write_report(rows, "chord_descriptor")


if __name__ == "__main__":
    main()
