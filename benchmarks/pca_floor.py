"""How much of a grain distance map can a 256-number code hold at paper 000's patch size? (issue 13)

Paper 000 reports a loss of 6.8e-3 for 256-px patches of phase-field grain maps through a 256-dimensional latent.
Our VAEs at 256 px stayed at the mean image (BENCHMARKS.md). This measures the linear floor, PCA with ``k``
components (scikit-learn, randomized), fitted on random patches of training maps and applied to patches of
held-out maps: the share of the held-out variance left, and the MSE it leaves in the shipped model's units (its
scale of distance maps to [0, 1], the largest distance of its training maps, times the zoom). Patches of 64 px
(the shipped model) and 256 px (paper 000), on the package's Potts stages and on the same maps enlarged
``--zoom`` times, whose grains have paper 000's size (a 4000^2 domain started from 60,000 grains: 267 px per
grain before growth, against our 64).

    python benchmarks/pca_floor.py [--components 16 64 256] [--zoom 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage
from sklearn.decomposition import PCA

import napari_microfingerprint as m
from napari_microfingerprint.core.vae.training import transform_input

#: The shipped ``potts-grains`` model's scale of distance maps to [0, 1] (its training maps' largest distance); the
#: enlarged maps' distances are enlarged with them.
SCALE = m.load_builtin_model("potts-grains").config["scale"]


def stage_maps(stage: str, seeds: range, size: int, zoom: int) -> tuple[list[np.ndarray], float]:
    """Distance maps of Potts grain maps of ``size`` (before enlarging by ``zoom``, nearest neighbour), and their
    mean number of grains per pixel."""
    out, grains = [], 0
    for s in seeds:
        lab = m.make_grain_structure((size, size), stage=stage, seed=s, device="cpu")
        grains += np.unique(lab).size / (size * zoom) ** 2
        out.append(transform_input(ndimage.zoom(lab, zoom, order=0) if zoom > 1 else lab, "distance"))
    return out, grains / len(seeds)


def patches(maps: list[np.ndarray], patch: int, n: int, seed: int) -> np.ndarray:
    """``n`` random patches (random position, a random quarter turn and flip), flattened."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, patch * patch), np.float32)
    for k in range(n):
        d = maps[rng.integers(len(maps))]
        y, x = rng.integers(0, d.shape[0] - patch + 1), rng.integers(0, d.shape[1] - patch + 1)
        p = np.rot90(d[y:y + patch, x:x + patch], rng.integers(4))
        out[k] = (p[:, ::-1] if rng.integers(2) else p).ravel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--train", type=int, default=1500, help="training patches per stage and size")
    parser.add_argument("--test", type=int, default=200, help="held-out patches per stage and size")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    print("| stage | grains | patch | grains per patch | patch variance ([0, 1] units) | "
          + " | ".join(f"PCA-{k}: variance left, MSE" for k in args.components) + " | seconds |")
    print("|---|---|---|---|---|" + "---|" * len(args.components) + "---|")
    for zoom in (1, args.zoom):
        size = 1024 // zoom
        for stage in ("early", "intermediate", "late"):
            train, _ = stage_maps(stage, range(4), size, zoom)
            test, per_pixel = stage_maps(stage, range(100, 101), size, zoom)
            scale = SCALE * zoom
            for patch in (64, 256):
                start = time.perf_counter()
                xs = np.clip(patches(train, patch, args.train, 0) / scale, 0, 1)
                xt = np.clip(patches(test, patch, args.test, 1) / scale, 0, 1)
                var = float(np.mean((xt - xt.mean(1, keepdims=True)) ** 2))  # around each patch's own mean
                cells = []
                for k in args.components:
                    pca = PCA(k, svd_solver="randomized", random_state=0).fit(xs)
                    mse = float(np.mean((pca.inverse_transform(pca.transform(xt)) - xt) ** 2))
                    cells.append(f"{mse / var:.2f}, {mse:.1e}")
                label = "Potts" if zoom == 1 else f"Potts x{zoom}"
                print(f"| {stage} | {label} | {patch} | {per_pixel * patch * patch:.0f} | {var:.1e} | "
                      + " | ".join(cells) + f" | {time.perf_counter() - start:.0f} |", flush=True)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
