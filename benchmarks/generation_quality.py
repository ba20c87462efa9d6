"""How good are VAE samples? (issue 13) The generation-quality table of 64 sampled structures per material.

For each material a model is trained on this CPU with the settings named in the table, 64 fingerprints are drawn
by ``sample_latent`` (normals fitted to the fingerprints of the material's windows, paper 000 section 3.3) and
decoded, and ``walk_quality`` compares them with the material's own non-overlapping patches: volume fractions and
the S2 shape for two-phase micrographs, grain count, mean area and R-n slope for grain structures. Materials:
the real ceramics and sandstone micrographs bundled with the package (Li et al. 2018, CC BY 4.0) and Potts grain
structures at the early and late growth stage.

    python benchmarks/generation_quality.py
    python benchmarks/generation_quality.py --epochs 4 30 --materials ceramics
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import napari_microfingerprint as m


def material(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Training images and the real image the samples are judged against."""
    if name in ("ceramics", "sandstone"):
        image = m.load_example(name)
        return [image], image
    stage = name.split()[-1]
    train = [m.make_grain_structure((256, 256), stage=stage, seed=s, device="cpu") for s in range(2)]
    return train, m.make_grain_structure((256, 256), stage=stage, seed=7, device="cpu")


def row(name: str, epochs: int, latent: int, n: int = 64) -> str:
    train, real = material(name)
    start = time.perf_counter()
    model = m.train_vae(train, latent_dim=latent, epochs=epochs, patches_per_image=96, device="cpu", seed=0)
    seconds = time.perf_counter() - start
    grains = model.config["transform"] == "distance"
    z = np.concatenate([m.encode(model, im, stride=16).reshape(-1, latent) for im in train])
    walk = m.sample_latent(model, z, n=n, seed=0, labels=grains)
    quality = m.walk_quality(model, walk, real)
    shares = ", ".join(f"{r.statistic} {100 * r.inside_share:.0f} %" for r in quality.table.itertuples())
    spread = float(walk.images.std(axis=0).mean())
    return (f"| {name} | conv, latent {latent}, {epochs} epochs | {seconds:.0f} | {spread:.3f} | {shares} | "
            f"{'yes' if quality.passed else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="*", default=["ceramics", "sandstone", "potts early", "potts late"])
    parser.add_argument("--epochs", nargs="*", type=int, default=[4, 30])
    parser.add_argument("--latent", type=int, default=16)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| material | model | training (s) | decoded spread (sd between samples) | inside the real 2 sd | "
          "passes |")
    print("|---|---|---:|---:|---|---|")
    for name in args.materials:
        for epochs in args.epochs:
            print(row(name, epochs, args.latent), flush=True)


if __name__ == "__main__":
    main()
