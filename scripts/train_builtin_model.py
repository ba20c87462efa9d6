"""Train the VAE shipped with the package (``load_builtin_model("li2018-two-phase")``) and measure it.

Data: the two two-phase micrographs bundled with the package (``load_example("ceramics")`` and
``load_example("sandstone")``, 256 x 256 phase maps; Li et al., Sci. Rep. 8, 13461, 2018, CC BY 4.0, see
``src/napari_microfingerprint/data/ATTRIBUTION.md``). The left 192 columns of each train the model; the right 64
columns are held out. Architecture: paper 000's convolutional VAE at 64 px patches with a 16-dimensional
fingerprint and two blocks (32, 64 channels; paper 000's three blocks would squeeze a 64 px patch through a 1 x 1
map), KL weight 0.1, trained on the CPU with the package's ``train_vae`` (seeded, so a rerun on the same machine
and library versions gives the same weights).

The script prints the held-out reconstruction error (mean squared error in normalised units of the held-out
windows, stride 16) of the trained model against the same architecture untrained and against predicting each
window's mean, and writes ``li2018_two_phase_vae.safetensors`` and ``.json`` into ``--out`` (by default the
package's ``data`` folder).

    python scripts/train_builtin_model.py [--epochs 30] [--patches 256] [--out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_microfingerprint import (
    decode,
    encode,
    fit_descriptor_head,
    generation_quality,
    load_example,
    sample_latent,
    save_model,
    structure_from_fingerprint,
    train_vae,
)
from napari_microfingerprint.core.generation_quality import real_patches
from napari_microfingerprint.core.vae.data import sliding_windows
from napari_microfingerprint.core.vae.model_io import BUILTIN_MODELS, prepare_input
from napari_microfingerprint.core.vae.models import build_model
from napari_microfingerprint.core.vae.training import VAEModel

NAME = "li2018-two-phase"
EXAMPLES = ("ceramics", "sandstone")
HELD_OUT = 64


STRIDE = 16


def held_out_windows(model: VAEModel, image: np.ndarray) -> np.ndarray:
    """The model-input windows that ``encode(model, image, stride=STRIDE)`` fingerprints, in the same order."""
    return sliding_windows(prepare_input(model, image), model.config["patch_size"], STRIDE)[0]


def fingerprints(model: VAEModel, image: np.ndarray) -> np.ndarray:
    """The fingerprints of ``image``'s windows at ``STRIDE``, one row each."""
    return encode(model, image, stride=STRIDE).reshape(-1, model.config["latent_dim"])


def held_out_error(model: VAEModel, images: list[np.ndarray]) -> float:
    """Mean squared error of ``decode(encode(window))`` over the windows of the held-out strips."""
    errors = [((decode(model, fingerprints(model, im)) - held_out_windows(model, im)) ** 2).mean(axis=(1, 2))
              for im in images]
    return float(np.concatenate(errors).mean())


def mean_error(model: VAEModel, images: list[np.ndarray]) -> float:
    """The error of predicting each held-out window by its own mean value (a blurry-decoder baseline)."""
    return float(np.concatenate([held_out_windows(model, im).var(axis=(1, 2)) for im in images]).mean())


def fingerprint_checks(model: VAEModel, train: list[np.ndarray], held: list[np.ndarray]) -> list[str]:
    """What the fingerprints are for, on the held-out strips: telling the materials apart (nearest training
    centroid) and generating structures of each material (8 fingerprints sampled like its held-out windows,
    turned into 64^2 structures by the fingerprint -> descriptors bridge and judged by ``generation_quality``
    against the whole micrograph's windows)."""
    lines = []
    centroids = [fingerprints(model, im).mean(axis=0) for im in train]
    right = total = 0
    for k, im in enumerate(held):
        z = fingerprints(model, im)
        nearest = np.argmin([np.linalg.norm(z - c, axis=1) for c in centroids], axis=0)
        right, total = right + int((nearest == k).sum()), total + len(z)
    lines.append(f"held-out windows assigned to their material by the nearest training centroid: {right}/{total}")
    for name, tr, ho in zip(EXAMPLES, train, held):
        head = fit_descriptor_head(model, [tr])
        walk = sample_latent(model, fingerprints(model, ho), n=8, seed=0)
        made = [structure_from_fingerprint(head, z, (64, 64), seed=k).labels for k, z in enumerate(walk.z)]
        real, _ = real_patches(model, load_example(name), "phases")
        lines.append(f"{name}: {generation_quality(made, real).summary()}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patches", type=int, default=256, help="random patches per image and epoch")
    parser.add_argument("--beta", type=float, default=0.1, help="weight of the KL term")
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64],
                        help="conv blocks, pooling by 4 after each: two leave a 4 x 4 map at 64 px")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" /
                        "napari_microfingerprint" / "data")
    args = parser.parse_args()
    train = [load_example(name)[:, :-HELD_OUT] for name in EXAMPLES]
    held = [load_example(name)[:, -HELD_OUT:] for name in EXAMPLES]
    start = time.perf_counter()
    model = train_vae(train, architecture="conv", patch_size=64, latent_dim=16, epochs=args.epochs,
                      patches_per_image=args.patches, patience=args.epochs, beta=args.beta, loss=args.loss, seed=0,
                      channels=args.channels,
                      device="cpu")
    seconds = time.perf_counter() - start
    model.config["data"] = {"name": NAME, "images": [f"li2018 {n}, columns 0-191" for n in EXAMPLES],
                            "held_out": [f"li2018 {n}, columns 192-255" for n in EXAMPLES],
                            "trained_with": "scripts/train_builtin_model.py", "epochs": args.epochs,
                            "patches_per_image": args.patches, "seconds_on_cpu": round(seconds, 1)}
    torch.manual_seed(0)
    untrained = VAEModel(build_model("conv", patch_size=64, latent_dim=16, **model.config["model_options"]),
                         dict(model.config))
    trained_err, untrained_err = held_out_error(model, held), held_out_error(untrained, held)
    print(f"training: {seconds:.0f} s on the CPU, {args.epochs} epochs of {args.patches} patches per image")
    print("| model | held-out MSE (normalised units) |")
    print("|---|---|")
    print(f"| trained ({NAME}) | {trained_err:.4f} |")
    print(f"| same architecture, untrained | {untrained_err:.4f} |")
    print(f"| each window's own mean | {mean_error(model, held):.4f} |")
    print(*fingerprint_checks(model, train, held), sep="\n")
    stem = BUILTIN_MODELS[NAME]["file"]
    args.out.mkdir(parents=True, exist_ok=True)
    paths = save_model(model, args.out / stem)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
