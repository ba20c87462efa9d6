"""Whole folders of micrographs: VAE fingerprints (:func:`encode_folder`) and phase or grain segmentation
(:func:`segment_folder`), one image after another in this process or spread over a dask.distributed cluster.

The images are read here, in the calling process (so an unreadable file is named before any work starts, and
the workers need no access to the folder), and sent to the workers; a VAE travels as its config and weight
arrays (no pickled model), and the label files are written here as the results come back.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import write_microstructure
from .memory import keep_freed_memory
from .segmentation import segment_grains, segment_grains_iter, segment_phases, segment_phases_iter
from .vae.data import IMAGE_EXTENSIONS
from .vae.model_io import check_model
from .validation import InputError, check_int, to_greyscale

KINDS = ("phases", "grains")
#: Chunks of images per worker, for balance.
CHUNKS_PER_WORKER = 2


# ---------------------------------------------------------------------------------------------------- reading

def image_files(folder: str | Path) -> list[Path]:
    """The image files (:data:`~.vae.data.IMAGE_EXTENSIONS`) directly in ``folder``, sorted by name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; choose a folder of image files.")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"{root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); choose another folder.")
    return files


def read_image(path: str | Path, allow_3d: bool = False) -> np.ndarray:
    """A 2D image file (3D too with ``allow_3d``) as an array; RGB(A) becomes greyscale (the package's
    :func:`~.validation.to_greyscale`). :class:`InputError` names a file that cannot be read or has the wrong
    number of dimensions."""
    from skimage.io import imread

    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False) if p.suffix.lower() == ".npy" else imread(p)
    except Exception as err:  # noqa: BLE001 - imageio, tifffile and PIL raise many error types for damaged files
        raise InputError(f"{p.name} could not be read ({type(err).__name__}: {err}); remove or replace it.") from err
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = to_greyscale(arr, rgb=True)
    wanted = (2, 3) if allow_3d else (2,)
    if arr.ndim not in wanted:
        raise InputError(f"{p.name} has shape {arr.shape}; {' or '.join(f'{n}D' for n in wanted)} images (or RGB) "
                         "are needed. Remove it from the folder or convert it.")
    return arr


def _read_all(files: Sequence[Path], allow_3d: bool = False) -> list[np.ndarray]:
    return [read_image(p, allow_3d) for p in files]


# -------------------------------------------------------------------------------------------------- execution

def _is_serial(client) -> bool:
    return client is None or (isinstance(client, str) and client == "serial")


def _chunks(n: int, n_workers: int) -> list[range]:
    """Index ranges splitting ``n`` items into about :data:`CHUNKS_PER_WORKER` chunks per worker."""
    k = max(1, min(n, CHUNKS_PER_WORKER * max(1, n_workers)))
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _n_workers(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def _with_file(name: str, func, *args, **kwargs):
    """``func(*args, **kwargs)``, with the file name put in front of an :class:`InputError`'s message."""
    try:
        return func(*args, **kwargs)
    except InputError as err:
        raise InputError(f"{name}: {err}") from err


# ------------------------------------------------------------------------------------------------ fingerprints

def model_state(model) -> dict[str, Any]:
    """A VAE as plain data for the workers: its JSON config and its weights as numpy arrays."""
    weights = {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}
    return {"config": model.config, "weights": weights}


def model_from_state(state: dict[str, Any]):
    """The VAE (on the CPU, in eval mode) of :func:`model_state`'s data."""
    import torch

    from .vae.models import build_model
    from .vae.training import VAEModel

    cfg = state["config"]
    net = build_model(cfg["architecture"], patch_size=cfg["patch_size"], latent_dim=cfg["latent_dim"],
                      **cfg.get("model_options", {}))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state["weights"].items()}, strict=True)
    return VAEModel(net.eval(), cfg)


def _fingerprint_rows(name: str, fp: np.ndarray, stride: int | None) -> list[dict]:
    """Rows of one image: one (the image's fingerprint; for a map the mean of its windows) without a stride,
    one per window at its top-left corner ``y, x`` with one."""
    def row(z: np.ndarray, **where: int) -> dict:
        return {"file": name, **where, **{f"z{k}": float(v) for k, v in enumerate(z)}}

    if stride is None:
        return [row(fp if fp.ndim == 1 else fp.reshape(-1, fp.shape[-1]).mean(axis=0))]
    if fp.ndim == 1:
        return [row(fp, y=0, x=0)]
    return [row(fp[i, j], y=i * stride, x=j * stride) for i in range(fp.shape[0]) for j in range(fp.shape[1])]


def _encode_chunk(model, names: Sequence[str], images: Sequence[np.ndarray], stride: int | None) -> list[dict]:
    """Fingerprint rows of a chunk of images with a model object."""
    from .vae.model_io import encode

    rows: list[dict] = []
    for name, image in zip(names, images):
        rows += _fingerprint_rows(name, _with_file(name, encode, model, image, stride), stride)
    return rows


def encode_chunk(state: dict[str, Any], names: Sequence[str], images: Sequence[np.ndarray],
                 stride: int | None) -> list[dict]:
    """A worker's task: rebuild the VAE from :func:`model_state`'s data and fingerprint a chunk of images."""
    keep_freed_memory()
    return _encode_chunk(model_from_state(state), names, images, stride)


def encode_folder(model, folder: str | Path, stride: int | None = None, client=None) -> pd.DataFrame:
    """VAE fingerprints of every image in ``folder`` (sorted by name), with :func:`~.vae.model_io.encode`.

    Without a ``stride``: one row per image, its fingerprint (for an image larger than the model's patch, the
    mean of the fingerprints of its windows at half a patch's stride). With a ``stride``: one row per window,
    with the window's top-left corner ``y, x``. Columns ``file``, (``y``, ``x``), ``z0 .. z{d-1}``.

    ``client``: ``None`` (or ``"serial"``) runs here; a :class:`distributed.Client` or a scheduler address
    spreads chunks of images over the workers, which rebuild the model from its config and weight arrays."""
    check_model(model)
    if stride is not None:
        check_int(stride, "stride", 1)
    files = image_files(folder)
    images = _read_all(files)
    names = [p.name for p in files]
    patch = int(model.config["patch_size"])
    small = [n for n, im in zip(names, images) if min(im.shape) < patch]
    if small:
        raise InputError(f"{', '.join(small[:5])} {'is' if len(small) == 1 else 'are'} smaller than the model's "
                         f"patch size {patch}; crop or remove {'it' if len(small) == 1 else 'them'}.")
    if _is_serial(client):
        rows = _encode_chunk(model, names, images, stride)
    else:
        rows = _encode_distributed(client, model, names, images, stride)
    return pd.DataFrame(rows)


def _encode_distributed(client, model, names: list[str], images: list[np.ndarray],
                        stride: int | None) -> list[dict]:
    from .ensemble import dask_client

    with dask_client(client) as dask:
        # in a list: a scattered dict would become one future per key, under the dict's own keys
        [state] = dask.scatter([model_state(model)], broadcast=True, hash=False)
        futures = []
        for part in _chunks(len(names), _n_workers(dask)):
            data = dask.scatter([images[i] for i in part], hash=False)
            futures.append(dask.submit(encode_chunk, state, [names[i] for i in part], data, stride, pure=False))
        try:
            return [row for chunk in dask.gather(futures) for row in chunk]
        finally:
            dask.cancel(futures)


# ------------------------------------------------------------------------------------------------ segmentation

def _check_segment_kwargs(kind: str, kwargs: dict[str, Any]) -> None:
    """:class:`InputError` for an unknown ``kind`` or a keyword its segmentation does not take."""
    if kind not in KINDS:
        raise InputError(f"kind {kind!r} is unknown; use 'phases' or 'grains'.")
    func = segment_phases_iter if kind == "phases" else segment_grains_iter
    allowed = [p for p in inspect.signature(func).parameters if p != "image"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise InputError(f"segment_{kind} takes no {', '.join(unknown)}; its settings are {', '.join(allowed)}.")


def _outputs(files: Sequence[Path], out_folder: Path) -> list[Path]:
    """``<out_folder>/<stem>_labels.tif`` per file; :class:`InputError` when two files share a stem."""
    seen: dict[str, str] = {}
    for p in files:
        if p.stem in seen:
            raise InputError(f"{seen[p.stem]} and {p.name} would both be written as {p.stem}_labels.tif; rename "
                             "one of them.")
        seen[p.stem] = p.name
    return [out_folder / f"{p.stem}_labels.tif" for p in files]


def segment_image(name: str, image: np.ndarray, kind: str, kwargs: dict[str, Any]) -> np.ndarray:
    """The phase or grain labels of one image (the serial step; :func:`segment_task` on a worker)."""
    func = segment_phases if kind == "phases" else segment_grains
    return _with_file(name, func, image, **kwargs)


def segment_task(name: str, image: np.ndarray, kind: str, kwargs: dict[str, Any]) -> np.ndarray:
    """A worker's task: :func:`segment_image` after undoing Dask's malloc setting (see ``keep_freed_memory``)."""
    keep_freed_memory()
    return segment_image(name, image, kind, kwargs)


def _segment_row(name: str, output: Path, labels: np.ndarray, kind: str, n_phases: int) -> dict:
    """The row of one segmented image: phase fractions, or the number of grains."""
    row: dict[str, Any] = {"file": name, "output": str(output)}
    if kind == "phases":
        counts = np.bincount(labels.ravel().astype(np.int64), minlength=n_phases)
        row.update({f"fraction_{p}": float(c / labels.size) for p, c in enumerate(counts)})
    else:
        row["grains"] = int(np.unique(labels[labels > 0]).size)
    return row


def segment_folder(folder: str | Path, out_folder: str | Path, kind: str = "phases", client=None,
                   **kwargs) -> pd.DataFrame:
    """Segment every image in ``folder`` (sorted by name; RGB becomes greyscale) into phases
    (:func:`~.segmentation.segment_phases`) or grains (:func:`~.segmentation.segment_grains`) with the keyword
    arguments, write ``<out_folder>/<stem>_labels.tif`` per image and return one row per image: ``file``,
    ``output`` and the phase fractions ``fraction_0 ..`` (phases) or the number of ``grains``.

    ``client``: ``None`` (or ``"serial"``) runs here; a :class:`distributed.Client` or a scheduler address
    segments the images on the workers (the label files are written here)."""
    _check_segment_kwargs(kind, kwargs)
    files = image_files(folder)
    out = Path(out_folder).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"out_folder {out} is a file; give a folder for the label files.")
    outputs = _outputs(files, out)
    images = _read_all(files, allow_3d=True)
    out.mkdir(parents=True, exist_ok=True)
    n_phases = int(kwargs.get("n_phases", 2))
    names = [p.name for p in files]

    def finish(k: int, labels: np.ndarray) -> dict:
        write_microstructure(outputs[k], labels, "labels")
        return _segment_row(names[k], outputs[k], labels, kind, n_phases)

    if _is_serial(client):
        rows = [finish(k, segment_image(names[k], images[k], kind, kwargs)) for k in range(len(files))]
    else:
        rows = _segment_distributed(client, names, images, kind, kwargs, finish)
    table = pd.DataFrame(sorted(rows, key=lambda r: r["file"]))
    fractions = [c for c in table.columns if c.startswith("fraction_")]
    table[fractions] = table[fractions].fillna(0.0)
    return table


def _segment_distributed(client, names: list[str], images: list[np.ndarray], kind: str, kwargs: dict[str, Any],
                         finish) -> list[dict]:
    """Segment on the workers, one task per image; ``finish(k, labels)`` writes each result as it comes."""
    from distributed import as_completed

    from .ensemble import dask_client

    with dask_client(client) as dask:
        data = dask.scatter(images, hash=False)
        futures = {dask.submit(segment_task, names[k], data[k], kind, kwargs, pure=False): k
                   for k in range(len(names))}
        try:
            return [finish(futures[f], f.result()) for f in as_completed(futures)]
        finally:
            dask.cancel(list(futures))
