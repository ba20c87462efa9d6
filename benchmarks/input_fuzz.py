"""Fuzz the public API with bad input (issue 11) and print a table of outcomes per entry point.

Every package-root function gets, argument by argument, values from classes of bad input (wrong dimensions,
RGB/RGBA, empty, constant, NaN/inf, fractional/negative/huge/complex/object labels, lists and dask arrays,
out-of-range, NaN or mistyped parameters, unknown enumerations, huge shapes, corrupt files). Each class says what
a correct package does with it:

- ``refuse``: only an :class:`InputError` is right; a return value is a **silent** wrong result;
- ``accept``: the value is legitimate (RGB where grey is meant, a list, a dask array, ...); a return is right, an
  ``InputError`` is counted as a false refusal;
- ``either``: a clear refusal and a correct return are both fine.

Outcomes: ``clear`` (InputError), ``accepted``, ``refused-valid``, ``unclear`` (any other exception: a traceback
from deep inside numpy/torch/scikit-image), ``silent``, ``crash`` (the process died, a MemoryError, or no answer
within the time limit). Cases run in a child process with a memory limit, one entry point per child; a child that
dies is restarted after the case that killed it.

    python benchmarks/input_fuzz.py            # all entry points, table on stdout
    python benchmarks/input_fuzz.py --only segment_phases grain_statistics --show unclear silent
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

TIME_LIMIT_S = 30
MEMORY_LIMIT_GB = 10


# ---------------------------------------------------------------- fixtures built once per child process
class Fixtures:
    """Small valid inputs every case starts from."""

    def __init__(self, tmp: Path) -> None:
        import napari_microfingerprint as m

        self.tmp = tmp
        self.grains = m.make_grain_structure((48, 48), n_grains=12, seed=0)
        self.micrograph = m.make_micrograph(self.grains, seed=0)
        self.two_phase = m.make_two_phase((32, 32), 0.4, 4.0, seed=0).astype(np.int64)
        self.volume = m.make_two_phase((16, 16, 16), 0.4, 3.0, seed=0).astype(np.int64)
        self.target = m.characterize(self.two_phase, limit_to=4)
        self.target_b = m.characterize(m.make_two_phase((32, 32), 0.3, 4.0, seed=1), limit_to=4)
        self.large = m.make_micrograph(m.make_grain_structure((128, 128), n_grains=30, seed=0), seed=0)
        self.model = m.train_vae([self.large], architecture="conv", patch_size=64, latent_dim=4, epochs=1,
                                 patches_per_image=32, batch_size=8, device="cpu")
        self.z = m.encode(self.model, self.large).reshape(-1, 4)  # the fingerprints of 9 windows
        rng = np.random.default_rng(0)
        self.fingerprints = rng.normal(size=(30, 4))
        self.classes = np.repeat([0, 1, 2], 10)
        self.values = self.fingerprints[:, 0] * 2 + rng.normal(scale=0.1, size=30)
        self.scribbles = np.zeros((48, 48), np.int32)
        self.scribbles[5:8, 5:20] = 1
        self.scribbles[30:33, 20:40] = 2
        m.save_model(self.model, tmp / "model")
        np.save(tmp / "good.npy", self.two_phase)
        self.files = _bad_files(tmp)
        folder = tmp / "images"
        folder.mkdir(exist_ok=True)
        import tifffile

        for i in range(2):
            tifffile.imwrite(folder / f"im{i}.tif", (self.large * 255).astype(np.uint8))


def _bad_files(tmp: Path) -> dict[str, Path]:
    """Corrupt, truncated, empty, mislabelled and inflating files."""
    import zipfile

    files = {}
    (tmp / "empty.npy").write_bytes(b"")
    files["empty file"] = tmp / "empty.npy"
    good = tmp / "trunc.npy"
    np.save(good, np.zeros((64, 64)))
    good.write_bytes(good.read_bytes()[:200])
    files["truncated npy"] = good
    (tmp / "text.tif").write_text("not a tiff")
    files["text as tif"] = tmp / "text.tif"
    bomb = tmp / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("a.npy", "w", force_zip64=True) as fh:
        header = b"\x93NUMPY\x01\x00" + b"v\x00"
        dic = "{'descr': '<f8', 'fortran_order': False, 'shape': (400000000,), }"
        dic = dic + " " * (118 - len(dic) - 1) + "\n"
        fh.write(header + dic.encode())
        chunk = bytes(1 << 20)
        for _ in range(400):
            fh.write(chunk)
    files["npz bomb"] = bomb
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["pickled npy"] = tmp / "obj.npy"
    files["missing"] = tmp / "does_not_exist.tif"
    files["directory"] = tmp
    (tmp / "bad.json").write_text("{not json")
    (tmp / "bad.safetensors").write_bytes(b"\x00" * 10)
    files["corrupt model"] = tmp / "bad"
    return files


# ---------------------------------------------------------------- classes of bad values per argument kind
def _grey_values(f: Fixtures, img: np.ndarray | None = None) -> list[tuple[str, object, str]]:
    img = f.micrograph if img is None else img
    nan = img.copy()
    nan[3, 3] = np.nan
    inf = img.copy()
    inf[3, 3] = np.inf
    import dask.array as da

    return [
        ("None", None, "refuse"), ("scalar", 3.0, "refuse"), ("1D", np.arange(10.0), "refuse"),
        ("4D", np.zeros((2, 2, 8, 8)), "refuse"), ("empty", np.zeros((0, 0)), "refuse"),
        ("empty 3D", np.zeros((0, 8, 8)), "refuse"), ("constant", np.ones_like(img), "refuse"),
        ("NaN", nan, "refuse"), ("inf", inf, "refuse"), ("complex", img.astype(complex), "refuse"),
        ("object", img.astype(object), "either"), ("strings", np.full((8, 8), "a"), "refuse"),
        ("tiny 2x2", img[:2, :2], "either"),
        ("RGB", np.stack([img] * 3, -1), "accept"), ("RGBA", np.stack([img] * 3 + [np.ones_like(img)], -1), "accept"),
        ("list", img.tolist(), "accept"), ("uint8", (img * 255).astype(np.uint8), "accept"),
        ("bool", img > img.mean(), "either"), ("float32", img.astype(np.float32), "accept"),
        ("negative", img - 10, "accept"), ("huge values", img.astype(float) * 1e300, "either"),
        ("dask", da.from_array(img, chunks=24), "accept"),
    ]


def _label_values(f: Fixtures, base: np.ndarray) -> list[tuple[str, object, str]]:
    nan = base.astype(float)
    nan[2, 2] = np.nan
    frac = base + 0.5
    neg = base.copy()
    neg[0, 0] = -1
    import dask.array as da

    rgb = np.stack([base.astype(np.uint8)] * 3, -1) if base.ndim == 2 else np.stack([base[0].astype(np.uint8)] * 3, -1)
    return [
        ("None", None, "refuse"), ("scalar", 1, "refuse"), ("1D", np.arange(10), "refuse"),
        ("4D", np.zeros((2, 2, 8, 8), int), "refuse"), ("empty", np.zeros((0, 0), int), "refuse"),
        ("RGB", rgb, "refuse"), ("NaN", nan, "refuse"), ("inf", np.where(base > 0, np.inf, 0), "refuse"),
        ("fractional", frac, "refuse"), ("negative", neg, "refuse"), ("complex", base.astype(complex), "refuse"),
        ("object", base.astype(object), "either"), ("strings", np.full(base.shape, "a"), "refuse"),
        ("bool", base > 0, "either"), ("integer floats", base.astype(float), "accept"),
        ("uint8", base.astype(np.uint8), "accept"), ("list", base.tolist(), "accept"),
        ("dask", da.from_array(base, chunks=8), "accept"),
        ("uint64", base.astype(np.uint64), "accept"),
    ]


def _grain_values(f: Fixtures) -> list[tuple[str, object, str]]:
    base = f.grains
    return _label_values(f, base) + [
        ("huge sparse labels", base.astype(np.int64) * (2**40), "either"),
        ("all zero", np.zeros_like(base), "refuse"), ("one grain", np.ones_like(base), "either"),
    ]


def _phase_values(f: Fixtures, base: np.ndarray) -> list[tuple[str, object, str]]:
    return _label_values(f, base) + [
        ("single phase", np.zeros_like(base), "refuse"),
        ("0/255", base * 255, "either"), ("50 labels", np.arange(base.size).reshape(base.shape) % 50, "refuse"),
        ("huge label", base * (2**40), "refuse"),
    ]


#: A peak distance beyond the image is used as the image size: it finds the same single peak, so the result is the
#: one asked for (no refusal needed); 0 allows adjacent peaks, as 1 does.
PEAK_BEYOND_IMAGE = {"huge": "either", "0": "either"}
#: An encoding stride beyond the image samples one window: sparse sampling, asked for.
SPARSE_STRIDE = {"huge": "either"}
#: Functions that work on any label values (smoothing, transport through one phase) may take these.
ANY_LABELS = {"50 labels": "either", "huge label": "either"}


def _override(values: list[tuple[str, object, str]], verdicts: dict[str, str]) -> list[tuple[str, object, str]]:
    """``values`` with the verdicts of some classes changed for one entry point."""
    return [(label, value, verdicts.get(label, verdict)) for label, value, verdict in values]


def _int_values(low: int = 1) -> list[tuple[str, object, str]]:
    vals = [("2.5", 2.5, "refuse"), ("NaN", float("nan"), "refuse"), ("string", "3", "refuse"),
            ("None", None, "either"), ("huge", 10**12, "refuse")]
    vals.append((f"{low - 1}", low - 1, "refuse"))
    if low - 1 != -1:
        vals.append(("-1", -1, "refuse"))
    return vals


def _float_values(positive: bool = True, low: float | None = None, high: float | None = None):
    vals = [("NaN", float("nan"), "refuse"), ("inf", float("inf"), "refuse"), ("string", "x", "refuse"),
            ("None", None, "either")]
    if positive:
        vals += [("-1", -1.0, "refuse")]
    if low is not None:
        vals.append(("below range", low - 1.0, "refuse"))
    if high is not None:
        vals.append(("above range", high + 1.0, "refuse"))
    return vals


def _enum_values():
    return [("unknown", "xyz", "refuse"), ("int", 3, "refuse"), ("None", None, "either")]


def _shape_values(ndim: int, allow_int: bool = True):
    return [("fractional", (16.7,) + (16,) * (ndim - 1), "refuse"), ("negative", (-16,) + (16,) * (ndim - 1), "refuse"),
            ("zero", (0,) + (16,) * (ndim - 1), "refuse"), ("1 axis", (16,), "refuse" if not allow_int else "either"),
            ("4 axes", (4, 16, 16, 16), "refuse"), ("string", "abc", "refuse"),
            ("NaN", (float("nan"),) * ndim, "refuse"), ("huge", (4096,) * 3, "refuse"), ("None", None, "either")]


def _spacing_values(ndim: int):
    return [("negative", (-1.0,) * ndim, "refuse"), ("zero", (0.0,) * ndim, "refuse"),
            ("NaN", (float("nan"),) * ndim, "refuse"), ("wrong length", (1.0,) * (ndim + 2), "refuse"),
            ("string", "abc", "refuse"), ("list", [1.0] * ndim, "accept")]


def _fingerprint_values(d: int, n: int = 10):
    """Bad fingerprints of width ``d``; ``n`` rows where a good value has them (1 for a single fingerprint)."""
    rng = np.random.default_rng(1)
    good = rng.normal(size=(n, d))
    nan = good.copy()
    nan[0, 0] = np.nan
    return [("None", None, "refuse"), ("empty", np.zeros((0, d)), "refuse"), ("4D", good[None, None], "refuse"),
            ("NaN", nan, "refuse"), ("inf", good * np.inf, "refuse"), ("object", good.astype(object), "either"),
            ("strings", np.full((3, d), "a"), "refuse"), ("wrong width", rng.normal(size=(10, d + 3)), "refuse"),
            ("complex", good.astype(complex), "refuse"), ("list", good.tolist(), "accept"),
            ("1D", good[0], "either")]


def _model_values(f: Fixtures):
    return [("None", None, "refuse"), ("string", "model", "refuse"), ("dict", {}, "refuse")]


def _target_values(f: Fixtures):
    return [("None", None, "refuse"), ("array", f.two_phase, "refuse"), ("string", "target", "refuse")]


# ---------------------------------------------------------------- entry points: good call + argument kinds
def entries(f: Fixtures) -> list[tuple[str, dict, dict]]:
    """``(function name, good kwargs, {argument: bad values})``; functions are looked up in the package root."""
    g, gr, tp, vol = f.micrograph, f.grains, f.two_phase, f.volume
    shape2 = (32, 32)
    small = {"max_iter": 5, "device": "cpu"}
    out = [
        ("segment_phases", {"image": g}, {"image": _grey_values(f), "n_phases": _int_values(2) + [("50", 50, "refuse")],
                                          "method": _enum_values()}),
        ("segment_phases", {"image": g, "method": "manual", "n_phases": 2, "thresholds": [0.5]},
         {"thresholds": [("NaN", [float("nan")], "refuse"), ("outside data", [5.0], "refuse"),
                         ("too many", [0.2, 0.4], "refuse"), ("string", "a", "refuse")]}),
        ("segment_grains", {"image": g}, {"image": _grey_values(f), "source": _enum_values(),
                                          "h": _float_values(positive=True), "boundary": _enum_values(),
                                          "min_distance": _override(_int_values(1), PEAK_BEYOND_IMAGE),
                                          "min_size": _int_values(0)}),
        ("normalize", {"image": g}, {"image": _grey_values(f), "low": _float_values(False, 0, 100),
                                     "high": _float_values(False, 0, 100)}),
        ("denoise", {"image": g}, {"image": _grey_values(f), "method": _enum_values(),
                                   "strength": _float_values()}),
        ("correct_illumination", {"image": g}, {"image": _grey_values(f), "sigma": _float_values()}),
        ("labels_to_boundaries", {"labels": gr}, {"labels": _override(_grain_values(f), {"all zero": "either"})}),
        ("labels_to_distance", {"labels": gr}, {"labels": _grain_values(f), "spacing": _spacing_values(2)}),
        ("distance_to_labels", {"distance": m_distance(gr)},
         {"distance": _override(_grey_values(f), {"negative": "refuse"}),
          "min_distance": _override(_int_values(1), PEAK_BEYOND_IMAGE),
          "h": _float_values(), "min_size": _int_values(0)}),
        ("grain_statistics", {"labels": gr}, {"labels": _grain_values(f), "spacing": _spacing_values(2),
                                              "n_lines": _int_values(1), "max_gap": _int_values(0)}),
        ("line_intercept_length", {"labels": gr}, {"labels": _grain_values(f), "n_lines": _int_values(1),
                                                   "spacing": _spacing_values(2), "min_run": _int_values(1)}),
        ("phase_fractions", {"phases": tp}, {"phases": _label_values(f, tp) + [("huge label", tp * 2**40, "accept")]}),
        ("cluster_labels", {"structure": tp}, {"structure": _phase_values(f, tp), "phase": _int_values(0)}),
        ("make_micrograph", {"labels": gr}, {"labels": _override(_grain_values(f), {"all zero": "either"}),
                                             "noise": _float_values(),
                                             "boundary_contrast": _float_values(), "illumination": _float_values()}),
        ("make_grain_structure", {"shape": (32, 32), "n_grains": 8},
         {"shape": _shape_values(2), "n_grains": _int_values(1) + [("more than pixels", 10**7, "refuse")],
          "stage": _override(_enum_values(), {"int": "accept"}), "temperature": _float_values()}),
        ("make_particles", {"shape": (48, 48), "volume_fraction": 0.2, "mean_radius": 4.0},
         {"shape": _shape_values(2), "volume_fraction": _float_values(True, 0, 1), "mean_radius": _float_values(),
          "radius_cv": _float_values(), "max_attempts": _override(_int_values(1), {"huge": "either"})}),
        ("make_two_phase", {"shape": (32, 32)}, {"shape": _shape_values(2),
                                                 "volume_fraction": _float_values(True, 0, 1),
                                                 "correlation_length": _float_values()}),
        ("make_lamellae", {"shape": (32, 32)}, {"shape": _shape_values(2), "spacing": _float_values(),
                                                "fraction": _float_values(True, 0, 1), "angle": _float_values(False),
                                                "waviness": _float_values()}),
        ("characterize", {"structure": tp, "limit_to": 4},
         {"structure": _phase_values(f, tp), "descriptors": [("empty", [], "refuse"), ("unknown", ["xyz"], "refuse"),
                                                             ("string", "s2", "either")],
          "limit_to": _int_values(1), "n_phases": _int_values(2) + [("50", 50, "refuse")]}),
        ("descriptor_error", {"structure": tp, "target": f.target},
         {"structure": _phase_values(f, tp), "target": _target_values(f)}),
        ("interpolate", {"a": f.target, "b": f.target_b, "n": 3}, {"a": _target_values(f), "n": _int_values(2)}),
        ("merge", {"yx": f.target, "zx": f.target_b}, {"yx": _target_values(f), "tolerance": _float_values()}),
        ("reconstruct", {"target": f.target, "shape": shape2, **small},
         {"target": _target_values(f), "shape": _shape_values(2, allow_int=False), "max_iter": _int_values(1),
          "learning_rate": _float_values(), "optimizer": _enum_values(), "seed": [("2.5", 2.5, "refuse"),
                                                                                   ("string", "a", "refuse")],
          "device": _enum_values(), "weights": [("negative", {"s2": -1.0}, "refuse"), ("NaN", {"s2": float("nan")},
                                                                                        "refuse"),
                                                ("unknown", {"xyz": 1.0}, "refuse")]}),
        ("match", {"structure": tp, "shape": shape2, "limit_to": 4, **small},
         {"structure": _phase_values(f, tp), "shape": _shape_values(2, allow_int=False)}),
        ("smooth", {"structure": tp}, {"structure": _override(_phase_values(f, tp), ANY_LABELS),
                                       "sigma": _float_values(),
                                       "spacing": _spacing_values(2)}),
        ("structure_report", {"structure": vol, "transport": False},
         {"structure": _phase_values(f, vol), "spacing": _spacing_values(3), "n_windows": _int_values(1),
          "unit": [("int", 3, "refuse")], "phases": [("missing phase", [7], "refuse"), ("string", "a", "refuse")]}),
        ("tortuosity", {"structure": vol}, {"structure": _override(_phase_values(f, vol), ANY_LABELS),
                                           "phase": _int_values(0),
                                           "axes": [("unknown", ["q"], "refuse"), ("out of range", [5], "refuse")]}),
        ("effective_diffusivity", {"structure": vol}, {"structure": _override(_phase_values(f, vol), ANY_LABELS),
                                                       "axis": _enum_values(),
                                                       "tol": _float_values()}),
        ("reference_tortuosity", {"structure": vol}, {"structure": _phase_values(f, vol)}),
        ("encode", {"model": f.model, "image": f.large}, {"model": _model_values(f), "image": _grey_values(f, f.large),
                                                   "stride": _override(_int_values(1), SPARSE_STRIDE)}),
        ("decode", {"model": f.model, "z": f.z[:4]}, {"model": _model_values(f), "z": _fingerprint_values(4)}),
        ("sample_latent", {"model": f.model, "fingerprints": f.z, "n": 3},
         {"fingerprints": _fingerprint_values(4), "n": _int_values(1)}),
        ("traverse", {"model": f.model, "z": f.z[0], "dim": 0},
         {"z": _fingerprint_values(4, 1), "dim": _int_values(0) + [("too large", 9, "refuse")]}),
        ("interpolate_latent", {"model": f.model, "z1": f.z[0], "z2": f.z[1], "steps": 3},
         {"z1": _fingerprint_values(4, 1), "steps": _int_values(2)}),
        ("gaussian_cloud", {"model": f.model, "z": f.z[0], "gamma": 0.5, "n": 3},
         {"z": _fingerprint_values(4, 1), "gamma": _float_values(), "n": _int_values(1)}),
        ("decoder_probes", {"model": f.model, "dims": (0,), "k_values": (1,), "amplitudes": (1.0,)},
         {"dims": [("out of range", (9,), "refuse"), ("negative", (-1,), "refuse")],
          "k_values": [("zero", (0,), "refuse")], "amplitudes": [("NaN", (float("nan"),), "refuse")]}),
        ("ood_score", {"z": f.fingerprints[:3], "reference": f.fingerprints},
         {"z": _fingerprint_values(4), "reference": _fingerprint_values(4), "variance": _float_values(True, 0, 1)}),
        ("embed", {"fingerprints": f.fingerprints}, {"fingerprints": _override(_fingerprint_values(4), {
            "wrong width": "accept"}) + [
            ("identical", np.ones((10, 4)), "refuse"), ("two points", f.fingerprints[:2], "either")],
            "method": _enum_values(), "perplexity": _float_values()}),
        ("embed", {"fingerprints": f.fingerprints, "method": "tsne"},
         {"fingerprints": [("identical", np.ones((10, 4)), "refuse"), ("two points", f.fingerprints[:2], "either")]}),
        ("classify", {"fingerprints": f.fingerprints, "labels": f.classes, "folds": 3},
         {"fingerprints": _fingerprint_values(4, 30), "labels": [("wrong length", f.classes[:5], "refuse"),
                                                             ("one class", np.zeros(30), "refuse")],
          "folds": _int_values(2)}),
        ("fit_property", {"fingerprints": f.fingerprints, "values": f.values, "folds": 3},
         {"fingerprints": _fingerprint_values(4, 30), "values": [("wrong length", f.values[:5], "refuse"),
                                                             ("NaN", f.values * np.nan, "refuse")],
          "model": _enum_values(), "folds": _int_values(2)}),
        ("train_vae", {"images": [f.large], "architecture": "conv", "patch_size": 64, "latent_dim": 4, "epochs": 1,
                       "patches_per_image": 32, "batch_size": 8, "device": "cpu"},
         {"images": [("complex", [f.large.astype(complex)], "refuse"),
                     ("NaN", [np.where(f.large > 0.5, np.nan, f.large)], "refuse"), ("empty list", [], "refuse"),
                     ("constant", [np.ones_like(f.large)], "refuse"), ("too small", [g[:8, :8]], "refuse"),
                     ("RGB", [np.stack([f.large] * 3, -1)], "accept"), ("labels", [f.grains], "either")],
          "patch_size": _int_values(1), "latent_dim": _int_values(1), "epochs": _int_values(1),
          "batch_size": _int_values(1), "learning_rate": _float_values(), "beta": _float_values(),
          "architecture": _enum_values()}),
        ("save_model", {"model": f.model, "path": str(f.tmp / "saved")},
         {"model": _model_values(f), "path": [("dotted name", str(f.tmp / "run.v2"), "either"),
                                               ("directory", str(f.tmp), "refuse")]}),
        ("load_model", {"path": str(f.tmp / "model")},
         {"path": [(k, str(v), "refuse") for k, v in f.files.items()]}),
        ("read_microstructure", {"path": str(f.tmp / "good.npy")},
         {"path": [(k, str(v), "refuse") for k, v in f.files.items()]}),
        ("write_microstructure", {"path": str(f.tmp / "out.tif"), "data": tp},
         {"data": [("None", None, "refuse"), ("object", np.array([{}], dtype=object), "refuse"),
                   ("complex", tp.astype(complex), "refuse"), ("empty", np.zeros((0, 0)), "refuse")],
          "scale": [("wrong length", (1.0,) * 4, "refuse"), ("negative", (-1.0, 1.0), "refuse"),
                    ("NaN", (float("nan"),) * 2, "refuse")],
          "layer_type": _enum_values()}),
        ("fit_pixel_classifier", {"images": g, "scribbles": f.scribbles, "n_estimators": 10},
         {"images": _override(_grey_values(f), {"list": "either"}),
          "scribbles": [("empty", np.zeros_like(f.scribbles), "refuse"),
                                                  ("one class", (f.scribbles > 0).astype(int), "refuse"),
                                                  ("wrong shape", f.scribbles[:10], "refuse"),
                                                  ("NaN", f.scribbles * np.nan, "refuse")],
          "sigma_min": _float_values(), "n_estimators": _int_values(1)}),
        ("window_properties", {"image": gr, "patch_size": 16, "stride": 16, "name": "mean grain area",
                               "is_labels": True},
         {"image": _grain_values(f), "patch_size": _int_values(1), "stride": _int_values(1),
          "name": _enum_values()}),
        ("load_example", {"name": "alloy"},
         {"name": [("unknown", "xyz", "refuse"), ("path", "../../etc/passwd", "refuse")]}),
        ("segment_with_scribbles", {"image": g, "scribbles": f.scribbles, "n_estimators": 10},
         {"image": _override(_grey_values(f), {"list": "either"}),
          "scribbles": [("wrong shape", f.scribbles[:10], "refuse"), ("one class", (f.scribbles > 0) * 1, "refuse")]}),
        ("reconstruct_ensemble", {"target": f.target, "shape": (16, 16), "n": 1, "store": str(f.tmp / "ensemble"),
                                  "client": "serial", "max_iter": 3, "device": "cpu"},
         {"target": _target_values(f), "shape": _shape_values(2, allow_int=False), "n": _int_values(1),
          "seeds": [("repeated", [1, 1], "refuse"), ("fractional", [1.5], "refuse"), ("negative", [-1], "refuse")],
          "batch": [("zero", 0, "refuse"), ("string", "many", "refuse")], "client": [("unknown", 3, "refuse")],
          "max_iter": _int_values(1)}),
        ("encode_folder", {"model": f.model, "folder": str(f.tmp / "images")},
         {"folder": [("missing", str(f.tmp / "nope"), "refuse"), ("file", str(f.tmp / "good.npy"), "refuse")],
          "stride": _override(_int_values(1), SPARSE_STRIDE)}),
        ("segment_folder", {"folder": str(f.tmp / "images"), "out_folder": str(f.tmp / "seg")},
         {"folder": [("missing", str(f.tmp / "nope"), "refuse")], "kind": _enum_values()}),
    ]
    return out


def m_distance(grains: np.ndarray) -> np.ndarray:
    import napari_microfingerprint as m

    return m.labels_to_distance(grains)


# ---------------------------------------------------------------- running
def _classify(verdict: str, outcome: str) -> str:
    if outcome == "returned":
        return {"refuse": "silent", "accept": "accepted", "either": "accepted"}[verdict]
    if outcome == "input-error":
        return "refused-valid" if verdict == "accept" else "clear"
    return outcome


def _child(entry_index: int, start: int, tmp: str, out: str) -> None:
    """Run the cases of one entry point from ``start`` on, appending one JSON line per case to ``out``."""
    limit = MEMORY_LIMIT_GB * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import warnings

    warnings.simplefilter("ignore")
    import napari_microfingerprint as m

    f = Fixtures(Path(tmp))
    name, good, slots = entries(f)[entry_index]
    func = getattr(m, name)
    cases = [(arg, label, value, verdict) for arg, vals in slots.items() for label, value, verdict in vals]

    def alarm(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, alarm)
    func(**good)  # the unaltered call must work, or every case would be refused for the wrong reason
    with open(out, "a") as fh:
        for i, (arg, label, value, verdict) in enumerate(cases):
            if i < start:
                continue
            fh.write(json.dumps({"i": i, "entry": name, "arg": arg, "case": label, "verdict": verdict,
                                 "outcome": "started"}) + "\n")
            fh.flush()
            t0 = time.perf_counter()
            signal.alarm(TIME_LIMIT_S)
            try:
                func(**{**good, arg: value})
                outcome, message = "returned", ""
            except m.InputError as err:
                outcome, message = "input-error", str(err)
            except TimeoutError:
                outcome, message = "crash", f"no answer within {TIME_LIMIT_S} s"
            except MemoryError as err:
                outcome, message = "crash", f"MemoryError {err}"
            except Exception as err:  # noqa: BLE001 - classified as unclear
                tb = traceback.extract_tb(err.__traceback__)[-1]
                outcome, message = "unclear", f"{type(err).__name__}: {str(err)[:160]} ({Path(tb.filename).name})"
            finally:
                signal.alarm(0)
            fh.write(json.dumps({"i": i, "entry": name, "arg": arg, "case": label, "verdict": verdict,
                                 "outcome": _classify(verdict, outcome), "message": message[:300],
                                 "seconds": round(time.perf_counter() - t0, 2)}) + "\n")
            fh.flush()
    print("cases", len(cases))


def _count_entries(tmp: str) -> list[str]:
    code = ("import sys, json; sys.path.insert(0, %r); import input_fuzz as z; from pathlib import Path; "
            "print(json.dumps([e[0] for e in z.entries(z.Fixtures(Path(%r)))]))") % (str(Path(__file__).parent), tmp)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _watch(proc, out: Path) -> bool:
    """Wait for ``proc``; kill it when one case has run for longer than the limit (a hang inside compiled code,
    where the child's alarm cannot interrupt). True if it was killed."""
    seen, since = None, time.monotonic()
    while proc.is_alive():
        proc.join(1.0)
        last = out.read_text().splitlines()[-1] if out.exists() and out.stat().st_size else None
        if last != seen:
            seen, since = last, time.monotonic()
        elif last and '"started"' in last and time.monotonic() - since > TIME_LIMIT_S + 10:
            proc.kill()
            proc.join()
            return True
    return False


def run(only: list[str] | None) -> list[dict]:
    """All cases of all (or ``only`` the named) entry points; one child process per entry point."""
    tmp = tempfile.mkdtemp(prefix="fuzz-")
    names = _count_entries(tmp)
    rows: list[dict] = []
    ctx = mp.get_context("spawn")
    for idx, name in enumerate(names):
        if only and name not in only:
            continue
        out = os.path.join(tmp, f"entry{idx}.jsonl")
        start = 0
        while True:
            proc = ctx.Process(target=_child, args=(idx, start, tmp, out))
            proc.start()
            hung = _watch(proc, Path(out))
            lines = [json.loads(x) for x in Path(out).read_text().splitlines()] if Path(out).exists() else []
            if proc.exitcode != 0 and not lines:
                raise RuntimeError(f"{name}: the valid call failed before any case ran; fix its fixture")
            if proc.exitcode == 0:
                break
            last = lines[-1]
            if last["outcome"] == "started":  # the case killed the child or hung inside compiled code
                why = (f"no answer within {TIME_LIMIT_S} s (killed)" if hung
                       else f"process died (exit code {proc.exitcode})")
                Path(out).write_text("".join(json.dumps(x) + "\n" for x in lines[:-1]) + json.dumps(
                    {**last, "outcome": "crash", "message": why}) + "\n")
            start = last["i"] + 1
        finished = [x for x in (json.loads(x) for x in Path(out).read_text().splitlines()) if x["outcome"] != "started"]
        rows += finished
        print(f"{name:24s} {dict(Counter(r['outcome'] for r in finished))}", file=sys.stderr, flush=True)
    return rows


OUTCOMES = ("clear", "accepted", "refused-valid", "unclear", "silent", "crash")


def table(rows: list[dict]) -> str:
    """Markdown table: one row per entry point, one column per outcome, totals at the bottom."""
    per: dict[str, Counter] = {}
    for r in rows:
        per.setdefault(r["entry"], Counter())[r["outcome"]] += 1
    lines = ["| entry point | cases | " + " | ".join(OUTCOMES) + " |", "|---|" + "---:|" * (len(OUTCOMES) + 1)]
    total = Counter()
    for name, c in per.items():
        total.update(c)
        lines.append(f"| `{name}` | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    n = sum(total.values())
    lines.append(f"| **all** | {n} | " + " | ".join(f"{total[o]} ({100 * total[o] / max(n, 1):.1f} %)"
                                                   for o in OUTCOMES) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="entry points to fuzz (default: all)")
    parser.add_argument("--show", nargs="*", default=["unclear", "silent", "crash", "refused-valid"],
                        help="list the cases with these outcomes after the table")
    parser.add_argument("--json", help="also write every case to this file")
    args = parser.parse_args()
    rows = run(args.only)
    print(table(rows))
    for r in rows:
        if r["outcome"] in args.show:
            print(f"- {r['outcome']}: `{r['entry']}` {r['arg']}={r['case']}: {r.get('message', '')[:200]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
