"""Small real micrographs shipped with the package (see ``data/ATTRIBUTION.md``: Li et al. 2018, CC BY 4.0)."""
from __future__ import annotations

from importlib.resources import files

import numpy as np

from .validation import InputError

EXAMPLES = ("ceramics", "alloy", "sandstone")


def load_example(name: str) -> np.ndarray:
    """A bundled 256 x 256 segmented micrograph: ``"ceramics"`` (two phases), ``"alloy"`` (grains 1, boundaries 0)
    or ``"sandstone"`` (pore / grain), from Li et al., Sci. Rep. 8, 13461 (2018), CC BY 4.0."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}.")
    with np.load(files("napari_microfingerprint") / "data" / "li2018_examples.npz", allow_pickle=False) as npz:
        return npz[name].copy()
