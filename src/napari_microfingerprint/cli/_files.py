"""Reading the command line's inputs and writing its outputs (formats of :mod:`..core.io`)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..core.descriptors.sets import MAX_PHASES
from ..core.io import read_microstructure, write_microstructure
from ..core.validation import InputError
from ._terminal import Reporter

DESCRIPTOR_SUFFIXES = (".json", ".npz")


def add_raw_options(parser: argparse.ArgumentParser) -> None:
    """``--raw-shape`` and ``--raw-dtype``, needed to read ``.raw`` inputs."""
    parser.add_argument("--raw-shape", type=int, nargs="+", metavar="N",
                        help="shape of .raw inputs, (Z) Y X (a .raw.json sidecar written by this tool also works)")
    parser.add_argument("--raw-dtype", default=None, help="dtype of .raw inputs (default uint8)")


def read_array(path: str, args: argparse.Namespace) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """An array and its voxel size from any supported file or a folder of 2D slices."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path} does not exist; check the path.")
    shape = tuple(args.raw_shape) if getattr(args, "raw_shape", None) else None
    ms = read_microstructure(p, shape=shape, dtype=getattr(args, "raw_dtype", None))
    return ms.data, ms.scale


def as_phases(arr: np.ndarray, what: str, reporter: Reporter) -> np.ndarray:
    """A phase map ``0..P-1``: integer or boolean data with at most :data:`MAX_PHASES` values is relabelled in
    order (e.g. 0/128/255 -> 0/1/2) and the mapping reported; anything else is refused."""
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and np.array_equal(arr, np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{what} holds {arr.dtype} values, not phases; segment it first "
                             "(microfingerprint segment) or give a phase map.")
    values, inverse = np.unique(arr, return_inverse=True)
    if values.size > MAX_PHASES:
        raise InputError(f"{what} holds {values.size} different values; a phase map has at most {MAX_PHASES}. "
                         "Is it a greyscale micrograph? Segment it first (microfingerprint segment).")
    if values.size < 2:
        raise InputError(f"{what} holds a single value ({values[0]}); a microstructure needs two phases or more.")
    if not np.array_equal(values, np.arange(values.size)):
        reporter.info(f"{what}: values {', '.join(map(str, values))} read as phases 0..{values.size - 1}")
    return inverse.reshape(arr.shape).astype(np.uint8)


def descriptor_base(path: str) -> Path:
    """``OUT`` for descriptor files ``OUT.npz`` + ``OUT.json`` (a given ``.npz``/``.json`` suffix is dropped)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in DESCRIPTOR_SUFFIXES else p


def write_structure(path: str, data: np.ndarray, scale, reporter: Reporter, layer_type: str = "labels",
                    metadata: dict | None = None) -> str:
    """Write ``data`` in the format the extension names, creating the folder, and report where it went."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    written = write_microstructure(p, data, layer_type=layer_type, scale=scale, metadata=metadata)
    reporter.info(f"wrote {written} ({'x'.join(map(str, data.shape))}, {data.dtype})")
    return written
