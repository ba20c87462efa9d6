"""VAE model files: safetensors weights plus a JSON config (never a pickle), and fingerprint encode / decode."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Generator
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..device import resolve_device
from ..progress import Progress, run_to_end
from ..segmentation import distance_to_labels
from ..validation import InputError, check_fingerprints, check_fits, check_int
from .data import WHITE_BALANCE
from .models import MODELS, build_model
from .training import VAEModel, empty_history, transform_input

FORMAT = "napari-microfingerprint VAE"
_REQUIRED = ("architecture", "patch_size", "latent_dim", "in_channels", "transform", "offset", "scale")
#: Windows encoded per forward pass (and per progress step of :func:`encode_iter`).
ENCODE_BATCH = 64
#: Fingerprints decoded per forward pass: bounds the decoder's activations whatever the number asked for.
DECODE_CHUNK = 256


def check_model(model) -> VAEModel:
    """``model`` if it is a :class:`VAEModel`, else :class:`InputError` saying where models come from."""
    if not isinstance(model, VAEModel):
        raise InputError(f"model must be a VAEModel (from train_vae() or load_model()), got {type(model).__name__}.")
    return model


def model_base(path: str | Path) -> Path:
    """The model's path without ``.safetensors`` / ``.json``: ``run.v2`` stays ``run.v2`` (so its files are
    ``run.v2.safetensors`` and ``run.v2.json``), where a plain ``with_suffix("")`` would write ``run.*``."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def save_model(model: VAEModel, path: str | Path) -> tuple[str, str]:
    """Write ``<path>.safetensors`` (the weights) and ``<path>.json`` (config and history)."""
    check_model(model)
    base = model_base(path)
    if base.is_dir() or not base.name:
        raise InputError(f"path={str(path)!r} is a folder; give a file name inside it, e.g. {base / 'model'}.")
    if not base.parent.is_dir():
        raise InputError(f"the folder {base.parent} does not exist; create it first or save elsewhere.")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    weights_path, config_path = Path(f"{base}.safetensors"), Path(f"{base}.json")
    save_file(weights, str(weights_path))
    meta = {"format": FORMAT, "version": 1, "config": model.config, "history": model.history}
    config_path.write_text(json.dumps(meta, indent=2))
    return str(weights_path), str(config_path)


def load_model(path: str | Path, device: str = "cpu") -> VAEModel:
    """Read a model written by :func:`save_model`; a missing, corrupt, truncated or mismatched file raises
    :class:`InputError` naming the problem, and so does a device that does not exist here."""
    target_device = resolve_device(device)
    base = model_base(path)
    weights_path, config_path = Path(f"{base}.safetensors"), Path(f"{base}.json")
    if not config_path.exists() and Path(path).with_suffix(".json").exists():  # saved as run.* by version 0.1
        weights_path, config_path = Path(path).with_suffix(".safetensors"), Path(path).with_suffix(".json")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"model config {config_path} could not be read ({err}).") from err
    config = meta.get("config", {}) if isinstance(meta, dict) and meta.get("format") == FORMAT else {}
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise InputError(f"{config_path.name} is not a napari-microfingerprint VAE config "
                         f"(missing {', '.join(missing)}).")
    if config["architecture"] not in MODELS:
        raise InputError(f"the model's architecture {config['architecture']!r} is unknown to this version.")
    try:
        weights = load_file(str(weights_path))
    except Exception as err:  # safetensors raises several error types for truncated or corrupt files
        raise InputError(f"weights {weights_path.name} could not be read "
                         f"({type(err).__name__}: {err}); the file is corrupt or truncated.") from err
    try:
        net = build_model(config["architecture"], patch_size=config["patch_size"], latent_dim=config["latent_dim"],
                          **config.get("model_options", {}))
        net.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InputError(f"the weights do not fit a {config['architecture']} model with patch "
                         f"{config['patch_size']} and latent {config['latent_dim']}: {str(err)[:300]}") from err
    net.to(target_device).eval()
    return VAEModel(net, config, {**empty_history(), **meta.get("history", {})})


#: Models shipped in the package's ``data`` folder: name -> file stem, what it was trained on (see
#: ``data/ATTRIBUTION.md``; ``scripts/train_builtin_model.py`` and ``scripts/train_grain_model.py`` reproduce
#: them) and which sample image to walk from.
BUILTIN_MODELS: dict[str, dict[str, str]] = {
    "li2018-two-phase": {
        "file": "li2018_two_phase_vae",
        "about": "paper 000's convolutional VAE with two blocks, 64 px patches, 16-dimensional fingerprints, "
                 "trained on the bundled ceramics and sandstone phase maps (Li et al. 2018, CC BY 4.0)",
        "hint": "open the ceramics sample (File > Open Sample; the sandstone is load_example('sandstone')) as the "
                "layer to encode or walk from",
    },
    "potts-grains": {
        "file": "potts_grains_vae",
        "about": "paper 000's convolutional VAE (three blocks pooling by 2), 64 px patches of grain distance "
                 "maps, 256-dimensional fingerprints, trained on the package's own Potts grain structures at the "
                 "early, intermediate and late stage",
        "hint": "open File > Open Sample > Grain structure 2D (Potts grain growth) as the layer to encode or walk "
                "from",
    },
}


def load_builtin_model(name: str = "li2018-two-phase", device: str = "cpu") -> VAEModel:
    """A VAE shipped with the package (:data:`BUILTIN_MODELS`), ready to encode, walk and decode right after
    installing; read with :func:`load_model` (safetensors and JSON, no pickle)."""
    if not isinstance(name, str) or name not in BUILTIN_MODELS:
        raise InputError(f"unknown built-in model {name!r}; choose one of {', '.join(BUILTIN_MODELS)}.")
    data, stem = files("napari_microfingerprint") / "data", BUILTIN_MODELS[name]["file"]
    parts = [data / f"{stem}.safetensors", data / f"{stem}.json"]
    if not all(p.is_file() for p in parts):
        raise InputError(f"the built-in model {name!r} is missing from this installation; reinstall the package, "
                         "or train it with the script its config names (scripts/train_builtin_model.py or "
                         "scripts/train_grain_model.py).")
    if isinstance(data, Path):
        return load_model(parts[0], device=device)
    with tempfile.TemporaryDirectory() as folder:  # a zipped installation: both files side by side on disk
        for p in parts:
            (Path(folder) / p.name).write_bytes(p.read_bytes())
        return load_model(Path(folder) / f"{stem}.safetensors", device=device)


def prepare_input(model: VAEModel, image) -> np.ndarray:
    """The model's input data for an image, through the transform it was trained with
    (:func:`~.training.transform_input`): a label map's distance map, a white-balanced or a plain greyscale image."""
    cfg = check_model(model).config
    return transform_input(image, cfg["transform"], cfg.get("white_balance", WHITE_BALANCE))


def encode(model: VAEModel, image, stride: int | None = None) -> np.ndarray:
    """Fingerprint(s) of a 2D image: the posterior mean ``(latent,)`` for a patch-sized image, otherwise a map
    ``(rows, cols, latent)`` from a sliding window with ``stride`` (default half a patch)."""
    return run_to_end(encode_iter(model, image, stride))


def encode_iter(model: VAEModel, image, stride: int | None = None) -> Generator[Progress, None, np.ndarray]:
    """Generator form of :func:`encode`: yields :class:`Progress` per batch of :data:`ENCODE_BATCH` windows, so
    that a widget can show progress and stop between batches. The windows are views of the image, taken batch by
    batch: a small stride costs time, not a copy of every window."""
    data = prepare_input(model, image)
    p = model.config["patch_size"]
    if data.ndim != 2:
        raise InputError(f"image has shape {data.shape}; fingerprints are taken of 2D images. Pick one slice.")
    if min(data.shape) < p:
        raise InputError(f"the image {data.shape} is smaller than the model's patch size {p}; tile or crop it.")
    step = max(1, p // 2) if stride is None else check_int(stride, "stride", 1)
    views = np.lib.stride_tricks.sliding_window_view(data, (p, p))[::step, ::step]  # no copy
    rows, cols = views.shape[:2]
    device = next(model.net.parameters()).device
    flat = [(r, c) for r in range(rows) for c in range(cols)]
    mu = []
    for i in range(0, len(flat), ENCODE_BATCH):
        yield Progress(i, len(flat), f"encoding {len(flat)} windows")
        batch = np.stack([views[r, c] for r, c in flat[i:i + ENCODE_BATCH]])
        with torch.no_grad():
            x = torch.from_numpy(model.normalise(batch)).unsqueeze(1).to(device)
            mu.append(model.net.encode(x)[0].cpu())
    out = torch.cat(mu).numpy()
    if data.shape == (p, p):
        return out[0]
    return out.reshape(rows, cols, -1)


def decode(model: VAEModel, z) -> np.ndarray:
    """Images decoded from fingerprints ``(latent,)`` or ``(n, latent)``, in the training data's units."""
    check_model(model)
    single = np.ndim(z) == 1
    if np.ndim(z) == 3:  # a fingerprint map (rows, cols, latent) from encode
        z = np.reshape(z, (-1, np.shape(z)[-1]))
    zz = torch.as_tensor(check_fingerprints(z, "z", model.config["latent_dim"]), dtype=torch.float32)
    p = model.config["patch_size"]
    check_fits(len(zz) * p * p * 4 * 2, f"Decoding {len(zz)} fingerprints into {p} x {p} images",
               "decode fewer fingerprints at a time")
    device = next(model.net.parameters()).device
    out = np.empty((len(zz), p, p), dtype=np.float32)
    with torch.no_grad():
        for i in range(0, len(zz), DECODE_CHUNK):
            out[i:i + DECODE_CHUNK] = model.net.decode(zz[i:i + DECODE_CHUNK].to(device))[:, 0].cpu().numpy()
    out = model.denormalise(out)
    return out[0] if single else out


def decode_labels(model: VAEModel, z, **kwargs) -> np.ndarray:
    """For distance-map models: decode, then watershed back into grain labels (paper 000 section 3.3)."""
    if check_model(model).config["transform"] != "distance":
        raise InputError("this model was trained on intensities, not grain distance maps; use decode().")
    images = decode(model, z)
    if images.ndim == 2:
        return distance_to_labels(np.clip(images, 0, None), **kwargs)
    return np.stack([distance_to_labels(np.clip(im, 0, None), **kwargs) for im in images])
