"""VAE model files: safetensors weights plus a JSON config (never a pickle), and fingerprint encode / decode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..segmentation import distance_to_labels
from ..validation import InputError
from .data import WHITE_BALANCE, sliding_windows
from .models import MODELS, build_model
from .training import VAEModel, empty_history, transform_input

FORMAT = "napari-microfingerprint VAE"
_REQUIRED = ("architecture", "patch_size", "latent_dim", "in_channels", "transform", "offset", "scale")


def save_model(model: VAEModel, path: str | Path) -> tuple[str, str]:
    """Write ``<path>.safetensors`` (the weights) and ``<path>.json`` (config and history)."""
    base = Path(path).with_suffix("")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    save_file(weights, str(base.with_suffix(".safetensors")))
    meta = {"format": FORMAT, "version": 1, "config": model.config, "history": model.history}
    base.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return str(base.with_suffix(".safetensors")), str(base.with_suffix(".json"))


def load_model(path: str | Path, device: str = "cpu") -> VAEModel:
    """Read a model written by :func:`save_model`; a missing, corrupt, truncated or mismatched file raises
    :class:`InputError` naming the problem."""
    base = Path(path).with_suffix("")
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"model config {base.with_suffix('.json')} could not be read ({err}).") from err
    config = meta.get("config", {}) if meta.get("format") == FORMAT else {}
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise InputError(f"{base.with_suffix('.json').name} is not a napari-microfingerprint VAE config "
                         f"(missing {', '.join(missing)}).")
    if config["architecture"] not in MODELS:
        raise InputError(f"the model's architecture {config['architecture']!r} is unknown to this version.")
    try:
        weights = load_file(str(base.with_suffix(".safetensors")))
    except Exception as err:  # safetensors raises several error types for truncated or corrupt files
        raise InputError(f"weights {base.with_suffix('.safetensors').name} could not be read "
                         f"({type(err).__name__}: {err}); the file is corrupt or truncated.") from err
    net = build_model(config["architecture"], patch_size=config["patch_size"], latent_dim=config["latent_dim"],
                      **config.get("model_options", {}))
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise InputError(f"the weights do not fit a {config['architecture']} model with patch "
                         f"{config['patch_size']} and latent {config['latent_dim']}: {str(err)[:300]}") from err
    net.to(device).eval()
    return VAEModel(net, config, {**empty_history(), **meta.get("history", {})})


def prepare_input(model: VAEModel, image) -> np.ndarray:
    """The model's input data for an image, through the transform it was trained with
    (:func:`~.training.transform_input`): a label map's distance map, a white-balanced or a plain greyscale image."""
    cfg = model.config
    return transform_input(np.asarray(image), cfg["transform"], cfg.get("white_balance", WHITE_BALANCE))


def encode(model: VAEModel, image, stride: int | None = None) -> np.ndarray:
    """Fingerprint(s) of a 2D image: the posterior mean ``(latent,)`` for a patch-sized image, otherwise a map
    ``(rows, cols, latent)`` from a sliding window with ``stride`` (default half a patch)."""
    data = prepare_input(model, image)
    p = model.config["patch_size"]
    if data.ndim != 2 or min(data.shape) < p:
        raise InputError(f"the image {data.shape} is smaller than the model's patch size {p}; tile or crop it.")
    step = stride or max(1, p // 2)
    windows, corners = sliding_windows(data, p, step)
    device = next(model.net.parameters()).device
    with torch.no_grad():
        batch = torch.from_numpy(model.normalise(windows)).unsqueeze(1).to(device)
        mu = torch.cat([model.net.encode(batch[i:i + 64])[0] for i in range(0, len(batch), 64)]).cpu().numpy()
    if data.shape == (p, p):
        return mu[0]
    rows = len({y for y, _ in corners})
    return mu.reshape(rows, len(corners) // rows, -1)


def decode(model: VAEModel, z) -> np.ndarray:
    """Images decoded from fingerprints ``(latent,)`` or ``(n, latent)``, in the training data's units."""
    zz = torch.as_tensor(np.atleast_2d(np.asarray(z, dtype=np.float32)))
    if zz.shape[1] != model.config["latent_dim"]:
        raise InputError(f"fingerprints have {zz.shape[1]} dimensions; the model expects {model.config['latent_dim']}.")
    device = next(model.net.parameters()).device
    with torch.no_grad():
        out = model.net.decode(zz.to(device))[:, 0].cpu().numpy()
    out = model.denormalise(out)
    return out[0] if np.ndim(z) == 1 else out


def decode_labels(model: VAEModel, z, **kwargs) -> np.ndarray:
    """For distance-map models: decode, then watershed back into grain labels (paper 000 section 3.3)."""
    if model.config["transform"] != "distance":
        raise InputError("this model was trained on intensities, not grain distance maps; use decode().")
    images = decode(model, z)
    if images.ndim == 2:
        return distance_to_labels(np.clip(images, 0, None), **kwargs)
    return np.stack([distance_to_labels(np.clip(im, 0, None), **kwargs) for im in images])
