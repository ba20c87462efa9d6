"""Training a VAE on patches of micrographs or grain label maps (papers 000 section 3.2, 001 sections 2.1-2.5,
002 section 3), as a cancellable generator; the trained model carries its config and history."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..device import resolve_device
from ..segmentation import labels_to_distance
from ..validation import InputError, check_greyscale, check_labels
from . import losses
from .data import sample_patches, split_indices
from .models import VAE, build_model

#: Reconstruction loss per architecture, as in its paper.
DEFAULT_LOSS = {"conv": "mse", "resnet18": "bce_spectral", "texture": "style"}
#: Latent size per architecture, as in its paper.
DEFAULT_LATENT = {"conv": 256, "resnet18": 256, "texture": 64}


@dataclass
class VAEModel:
    """A trained VAE: the network, its JSON-serialisable ``config`` (architecture, sizes, loss, input transform,
    normalisation statistics, data description) and ``history`` (per-epoch losses and times)."""

    net: VAE
    config: dict
    history: dict = field(default_factory=lambda: {"train_loss": [], "val_loss": [], "seconds": []})

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Input transform of a patch stack: distance maps for label models, then the stored linear scaling."""
        return np.clip((x - self.config["offset"]) / self.config["scale"], 0.0, 1.0).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return x * self.config["scale"] + self.config["offset"]


@dataclass
class TrainingProgress:
    """Yielded during training: the step within the run and the latest losses."""

    step: int
    total: int
    epoch: int
    train_loss: float
    val_loss: float | None
    message: str


def _as_inputs(images: Sequence[np.ndarray], transform: str) -> tuple[list[np.ndarray], str]:
    """Validated 2D arrays; label maps become Euclidean distance maps (paper 000 section 3.1)."""
    if not images:
        raise InputError("no training images were given.")
    arrays = [np.asarray(im) for im in images]
    if transform == "auto":
        transform = "distance" if all(np.issubdtype(a.dtype, np.integer) and np.unique(a).size > 2 for a in arrays) \
            else "intensity"
    out = []
    for a in arrays:
        if a.ndim != 2:
            raise InputError(f"training images must be 2D (greyscale or labels); got shape {a.shape}. "
                             "Convert RGB to grey first.")
        if transform == "distance":
            lab = check_labels(a, "label map")
            if np.unique(lab).size < 2:
                raise InputError("a label map holds a single grain; it has no boundaries to learn.")
            out.append(labels_to_distance(lab))
        else:
            out.append(check_greyscale(a, "training image").astype(np.float32))
    return out, transform


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


def train_vae_iter(
    images: Sequence[np.ndarray],
    architecture: str = "conv",
    patch_size: int = 64,
    latent_dim: int | None = None,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    beta: float = 1.0,
    loss: str | None = None,
    alpha: float = 0.5,
    patches_per_image: int = 64,
    transform: str = "auto",
    patience: int = 5,
    seed: int = 0,
    device: str = "auto",
    cancel: threading.Event | None = None,
    resume: VAEModel | None = None,
) -> Generator[TrainingProgress, None, VAEModel]:
    """Generator form of :func:`train_vae`: yields :class:`TrainingProgress` per batch and returns the model
    with the best validation loss (early stopping after ``patience`` epochs without improvement; a cancel or a
    NaN loss also returns the best weights so far)."""
    inputs, transform = _as_inputs(images, transform)
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
    else:
        lo, hi = np.percentile(patches[train_idx], [0.5, 99.5])
        config = {"architecture": architecture, "patch_size": patch_size,
                  "latent_dim": latent_dim or DEFAULT_LATENT.get(architecture, 64), "in_channels": 1,
                  "loss": loss or DEFAULT_LOSS.get(architecture, "mse"), "alpha": alpha, "beta": beta,
                  "transform": transform, "offset": float(lo), "scale": float(max(hi - lo, 1e-6)),
                  "data": {"images": len(inputs), "shapes": [list(a.shape) for a in inputs],
                           "patches": int(len(patches)), "split": [len(train_idx), len(val_idx), len(test_idx)]}}
        net = build_model(architecture, patch_size=patch_size, latent_dim=config["latent_dim"])
        model = VAEModel(net, config)
    cfg = model.config
    data = torch.from_numpy(model.normalise(patches)).unsqueeze(1)
    net = model.net.to(dev)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=learning_rate)
    use_amp = dev.type == "cuda"
    best = (math.inf, {k: v.detach().clone() for k, v in net.state_dict().items()})
    stale = 0
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        start = time.perf_counter()
        net.train()
        order = rng.permutation(train_idx)
        running = []
        for b in range(steps_per_epoch):
            if cancel is not None and cancel.is_set():
                net.load_state_dict(best[1])
                return model
            batch = data[order[b * batch_size:(b + 1) * batch_size]].to(dev)
            with torch.autocast(device_type=dev.type, enabled=use_amp):
                x_hat, mu, logvar = net(batch)
            value = reconstruction_loss(cfg["loss"], x_hat.float(), batch, cfg["alpha"]) + \
                cfg["beta"] * losses.kl_divergence(mu.float(), logvar.float())
            if not torch.isfinite(value):
                net.load_state_dict(best[1])
                raise InputError(f"the loss became NaN at epoch {epoch + 1}; the last good weights were kept. "
                                 "Lower the learning rate.")
            opt.zero_grad()
            value.backward()
            opt.step()
            running.append(float(value.detach()))
            step += 1
            yield TrainingProgress(step, total, epoch + 1, running[-1], None, f"epoch {epoch + 1}/{epochs}")
        val = evaluate_loss(model, data[val_idx], dev, batch_size)
        model.history["train_loss"].append(float(np.mean(running)))
        model.history["val_loss"].append(val)
        model.history["seconds"].append(time.perf_counter() - start)
        yield TrainingProgress(step, total, epoch + 1, float(np.mean(running)), val,
                               f"epoch {epoch + 1}/{epochs}: validation loss {val:.4g}")
        if val < best[0]:
            best, stale = (val, {k: v.detach().clone() for k, v in net.state_dict().items()}), 0
        else:
            stale += 1
            if stale >= patience:
                break
    net.load_state_dict(best[1])
    net.eval()
    return model


def evaluate_loss(model: VAEModel, data: torch.Tensor, device: torch.device, batch_size: int = 32) -> float:
    """Mean total loss (reconstruction + beta KL, posterior means) of normalised patches ``(N, 1, L, L)``."""
    net, cfg = model.net, model.config
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            batch = data[i:i + batch_size].to(device)
            x_hat, mu, logvar = net(batch)
            value = reconstruction_loss(cfg["loss"], x_hat, batch, cfg["alpha"]) + \
                cfg["beta"] * losses.kl_divergence(mu, logvar)
            total += float(value) * len(batch)
            count += len(batch)
    return total / max(count, 1)


def train_vae(images: Sequence[np.ndarray], **kwargs) -> VAEModel:
    """Train a VAE on random rotated patches of ``images`` (greyscale micrographs, or grain label maps, which
    are turned into distance maps). Keyword arguments are those of :func:`train_vae_iter`."""
    gen = train_vae_iter(images, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
