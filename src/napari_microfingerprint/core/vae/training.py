"""Training a VAE on patches of micrographs or grain label maps (papers 000 section 3.2, 001 sections 2.1-2.5,
002 section 3), as a cancellable generator; the trained model carries its config and history."""
from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..device import resolve_device
from ..io import guess_layer_type
from ..segmentation import labels_to_distance
from ..threads import governed
from ..validation import (
    InputError,
    check_choice,
    check_fits,
    check_float,
    check_greyscale,
    check_image,
    check_int,
    check_labels,
    check_positive,
)
from . import losses
from .data import WHITE_BALANCE, sample_patches, split_indices, white_balance
from .models import MODELS, VAE, build_model

#: Reconstruction loss per architecture, as in its paper.
DEFAULT_LOSS = {"conv": "mse", "resnet18": "bce_spectral", "texture": "style"}
#: Latent size per architecture, as in its paper.
DEFAULT_LATENT = {"conv": 256, "resnet18": 256, "texture": 64}
#: The settings each paper states (000 section 3.2: 256-pixel patches, latent 256, Adam at 1e-5, batches of 8;
#: 001 sections 2.1, 3.1: 256-pixel patches, 1000 patches per image, 1000 epochs; 002 sections 3-4: 128-pixel
#: patches, latent 64). Settings a paper leaves open keep the :func:`train_vae_iter` defaults.
PAPER_SETTINGS = {
    "conv": {"patch_size": 256, "latent_dim": 256, "learning_rate": 1e-5, "batch_size": 8},
    "resnet18": {"patch_size": 256, "latent_dim": 256, "patches_per_image": 1000, "epochs": 1000},
    "texture": {"patch_size": 128, "latent_dim": 64},
}
#: KL weight per input transform when none is given: 1 (the per-pixel evidence lower bound, :func:`kl_weight`)
#: except for grain distance maps, whose decoder it collapses to the patch mean (BENCHMARKS.md).
DEFAULT_BETA = {"distance": 1e-3}
#: Input transforms: grain label maps to distance maps, per-image white balance, or plain intensities.
TRANSFORMS = ("auto", "distance", "percentile", "intensity")
LOSSES = ("mse", "bce", "bce_spectral", "style")
#: Validation patches shown as example reconstructions after every epoch.
N_EXAMPLES = 4


def empty_history() -> dict:
    return {"train_loss": [], "val_loss": [], "train_reconstruction": [], "train_kl": [], "val_reconstruction": [],
            "val_kl": [], "seconds": []}


@dataclass
class VAEModel:
    """A trained VAE: the network, its JSON-serialisable ``config`` (architecture, sizes, loss, input transform,
    normalisation statistics, data description) and ``history`` (per-epoch losses and times)."""

    net: VAE
    config: dict
    history: dict = field(default_factory=empty_history)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """The stored linear scaling of transformed data (see :func:`transform_input`) to [0, 1]."""
        return np.clip((x - self.config["offset"]) / self.config["scale"], 0.0, 1.0).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return x * self.config["scale"] + self.config["offset"]


@dataclass
class TrainingProgress:
    """Yielded during training: the step within the run and the latest losses. At the end of an epoch
    ``val_loss`` is set and ``examples`` holds validation patches beside their reconstructions,
    ``(N_EXAMPLES, L, 2 L)`` in normalised units."""

    step: int
    total: int
    epoch: int
    train_loss: float
    val_loss: float | None
    message: str
    examples: np.ndarray | None = None


def kl_weight(config: dict) -> float:
    """Weight of the KL divergence in the training objective: ``beta / m`` for patches of ``m`` pixels. The
    reconstruction losses are means over pixels and the KL divergence a sum over latent dimensions, so this is
    the evidence lower bound (reconstruction and KL both summed per patch, as paper 001's BCE) divided by ``m``.
    Summing the KL over the latent against a per-pixel mean loss collapsed every posterior. Even ``beta = 1``
    treats the MSE as a Gaussian likelihood of variance 1/2, far above the 0.02-0.065 variance of grain distance
    maps in [0, 1] units, so a grain decoder returned each patch's mean (held-out MSE over variance 1.00);
    ``beta = 1e-3`` learnt (0.23 on late-stage patches in the same 240 s, BENCHMARKS.md): :data:`DEFAULT_BETA`."""
    return float(config["beta"]) / float(config["patch_size"]) ** 2


def transform_input(image: np.ndarray, transform: str, percentiles: Sequence[float] = WHITE_BALANCE) -> np.ndarray:
    """A 2D image in the model's input units: a label map's Euclidean distance map (paper 000 section 3.1), a
    white-balanced micrograph (``"percentile"``, paper 001 section 2.2) or the validated intensities."""
    if transform == "distance":
        lab = check_labels(image, "label map")
        if np.unique(lab).size < 2:
            raise InputError("a label map holds a single grain; it has no boundaries to learn. "
                             "Segment the grains first or use another layer.")
        return labels_to_distance(lab)
    grey = check_greyscale(image, "image").astype(np.float32)
    return white_balance(grey, tuple(percentiles)) if transform == "percentile" else grey


def _as_inputs(images: Sequence[np.ndarray], transform: str, patch_size: int) -> tuple[list[np.ndarray], str]:
    """Validated, transformed 2D arrays. ``"auto"`` picks distance maps when every array looks like a label map
    with more than two labels (:func:`~..io.guess_layer_type`; 8-bit micrographs do not) and the per-image white
    balance otherwise."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    if isinstance(images, (str, bytes)) or not isinstance(images, Iterable):
        raise InputError(f"images must be a list of 2D arrays, got {type(images).__name__}.")
    images = list(images)
    if len(images) == 0:
        raise InputError("images is empty: no training images were given.")
    arrays = [check_image(im, f"training image {k + 1} of {len(images)}") for k, im in enumerate(images)]
    if transform == "auto":
        grains = all(guess_layer_type(a) == "labels" and np.unique(a).size > 2 for a in arrays)
        transform = "distance" if grains else "percentile"
    for k, a in enumerate(arrays):
        where = f"training image {k + 1} of {len(arrays)}"
        if a.ndim != 2:
            raise InputError(f"{where} has shape {a.shape}; training images must be 2D (greyscale or labels). "
                             "Convert RGB to grey first.")
        if min(a.shape) < patch_size:
            raise InputError(f"{where} ({a.shape[0]} x {a.shape[1]}) is smaller than the patch size {patch_size}; "
                             "choose a smaller patch size or leave that image out.")
    return [transform_input(a, transform) for a in arrays], transform


def reconstruction_loss(name: str, x_hat: torch.Tensor, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """The named reconstruction loss (see :mod:`.losses`)."""
    if name == "mse":
        return losses.mse(x_hat, x)
    if name == "bce":
        return losses.bce(x_hat, x)
    if name == "bce_spectral":
        return losses.bce_spectral(x_hat, x, alpha)
    if name == "style":
        return losses.style(x_hat, x)
    raise InputError(f"unknown loss {name!r}; use mse, bce, bce_spectral or style.")


@governed
def train_vae_iter(
    images: Sequence[np.ndarray],
    architecture: str = "conv",
    patch_size: int = 64,
    latent_dim: int | None = None,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    beta: float | None = None,
    loss: str | None = None,
    alpha: float = 0.5,
    patches_per_image: int = 64,
    transform: str = "auto",
    patience: int = 5,
    seed: int = 0,
    device: str = "auto",
    cancel: threading.Event | None = None,
    resume: VAEModel | None = None,
    channels: Sequence[int] | None = None,
    pool: int | None = None,
) -> Generator[TrainingProgress, None, VAEModel]:
    """Generator form of :func:`train_vae`: yields :class:`TrainingProgress` per batch (and per epoch, with
    example reconstructions) and returns the model with the best validation loss. Training stops early after
    ``patience`` epochs without improvement; a cancel or a non-finite loss also returns the best weights so far,
    the latter with a warning and the reason in ``model.history["stopped"]``.

    ``transform``: ``"distance"`` (grain label maps → distance maps, paper 000 section 3.1), ``"percentile"``
    (per-image white balance, paper 001 section 2.2), ``"intensity"`` (raw greyscale) or ``"auto"``.
    Every transform is followed by a linear scaling to [0, 1] from the 0.5 / 99.5 percentiles of the training
    patches, stored in the config with the transform. ``loss`` defaults to the architecture's paper
    (:data:`DEFAULT_LOSS`); the history holds the reconstruction and KL terms separately, and after training the
    loss on the held-out test patches. ``beta`` (the KL weight, :func:`kl_weight`) defaults to
    :data:`DEFAULT_BETA` for the transform: 1e-3 for grain distance maps, 1 otherwise.

    ``channels`` (per block) and, for ``conv``, ``pool`` (the pooling factor after each block, paper 000: 4) set
    the architecture. Paper 000's three blocks pooling by 4 leave a 1 x 1 map of a 64-px patch; ``pool=2`` keeps
    8 x 8 and learnt faster (held-out MSE over the patches' variance 0.39 against 0.51 after 1350 steps on grain
    maps; BENCHMARKS.md)."""
    check_choice(architecture, "architecture", sorted(MODELS))
    if pool is not None:
        if architecture != "conv":
            raise InputError(f"pool sets the conv architecture's pooling; {architecture!r} has none to set.")
        pool = check_int(pool, "pool", 2, 8)
    patch_size = check_int(patch_size, "patch_size", 8, 4096)
    if latent_dim is not None:
        latent_dim = check_int(latent_dim, "latent_dim", 1, 4096)
    epochs = check_int(epochs, "epochs", 1, 100_000)
    batch_size = check_int(batch_size, "batch_size", 1, 65_536)
    learning_rate = check_positive(learning_rate, "learning_rate")
    if beta is not None:
        beta = check_float(beta, "beta", 0.0)
    alpha = check_float(alpha, "alpha", 0.0, 1.0)
    if loss is not None:
        check_choice(loss, "loss", LOSSES)
    patches_per_image = check_int(patches_per_image, "patches_per_image", 1, 1_000_000)
    check_choice(transform, "transform", TRANSFORMS)
    patience = check_int(patience, "patience", 0)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    if resume is not None and not isinstance(resume, VAEModel):
        raise InputError(f"resume must be a VAEModel to continue training, got {type(resume).__name__}.")
    inputs, transform = _as_inputs(images, transform, patch_size)
    if beta is None:
        beta = DEFAULT_BETA.get(transform, 1.0)
    check_fits(len(inputs) * patches_per_image * patch_size**2 * 4 * 3,
               f"{patches_per_image} patches of {patch_size}^2 from each of {len(inputs)} images",
               "lower patches_per_image or the patch size")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    patches = np.concatenate([sample_patches(a, patches_per_image, patch_size, rng) for a in inputs])
    train_idx, val_idx, test_idx = split_indices(len(patches), rng)
    if len(val_idx) == 0 or len(train_idx) < batch_size:
        raise InputError(f"{len(patches)} patches are too few for batches of {batch_size} and a validation split; "
                         "raise patches_per_image or lower batch_size.")
    dev = resolve_device(device)
    if resume is not None:
        model = resume
        for key, values in empty_history().items():
            model.history.setdefault(key, values)
    else:
        lo, hi = np.percentile(patches[train_idx], [0.5, 99.5])
        config = {"architecture": architecture, "patch_size": patch_size,
                  "latent_dim": latent_dim or DEFAULT_LATENT.get(architecture, 64), "in_channels": 1,
                  "loss": loss or DEFAULT_LOSS.get(architecture, "mse"), "alpha": alpha, "beta": beta,
                  "transform": transform, "white_balance": list(WHITE_BALANCE),
                  "offset": float(lo), "scale": float(max(hi - lo, 1e-6)),
                  "data": {"images": len(inputs), "shapes": [list(a.shape) for a in inputs],
                           "patches": int(len(patches)), "split": [len(train_idx), len(val_idx), len(test_idx)]}}
        config["model_options"] = {} if channels is None else \
            {("decoder_channels" if architecture == "texture" else "channels"): [int(c) for c in channels]}
        if pool is not None:
            config["model_options"]["pool"] = pool
        net = build_model(architecture, patch_size=patch_size, latent_dim=config["latent_dim"],
                          **config["model_options"])
        model = VAEModel(net, config)
    cfg = model.config
    data = torch.from_numpy(model.normalise(patches)).unsqueeze(1)
    shown = data[val_idx[:N_EXAMPLES]]
    net = model.net.to(dev)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=learning_rate)
    # bfloat16 where the GPU has it (float16 would need a gradient scaler against underflow); float32 otherwise
    use_amp = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    best = (math.inf, {k: v.detach().clone() for k, v in net.state_dict().items()})
    stale = 0
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        start = time.perf_counter()
        net.train()
        order = rng.permutation(train_idx)
        running = np.zeros((steps_per_epoch, 2))
        for b in range(steps_per_epoch):
            if cancel is not None and cancel.is_set():
                net.load_state_dict(best[1])
                net.eval()
                return model
            batch = data[order[b * batch_size:(b + 1) * batch_size]].to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
                x_hat, mu, logvar = net(batch)
            rec = reconstruction_loss(cfg["loss"], x_hat.float(), batch, cfg["alpha"])
            kl = losses.kl_divergence(mu.float(), logvar.float())
            value = rec + kl_weight(cfg) * kl
            if not torch.isfinite(value):
                net.load_state_dict(best[1])
                net.eval()
                reason = (f"the loss became {float(value.detach())} at epoch {epoch + 1}; training stopped and the "
                          "last good weights were kept. Lower the learning rate.")
                model.history["stopped"] = reason
                warnings.warn(reason, RuntimeWarning, stacklevel=2)
                return model
            opt.zero_grad()
            value.backward()
            opt.step()
            running[b] = float(rec.detach()), float(kl.detach())
            step += 1
            yield TrainingProgress(step, total, epoch + 1, float(running[b] @ (1.0, kl_weight(cfg))), None,
                                   f"epoch {epoch + 1}/{epochs}")
        val_rec, val_kl = evaluate_loss(model, data[val_idx], dev, batch_size)
        train_rec, train_kl = running.mean(axis=0)
        record = {"train_reconstruction": train_rec, "train_kl": train_kl, "val_reconstruction": val_rec,
                  "val_kl": val_kl, "train_loss": train_rec + kl_weight(cfg) * train_kl,
                  "val_loss": val_rec + kl_weight(cfg) * val_kl, "seconds": time.perf_counter() - start}
        for key, value in record.items():
            model.history[key].append(float(value))
        val = record["val_loss"]
        yield TrainingProgress(step, total, epoch + 1, record["train_loss"], val,
                               f"epoch {epoch + 1}/{epochs}: validation loss {val:.4g}",
                               examples=example_reconstructions(model, shown))
        if val < best[0]:
            best, stale = (val, {k: v.detach().clone() for k, v in net.state_dict().items()}), 0
        else:
            stale += 1
            if stale >= patience:
                break
    net.load_state_dict(best[1])
    if len(test_idx):
        test_rec, test_kl = evaluate_loss(model, data[test_idx], dev, batch_size)
        model.history["test_reconstruction"] = test_rec
        model.history["test_loss"] = test_rec + kl_weight(cfg) * test_kl
    net.eval()
    return model


def evaluate_loss(model: VAEModel, data: torch.Tensor, device: torch.device,
                  batch_size: int = 32) -> tuple[float, float]:
    """Mean reconstruction loss and KL divergence (posterior means decoded) of normalised patches
    ``(N, 1, L, L)``, each with the reduction its function in :mod:`.losses` states."""
    net, cfg = model.net, model.config
    net.eval()
    totals, count = np.zeros(2), 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            batch = data[i:i + batch_size].to(device)
            x_hat, mu, logvar = net(batch)
            totals += len(batch) * np.array([float(reconstruction_loss(cfg["loss"], x_hat, batch, cfg["alpha"])),
                                             float(losses.kl_divergence(mu, logvar))])
            count += len(batch)
    rec, kl = totals / max(count, 1)
    return float(rec), float(kl)


def example_reconstructions(model: VAEModel, patches: torch.Tensor) -> np.ndarray:
    """Normalised patches ``(N, 1, L, L)`` beside their reconstructions from the posterior mean, ``(N, L, 2 L)``."""
    net = model.net
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        mu, _ = net.encode(patches.to(device))
        recon = net.decode(mu).cpu()
    return torch.cat([patches, recon], dim=-1)[:, 0].numpy()


def train_vae(images: Sequence[np.ndarray], **kwargs) -> VAEModel:
    """Train a VAE on random rotated patches of ``images`` (greyscale micrographs, or grain label maps, which
    are turned into distance maps). Keyword arguments are those of :func:`train_vae_iter`."""
    gen = train_vae_iter(images, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
