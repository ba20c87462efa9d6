"""How good are VAE samples? (issue 13) The generation-quality table of 64 sampled structures per material.

For each material a model is trained on this CPU with the settings named in the table, 64 fingerprints are drawn
by ``sample_latent`` (normals fitted to the fingerprints of the material's windows, paper 000 section 3.3) and
decoded, and ``walk_quality`` compares them with the material's own non-overlapping patches: volume fractions and
the S2 shape for two-phase micrographs, grain count, mean area and R-n slope for grain structures. For the
two-phase micrographs the same 64 fingerprints also go through the bridge (``fit_descriptor_head`` +
``structure_from_fingerprint``: descriptors predicted from the nearest windows, then a 64^2 descriptor
reconstruction), and one of them becomes a 64^3 volume, judged on 16 of its slices. For grain models they go
through the grain bridge (``fit_grain_head`` + ``grains_from_fingerprint``: grain size and R-n slope predicted
from the nearest windows, then Potts grain growth), in 2D and one 64^3 volume. Materials:
the real ceramics and sandstone micrographs bundled with the package (Li et al. 2018, CC BY 4.0) and Potts grain
structures at the early and late growth stage.

    python benchmarks/generation_quality.py
    python benchmarks/generation_quality.py --epochs 4 30 --materials ceramics
    python benchmarks/generation_quality.py --materials ceramics sandstone --epochs 30 --decoded-only \
        --patches 512 --models conv:mse conv:bce_spectral conv:style texture:style
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import napari_microfingerprint as m
from napari_microfingerprint.core.generation_quality import real_patches


def material(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Training images and the real image the samples are judged against."""
    if name in ("ceramics", "sandstone"):
        image = m.load_example(name)
        return [image], image
    stage = name.split()[-1]
    train = [m.make_grain_structure((256, 256), stage=stage, seed=s, device="cpu") for s in range(2)]
    return train, m.make_grain_structure((256, 256), stage=stage, seed=7, device="cpu")


def _shares(quality) -> str:
    return ", ".join(f"{r.statistic} {100 * r.inside_share:.0f} %" for r in quality.table.itertuples())


def rows(name: str, epochs: int, latent: int, beta: float | None, n: int = 64, architecture: str = "conv",
         loss: str = "mse", bridge: bool = True, train_patches: int = 96) -> list[str]:
    train, real = material(name)
    start = time.perf_counter()
    model = m.train_vae(train, architecture=architecture, loss=loss, latent_dim=latent, epochs=epochs,
                        patches_per_image=train_patches, device="cpu", seed=0, beta=beta)
    seconds = time.perf_counter() - start
    grains = model.config["transform"] == "distance"
    z = np.concatenate([m.encode(model, im, stride=16).reshape(-1, latent) for im in train])
    walk = m.sample_latent(model, z, n=n, seed=0, labels=grains)
    quality = m.walk_quality(model, walk, real)
    spread = float(walk.images.std(axis=0).mean())
    contrast = float(walk.images.std(axis=(1, 2)).mean())  # a blurred sample is flat; a sharp one spans 0-1
    trained = len(model.history.get("val_loss", [])) or epochs
    out = [f"| {name} | decoded ({architecture}, {loss} loss, latent {latent}, {trained} of {epochs} epochs of "
           f"{train_patches} patches) | {seconds:.0f} | {spread:.3f} (within a sample {contrast:.3f}) | "
           f"{_shares(quality)} | {'yes' if quality.passed else 'no'} |"]
    if not bridge:
        return out
    if grains:
        return out + grain_bridge_rows(name, model, train, real, walk.z)
    patches, _ = real_patches(model, real, "phases")
    start = time.perf_counter()
    head = m.fit_descriptor_head(model, train)
    images = [m.structure_from_fingerprint(head, zz, (64, 64), device="cpu", seed=k).labels
              for k, zz in enumerate(walk.z)]
    seconds = time.perf_counter() - start
    bridge = m.generation_quality(images, patches)
    out.append(f"| {name} | bridge: fingerprint -> descriptors -> 64^2 reconstruction | {seconds:.0f} (all {n}) | "
               f"binary | {_shares(bridge)} | {'yes' if bridge.passed else 'no'} |")
    start = time.perf_counter()
    volume = m.structure_from_fingerprint(head, walk.z[0], (64, 64, 64), device="cpu").labels
    seconds = time.perf_counter() - start
    slices = [volume[k] for k in range(0, 64, 8)] + [volume[:, k] for k in range(0, 64, 8)]
    solid = m.generation_quality(slices, patches)
    out.append(f"| {name} | bridge: one fingerprint -> 64^3 volume (16 slices judged) | {seconds:.0f} | binary | "
               f"{_shares(solid)} | {'yes' if solid.passed else 'no'} |")
    return out


def grain_bridge_rows(name: str, model, train: list[np.ndarray], real: np.ndarray, z: np.ndarray) -> list[str]:
    """The grain bridge: the same fingerprints -> grain size and R-n slope -> Potts grains; 64^2 maps, and one
    64^3 volume judged on 16 of its sections."""
    patches, _ = real_patches(model, real, "grains")
    start = time.perf_counter()
    head = m.fit_grain_head(model, train, device="cpu")
    fit = time.perf_counter() - start
    start = time.perf_counter()
    maps = [m.grains_from_fingerprint(head, zz, (64, 64), seed=k, device="cpu") for k, zz in enumerate(z)]
    seconds = time.perf_counter() - start
    quality = m.generation_quality(maps, patches, kind="grains")
    out = [f"| {name} | grain bridge: fingerprint -> grain size, R-n slope -> Potts grains, 64^2 | "
           f"{fit:.0f} + {seconds:.0f} (all {len(z)}) | labels | {_shares(quality)} | "
           f"{'yes' if quality.passed else 'no'} |"]
    start = time.perf_counter()
    volume = m.grains_from_fingerprint(head, z[0], (64, 64, 64), seed=0, device="cpu")
    seconds = time.perf_counter() - start
    sections = [volume[k] for k in range(0, 64, 8)] + [volume[:, k] for k in range(0, 64, 8)]
    solid = m.generation_quality(sections, patches, kind="grains")
    out.append(f"| {name} | grain bridge: one fingerprint -> 64^3 volume (16 sections judged) | {seconds:.0f} | "
               f"labels | {_shares(solid)} | {'yes' if solid.passed else 'no'} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="*", default=["ceramics", "sandstone", "potts early", "potts late"])
    parser.add_argument("--epochs", nargs="*", type=int, default=[4, 30])
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--beta", type=float, default=1.0,
                        help="KL weight; the BENCHMARKS tables used 1 (give -1 for train_vae's default per transform)")
    parser.add_argument("--models", nargs="*", default=["conv:mse"],
                        help="architecture:loss pairs to train (the BENCHMARKS tables before the loss candidates "
                             "used conv:mse)")
    parser.add_argument("--patches", type=int, default=96, help="training patches per image and epoch")
    parser.add_argument("--decoded-only", action="store_true", help="leave out the bridge rows")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| material | generated by | seconds | spread between decoded samples | inside the real 2 sd | passes |")
    print("|---|---|---:|---:|---|---|")
    for name in args.materials:
        for epochs in args.epochs:
            for spec in args.models:
                architecture, loss = spec.split(":")
                for line in rows(name, epochs, args.latent, None if args.beta < 0 else args.beta,
                                 architecture=architecture, loss=loss, bridge=not args.decoded_only,
                                 train_patches=args.patches):
                    print(line, flush=True)


if __name__ == "__main__":
    main()
