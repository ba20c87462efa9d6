"""VAE fingerprint benchmarks (issue 4; the analysis figures of issue 5 come from the same models).

    python benchmarks/vae.py throughput [--device cuda]   # training patches/s per architecture at patch 128
    python benchmarks/vae.py grains                       # held-out loss on Potts grains at three stages
    python benchmarks/vae.py microlib                     # phase fraction from MicroLib fingerprints by SVR
    python benchmarks/vae.py regress                      # the table and figure again, from saved fingerprints

``grains`` trains the paper-000 ``conv`` VAE on distance maps of synthetic grain structures (early, intermediate
and late Potts stages), reports the mean squared error of held-out patches (new images) in the normalised units
the model trains on, and how well the first principal component of the fingerprints separates the stages.
``microlib`` trains on patches of the binarised MicroLib micrographs (``../shared/data/tldr_microlib_2d``),
fingerprints unrotated patches and predicts each patch's phase fraction with SVR and ridge regression
(10-fold, as paper 001 section 3.4; and leave-one-image-out), and saves a t-SNE map coloured by phase fraction
to ``docs/microlib_tsne.png``. Tables go to stdout and ``benchmarks/results/vae_<part>.json``; the trained models
to ``benchmarks/results/model_*.{safetensors,json}``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import report

from napari_microfingerprint import encode, make_grain_structure, save_model, train_vae_iter
from napari_microfingerprint.core.analysis import embed, fit_property
from napari_microfingerprint.core.vae.data import load_image_folder, sample_patches
from napari_microfingerprint.core.vae.model_io import prepare_input

RESULTS = Path(__file__).parent / "results"
MICROLIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr_microlib_2d"
STAGES = ("early", "intermediate", "late")


def _run(gen):
    """Drain a training generator; return the model and the wall time of each step."""
    stamps = []
    while True:
        try:
            next(gen)
            stamps.append(time.perf_counter())
        except StopIteration as stop:
            return stop.value, np.diff(stamps)


def throughput(device: str) -> None:
    images = [make_grain_structure((320, 320), stage="late", seed=s, device="cpu") for s in range(2)]
    rows = []
    for arch in ("conv", "resnet18", "texture"):
        batch = 16
        gen = train_vae_iter(images, architecture=arch, patch_size=128, epochs=1, batch_size=batch,
                             patches_per_image=96, device=device, seed=0)
        model, steps = _run(gen)
        train_steps = steps[1:-1]  # without the first step (warm-up) and the validation at the epoch's end
        rows.append({"architecture": arch, "device": str(next(model.net.parameters()).device),
                     "patch": 128, "latent": model.config["latent_dim"], "batch": batch,
                     "parameters_trained": sum(p.numel() for p in model.net.parameters() if p.requires_grad),
                     "patches_per_s": round(batch / float(np.median(train_steps)), 1),
                     "steps_timed": len(train_steps)})
        print(rows[-1], flush=True)
    report(rows, f"vae_throughput_{device}")


def _normalised_patches(model, image, n, rng):
    return model.normalise(sample_patches(prepare_input(model, image), n, model.config["patch_size"], rng))


def _reconstruction_mse(model, patches):
    x = torch.from_numpy(patches).unsqueeze(1)
    with torch.no_grad():
        mu, _ = model.net.encode(x)
        return ((model.net.decode(mu) - x) ** 2).mean(dim=(1, 2, 3)).numpy()


def _separation(pc1: np.ndarray, stages: np.ndarray) -> dict:
    """Separation of stages along PC1: the ROC AUC of each adjacent pair (0.5 = mixed, 1 = separated, either
    direction) and the share of between-stage variance in PC1 (the correlation ratio eta²)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for a, b in zip(STAGES, STAGES[1:]):
        sel = (stages == a) | (stages == b)
        auc = roc_auc_score(stages[sel] == b, pc1[sel])
        out[f"auc_{a}_{b}"] = round(max(auc, 1 - auc), 3)
    means = {s: pc1[stages == s].mean() for s in STAGES}
    between = sum((stages == s).sum() * (means[s] - pc1.mean()) ** 2 for s in STAGES)
    out["eta2"] = round(float(between / ((pc1 - pc1.mean()) ** 2).sum()), 3)
    out["pc1_means"] = [round(float(means[s]), 2) for s in STAGES]
    return out


def grains(args) -> None:
    images, names = [], []
    for stage in STAGES:
        for s in range(args.images):
            images.append(make_grain_structure((256, 256), stage=stage, seed=s, device="cpu"))
            names.append(stage)
    start = time.perf_counter()
    model, _ = _run(train_vae_iter(images, architecture="conv", patch_size=args.patch, latent_dim=args.latent,
                                   epochs=args.epochs, batch_size=16, learning_rate=args.lr,
                                   patches_per_image=args.patches, patience=args.epochs, device=args.device,
                                   seed=0, beta=args.beta))
    train_s = time.perf_counter() - start
    model.net.cpu().eval()
    save_model(model, RESULTS / "model_grains")
    rng = np.random.default_rng(123)
    rows, pcs, stage_of = [], [], []
    for stage in STAGES:
        held_out = [make_grain_structure((256, 256), stage=stage, seed=100 + s, device="cpu") for s in range(3)]
        patches = np.concatenate([_normalised_patches(model, im, 32, rng) for im in held_out])
        mse = _reconstruction_mse(model, patches)
        pcs.append(np.concatenate([encode(model, im, stride=args.patch // 2).reshape(-1, args.latent)
                                   for im in held_out]))
        stage_of += [stage] * len(pcs[-1])
        rows.append({"stage": stage, "held_out_patches": len(patches), "mse_normalised": f"{mse.mean():.2e}",
                     "mse_std": f"{mse.std():.1e}"})
    from sklearn.decomposition import PCA

    z = np.concatenate(pcs)
    pc1 = PCA(n_components=1).fit_transform(z)[:, 0]
    sep = _separation(pc1, np.array(stage_of))
    h = model.history
    for row in rows:
        row.update({"epochs": len(h["val_loss"]), "train_s": round(train_s), "test_split_loss": round(
            h["test_loss"], 5), "patch": args.patch, "latent": args.latent})
    print({"pc1_separation": sep}, flush=True)
    report(rows + [{"stage": "PC1 separation", **sep}], "vae_grains")


def _microlib_images() -> tuple[list[np.ndarray], list[str]]:
    images, names = load_image_folder(MICROLIB)
    keep = [(im, n) for im, n in zip(images, names) if np.unique(im).size == 2]  # the binarised (SEG) ones
    return [(im == im.max()).astype(np.float32) for im, _ in keep], [n for _, n in keep]


def microlib(args) -> None:
    images, names = _microlib_images()
    start = time.perf_counter()
    model, _ = _run(train_vae_iter(images, architecture=args.arch, patch_size=args.patch, latent_dim=args.latent,
                                   epochs=args.epochs, batch_size=32, learning_rate=args.lr,
                                   patches_per_image=args.patches, patience=args.epochs, device=args.device,
                                   seed=0, transform="intensity"))
    train_s = time.perf_counter() - start
    model.net.cpu().eval()
    save_model(model, RESULTS / "model_microlib")
    rng = np.random.default_rng(7)
    patches, groups = [], []
    p = args.patch
    for k, im in enumerate(images):
        for _ in range(args.fingerprints):
            y, x = rng.integers(0, im.shape[0] - p + 1), rng.integers(0, im.shape[1] - p + 1)
            patches.append(im[y:y + p, x:x + p])
            groups.append(k)
    patches = np.stack(patches)
    fractions = patches.mean(axis=(1, 2))
    with torch.no_grad():
        z = torch.cat([model.net.encode(torch.from_numpy(model.normalise(patches[i:i + 256])).unsqueeze(1))[0]
                       for i in range(0, len(patches), 256)]).numpy()
    np.savez(RESULTS / "vae_microlib_fingerprints.npz", z=z, fractions=fractions, groups=np.array(groups))
    rows = regression_table(z, fractions, np.array(groups))
    xy = embed(z, method="tsne")
    _tsne_figure(xy, fractions, Path(__file__).resolve().parents[1] / "docs" / "microlib_tsne.png", len(images))
    for row in rows:
        row.update({"images": len(images), "architecture": args.arch, "patch": p, "latent": args.latent,
                    "epochs": len(model.history["val_loss"]), "train_s": round(train_s),
                    "test_split_loss": round(model.history["test_loss"], 4)})
    report(rows, "vae_microlib")


def regression_table(z: np.ndarray, fractions: np.ndarray, groups: np.ndarray) -> list[dict]:
    """Phase fraction from fingerprints: SVR and ridge, 10-fold and leave-one-image-out. Mean percentage errors
    over the patches with a non-zero fraction, and over those with at least 10 % (paper 001's fractions were
    10-60 %); R² and the mean absolute error over all patches."""
    rows = []
    mixed = fractions >= 0.1
    for label, kwargs in (("10-fold", {"folds": 10}), ("leave-one-image-out", {"groups": groups})):
        for reg in ("svr", "linear"):
            rep = fit_property(z, fractions, model=reg, **kwargs)
            pct = 100 * np.abs(rep.predictions - fractions)[mixed] / fractions[mixed]
            rows.append({"validation": label, "model": reg, "patches": len(fractions), "r2": round(rep.r2, 3),
                         "mpe_nonzero_percent": round(rep.mape, 2), "zero_fraction_patches": rep.zero_values,
                         "mpe_fraction_ge_0.1_percent": round(float(pct.mean()), 2),
                         "patches_ge_0.1": int(mixed.sum()), "mae_points": round(100 * rep.mae, 2)})
            print(rows[-1], flush=True)
    return rows


def _tsne_figure(xy: np.ndarray, fractions: np.ndarray, path: Path, n_images: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=fractions, s=6, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="phase fraction of the patch")
    ax.set_title(f"t-SNE of VAE fingerprints\n{len(xy)} patches of {n_images} MicroLib micrographs", fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["throughput", "grains", "microlib", "regress"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="conv")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=1.0,
                        help="KL weight of 'grains' (the BENCHMARKS figures used 1; train_vae defaults to 1e-3 there)")
    parser.add_argument("--images", type=int, default=4, help="grain images per stage")
    parser.add_argument("--patches", type=int, default=64, help="training patches per image")
    parser.add_argument("--fingerprints", type=int, default=16, help="fingerprinted patches per MicroLib image")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    torch.manual_seed(0)
    if args.part == "throughput":
        throughput(args.device)
    elif args.part == "grains":
        grains(args)
    elif args.part == "regress":
        saved = np.load(RESULTS / "vae_microlib_fingerprints.npz")
        report(regression_table(saved["z"], saved["fractions"], saved["groups"]), "vae_microlib_regression")
        _tsne_figure(embed(saved["z"], method="tsne"), saved["fractions"],
                     Path(__file__).resolve().parents[1] / "docs" / "microlib_tsne.png", len(set(saved["groups"])))
    else:
        microlib(args)


if __name__ == "__main__":
    main()
