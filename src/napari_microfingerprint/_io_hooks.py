"""npe2 reader and writer contributions: thin wrappers around :mod:`core.io`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.io import SUPPORTED_EXTENSIONS, read_microstructure, write_microstructure


def get_reader(path: str | list[str]) -> Callable | None:
    """Return the reader for ``.npy``, ``.npz``, ``.tif/.tiff``, ``.vti`` paths and ``.raw`` files with the
    ``.raw.json`` sidecar this package writes (it holds the shape), ``None`` otherwise."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or any(Path(p).suffix.lower() not in SUPPORTED_EXTENSIONS for p in paths):
        return None
    if any(Path(p).suffix.lower() == ".raw" and not Path(f"{p}.json").exists() for p in paths):
        return None
    return read_layers


def read_layers(path: str | list[str]) -> list[tuple]:
    """Read each path as one layer; integer arrays with few values become Labels, the rest Images."""
    paths = [path] if isinstance(path, str) else list(path)
    layers = []
    for p in paths:
        ms = read_microstructure(p)
        kwargs: dict[str, Any] = {"name": Path(p).stem, "metadata": ms.metadata}
        if ms.scale is not None:
            kwargs["scale"] = ms.scale
        layers.append((ms.data, kwargs, ms.layer_type))
    return layers


def _write(path: str, data: Any, meta: dict, layer_type: str) -> list[str]:
    return [write_microstructure(path, data, layer_type=layer_type, scale=meta.get("scale"),
                                 metadata={"name": meta.get("name")})]


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer to ``.tif`` (scale kept in the metadata), ``.npy``, ``.npz``, ``.vti`` or ``.raw``."""
    return _write(path, data, meta, "labels")


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write an Image layer to ``.tif`` (scale kept in the metadata), ``.npy``, ``.npz``, ``.vti`` or ``.raw``."""
    return _write(path, data, meta, "image")
