"""Reading and writing microstructures as ``.npy``, ``.npz`` and ``.tif`` files, keeping the pixel scale.

TIFF files written here carry a JSON image description ``{"napari_microfingerprint": {"scale": [...],
"layer_type": ...}}`` and standard resolution tags; reading falls back to ImageJ's ``spacing`` and the
resolution tags for TIFFs from elsewhere. ``.npz`` files may hold ``data`` (or a single array), ``scale`` and ``layer_type``.
Nothing is unpickled (``allow_pickle=False`` everywhere).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .validation import InputError

SUPPORTED_EXTENSIONS = (".npy", ".npz", ".tif", ".tiff")
_KEY = "napari_microfingerprint"
#: Integer arrays with at most this many distinct values are read as Labels.
MAX_PHASE_VALUES = 32


@dataclass
class Microstructure:
    """An array read from disk with the layer type it should become and its pixel scale."""

    data: np.ndarray
    layer_type: str
    scale: tuple[float, ...] | None = None
    metadata: dict = field(default_factory=dict)


def guess_layer_type(arr: np.ndarray) -> str:
    """``"labels"`` for boolean arrays, integer arrays with few values (phases) and integer arrays whose values
    run 0..N or 1..N without gaps (grain label maps, except 8-bit data); ``"image"`` otherwise."""
    if arr.dtype == bool:
        return "labels"
    if not np.issubdtype(arr.dtype, np.integer):
        return "image"
    values = np.unique(arr)
    if values.size <= MAX_PHASE_VALUES:
        return "labels"
    if arr.dtype.itemsize > 1 and values[0] >= 0 and values[0] <= 1 and values[-1] - values[0] + 1 == values.size:
        return "labels"
    return "image"


def _tiff_scale(tif: tifffile.TiffFile, ndim: int) -> tuple[tuple[float, ...] | None, str | None]:
    page = tif.pages[0]
    try:
        info = json.loads(page.description)[_KEY]
        scale = info.get("scale")
        return (tuple(float(s) for s in scale) if scale else None), info.get("layer_type")
    except (ValueError, KeyError, TypeError):
        pass
    tags = page.tags
    if "XResolution" in tags and "YResolution" in tags:
        xr, yr = tags["XResolution"].value, tags["YResolution"].value
        if xr[0] and yr[0] and (xr != (1, 1) or yr != (1, 1)):
            sx, sy = xr[1] / xr[0], yr[1] / yr[0]
            z = (tif.imagej_metadata or {}).get("spacing", 1.0) if ndim == 3 else None
            return ((float(z), sy, sx) if ndim == 3 else (sy, sx)), None
    return None, None


def read_microstructure(path: str | Path) -> Microstructure:
    """Read a ``.npy``, ``.npz`` or ``.tif/.tiff`` microstructure; raise :class:`InputError` with the reason when
    the file cannot be read (unknown extension, corrupt file, object arrays, no array inside)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputError(f"{p.name}: extension {ext!r} is not supported; use one of {', '.join(SUPPORTED_EXTENSIONS)}.")
    scale, layer_type = None, None
    try:
        if ext == ".npy":
            data = np.load(p, allow_pickle=False)
        elif ext == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                keys = list(npz.files)
                key = "data" if "data" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise InputError(f"{p.name} holds several arrays {keys} and none is called 'data'.")
                data = npz[key]
                if "scale" in keys:
                    scale = tuple(float(s) for s in npz["scale"])
                if "layer_type" in keys and str(npz["layer_type"]) in ("image", "labels"):
                    layer_type = str(npz["layer_type"])
        else:
            with tifffile.TiffFile(p) as tif:
                data = tif.asarray()
                scale, layer_type = _tiff_scale(tif, data.ndim)
    except InputError:
        raise
    except Exception as err:  # corrupt or truncated files raise many exception types
        raise InputError(f"{p.name} could not be read ({type(err).__name__}: {err}); is the file complete?") from err
    if scale is not None and len(scale) != data.ndim:
        scale = None
    return Microstructure(data, layer_type or guess_layer_type(data), scale, {"source": str(p)})


def write_microstructure(path: str | Path, data, layer_type: str = "labels",
                         scale=None, metadata: dict | None = None) -> str:
    """Write an array to ``.tif``/``.tiff`` (with scale and layer type in the description), ``.npy``
    (array only) or ``.npz`` (``data`` and ``scale``). Returns the path written."""
    p = Path(path)
    ext = p.suffix.lower()
    arr = np.asarray(data)
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputError(f"{p.name}: extension {ext!r} is not supported; use .tif, .npy or .npz.")
    if arr.dtype == np.int64 and layer_type == "labels" and arr.min() >= 0 and arr.max() < 2**31:
        arr = arr.astype(np.int32)
    if ext == ".npy":
        np.save(p, arr, allow_pickle=False)
    elif ext == ".npz":
        extra = {"scale": np.asarray(scale, dtype=float)} if scale is not None else {}
        np.savez_compressed(p, data=arr, layer_type=np.array(layer_type), **extra)
    else:
        sc = [float(s) for s in scale] if scale is not None else None
        desc = json.dumps({_KEY: {"scale": sc, "layer_type": layer_type, **(metadata or {})}}, default=str)
        kwargs = {}
        if sc is not None:
            kwargs["resolution"] = (1.0 / sc[-1], 1.0 / sc[-2])
        tifffile.imwrite(p, arr, description=desc, metadata=None, **kwargs)
    return str(p)
