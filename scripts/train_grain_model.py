"""Train the grain VAE shipped with the package (``load_builtin_model("potts-grains")``) and measure it.

Data: Potts grain structures made by the package itself (``make_grain_structure``, periodic ``--map`` x
``--map`` maps), at the early, intermediate and late stage, seeds 0 .. ``--images - 1`` per stage; held out:
seeds 100-102 per stage. Architecture: paper 000's convolutional VAE (section 3.2) with the pooling, channels,
patch and fingerprint size given; the defaults are the shipped model's (64 px patches, three blocks of 32, 64, 32
channels pooling by 2, a 256-dimensional fingerprint). The KL weight is the setting that decides whether the
decoder learns anything: ``beta=1`` (the evidence lower bound) treats the patches' variance as decoder noise and
the decoder returns each patch's mean; the default 1e-3 does not (BENCHMARKS.md). Training runs ``--epochs``
epochs (or stops after ``--seconds`` of wall time, keeping the best weights by validation loss); seeded, so without
``--seconds`` a rerun on the same machine and library versions gives the same weights.

The script prints, per stage:
- the held-out reconstruction error (mean squared error of ``decode(encode(patch))`` in the normalised units the
  model trains on, 16 random patches of each held-out map), beside the patches' own variance (the error of a
  decoder that returns each patch's mean) and paper 000's 6.8e-3;
- the generation-quality rows of 64 sampled fingerprints (normals fitted to the stage's training fingerprints,
  paper 000 section 3.3), decoded and through the grain bridge (``fit_grain_head`` + ``grains_from_fingerprint``),
  against a held-out map of the stage (grain count, mean area, R-n slope);

and writes ``potts_grains_vae.safetensors`` and ``.json`` into ``--out`` (by default the package's ``data``
folder) as soon as training ends.

    python scripts/train_grain_model.py                     # the shipped model, on the CPU
    python scripts/train_grain_model.py --device cuda --patch 256 --pool 4 --channels 32 64 128 --beta 1 \
        --map 512 --images 8 --patches 400 --seconds 220 --out /tmp/paper000   # paper 000's sizes
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_microfingerprint import (
    encode,
    fit_grain_head,
    generation_quality,
    grains_from_fingerprint,
    make_grain_structure,
    sample_latent,
    save_model,
    walk_quality,
)
from napari_microfingerprint.core.generation_quality import real_patches
from napari_microfingerprint.core.vae.data import sample_patches
from napari_microfingerprint.core.vae.model_io import prepare_input
from napari_microfingerprint.core.vae.training import VAEModel, train_vae_iter

STAGES = ("early", "intermediate", "late")
HELD_OUT_SEEDS = (100, 101, 102)
PAPER_000_MSE = 6.8e-3


def held_out_patches(model: VAEModel, stage: str, size: int, device: str, n: int = 16) -> np.ndarray:
    """``n`` random normalised patches of each held-out map of ``stage``, ``(3 n, L, L)``."""
    rng = np.random.default_rng(123)
    maps = [make_grain_structure((size, size), stage=stage, seed=s, device=device) for s in HELD_OUT_SEEDS]
    return np.concatenate([model.normalise(sample_patches(prepare_input(model, m), n, model.config["patch_size"],
                                                          rng)) for m in maps])


def relative_error(model: VAEModel, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch MSE of ``decode(encode(patch))`` (posterior means) and per-patch variance, normalised units."""
    with torch.no_grad():
        x = torch.from_numpy(patches).unsqueeze(1)
        decoded = model.net.decode(model.net.encode(x)[0])[:, 0].numpy()
    return ((decoded - patches) ** 2).mean(axis=(1, 2)), patches.var(axis=(1, 2))


def reconstruction_row(model: VAEModel, stage: str, size: int, device: str) -> str:
    """Held-out MSE of ``stage`` against the patches' variance and paper 000's figure."""
    mse, var = relative_error(model, held_out_patches(model, stage, size, device))
    return (f"| {stage} | {len(mse)} | {mse.mean():.2e} | {mse.std():.1e} | {var.mean():.2e} | "
            f"{mse.mean() / var.mean():.2f} | {mse.mean() / PAPER_000_MSE:.1f} |")


def _shares(quality) -> str:
    return ", ".join(f"{r.statistic} {100 * r.inside_share:.0f} %" for r in quality.table.itertuples())


def generation_rows(model: VAEModel, train: list[np.ndarray], stage: str, size: int, device: str,
                    n: int = 64) -> list[str]:
    """Sampled fingerprints of ``stage``, decoded and through the grain bridge, judged against a held-out map."""
    z = np.concatenate([encode(model, m, stride=model.config["patch_size"] // 2).reshape(
        -1, model.config["latent_dim"]) for m in train])
    walk = sample_latent(model, z, n=n, seed=0, labels=True)
    real = make_grain_structure((2 * size, 2 * size), stage=stage, seed=200, device=device)
    decoded = walk_quality(model, walk, real)
    spread = float(walk.images.std(axis=0).mean() / model.config["scale"])
    rows = [f"| {stage} | decoded | {n} | {spread:.3f} | {_shares(decoded)} | {'yes' if decoded.passed else 'no'} |"]
    start = time.perf_counter()
    head = fit_grain_head(model, train, device=device)
    p = model.config["patch_size"]
    maps = [grains_from_fingerprint(head, zz, (p, p), seed=k, device=device) for k, zz in enumerate(walk.z)]
    bridge = generation_quality(maps, real_patches(model, real, "grains")[0], kind="grains")
    rows.append(f"| {stage} | grain bridge ({time.perf_counter() - start:.0f} s) | {n} | labels | {_shares(bridge)} | "
                f"{'yes' if bridge.passed else 'no'} |")
    return rows


def train(args: argparse.Namespace) -> tuple[VAEModel, list[list[np.ndarray]], float, int]:
    """The trained model, the training maps per stage, the wall time and the optimiser steps."""
    maps = [[make_grain_structure((args.map, args.map), stage=stage, seed=s, device=args.device)
             for s in range(args.images)] for stage in STAGES]
    cancel = threading.Event()
    timer = threading.Timer(args.seconds or 1e9, cancel.set)
    gen = train_vae_iter([m for stage in maps for m in stage], architecture="conv", patch_size=args.patch,
                         latent_dim=args.latent, epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr,
                         beta=args.beta, patches_per_image=args.patches, patience=args.epochs, seed=0,
                         device=args.device, cancel=cancel, channels=args.channels, pool=args.pool)
    start, steps = time.perf_counter(), 0
    timer.start()
    try:
        while True:
            progress = next(gen)
            steps = progress.step
            if progress.val_loss is not None:
                print(f"{time.perf_counter() - start:6.0f} s  step {steps}  {progress.message}", flush=True)
    except StopIteration as stop:
        model = stop.value
    finally:
        timer.cancel()
    return model, maps, time.perf_counter() - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--latent", type=int, default=256)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 32])
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--beta", type=float, default=1e-3, help="weight of the KL term (paper 000: 1)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=None, help="stop training after this wall time")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--map", type=int, default=256, help="side of the training and held-out maps")
    parser.add_argument("--images", type=int, default=4, help="training maps per stage")
    parser.add_argument("--patches", type=int, default=512, help="random rotated patches per training map")
    parser.add_argument("--samples", type=int, default=64, help="sampled fingerprints judged per stage (0: none)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" /
                        "napari_microfingerprint" / "data")
    args = parser.parse_args()
    model, maps, seconds, steps = train(args)
    model.net.cpu().eval()
    model.config["data"] = {"name": "potts-grains", "trained_with": "scripts/train_grain_model.py",
                            "images": [f"make_grain_structure(({args.map}, {args.map}), stage={s!r}, "
                                       f"seed=0..{args.images - 1})" for s in STAGES],
                            "held_out": [f"seeds {HELD_OUT_SEEDS} per stage"], "patches_per_image": args.patches,
                            "batch_size": args.batch, "learning_rate": args.lr, "optimiser_steps": steps,
                            "seconds": round(seconds, 1), "device": args.device}
    args.out.mkdir(parents=True, exist_ok=True)
    print("wrote", *save_model(model, args.out / "potts_grains_vae"), flush=True)
    print(f"training: {seconds:.0f} s on {args.device}, {steps} optimiser steps of {args.batch} patches", flush=True)
    print("| stage | held-out patches | MSE (normalised) | sd | patch variance | MSE / variance | x paper 000 |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for stage in STAGES:
        print(reconstruction_row(model, stage, args.map, args.device), flush=True)
    if args.samples == 0:
        return
    print("| stage | generated by | samples | spread between decoded samples | inside the real 2 sd | passes |")
    print("|---|---|---|---|---|---|", flush=True)
    for stage, train_maps in zip(STAGES, maps):
        print(*generation_rows(model, train_maps, stage, args.map, args.device, args.samples), sep="\n", flush=True)


if __name__ == "__main__":
    main()
