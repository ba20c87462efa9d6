"""The input contract (issue 11): every public function refuses each class of bad input with an InputError whose
message names the argument, before any heavy work.

Table-driven: one row per (function, bad argument). Each row calls the package-root function with otherwise valid,
tiny arguments, so the whole table runs in seconds. The broad fuzz with outcomes per class is
``benchmarks/input_fuzz.py``.
"""
from __future__ import annotations

import re
import time
import zipfile

import numpy as np
import pytest

import napari_microfingerprint as m
from napari_microfingerprint.core.vae.models import build_model
from napari_microfingerprint.core.vae.training import VAEModel

RNG = np.random.default_rng(0)
GREY = RNG.random((24, 24))
GRAINS = np.repeat(np.repeat(np.arange(1, 17).reshape(4, 4), 6, 0), 6, 1)
PHASES = (RNG.random((24, 24)) > 0.6).astype(np.uint8)
VOLUME = (RNG.random((12, 12, 12)) > 0.6).astype(np.uint8)
RGB = np.stack([GREY] * 3, -1)
NAN = np.where(GREY > 0.5, np.nan, GREY)
FINGERPRINTS = RNG.normal(size=(12, 4))


def _model() -> VAEModel:
    """An untrained 4-dimensional conv VAE: enough for the checks, which run before the network."""
    config = {"architecture": "conv", "patch_size": 64, "latent_dim": 4, "in_channels": 1, "transform": "intensity",
              "offset": 0.0, "scale": 1.0}
    return VAEModel(build_model("conv", patch_size=64, latent_dim=4).eval(), config)


MODEL = _model()
TARGET = m.characterize(PHASES, limit_to=3, levels=0)

# (function name, keyword arguments, a pattern the message must contain: the argument or what it holds)
CASES = [
    # greyscale images: dimensions, emptiness, constant, NaN, complex, text
    ("segment_phases", {"image": GREY[0]}, r"dimension"),
    ("segment_phases", {"image": np.zeros((2, 2, 4, 4))}, r"4 dimensions"),
    ("segment_phases", {"image": np.zeros((0, 5))}, r"empty"),
    ("segment_phases", {"image": np.ones((8, 8))}, r"constant"),
    ("segment_phases", {"image": NAN}, r"NaN"),
    ("segment_phases", {"image": GREY.astype(complex)}, r"complex"),
    ("segment_phases", {"image": np.full((4, 4), "a")}, r"text"),
    ("segment_phases", {"image": None}, r"None"),
    # parameters: counts, enumerations, thresholds in the data range
    ("segment_phases", {"image": GREY, "n_phases": 50}, r"n_phases"),
    ("segment_phases", {"image": GREY, "n_phases": 2.5}, r"n_phases"),
    ("segment_phases", {"image": GREY, "method": "x"}, r"method"),
    ("segment_phases", {"image": GREY, "method": "manual", "thresholds": [float("nan")]}, r"thresholds"),
    ("segment_phases", {"image": GREY, "method": "manual", "thresholds": [5.0]}, r"thresholds"),
    ("segment_grains", {"image": GREY, "h": -1}, r"\bh\b"),
    ("segment_grains", {"image": GREY, "h": float("nan")}, r"\bh\b"),
    ("segment_grains", {"image": GREY, "boundary": "x"}, r"boundary"),
    ("segment_grains", {"image": GREY, "source": "x"}, r"source"),
    ("segment_grains", {"image": GREY, "spacing": (-1.0, 1.0)}, r"spacing"),
    ("segment_grains", {"image": GREY, "min_distance": 2.5}, r"min_distance"),
    ("segment_grains", {"image": GREY, "min_size": 10**12}, r"min_size"),
    ("normalize", {"image": GREY, "low": 50, "high": 10}, r"low"),
    ("normalize", {"image": GREY, "low": float("nan")}, r"low"),
    ("denoise", {"image": GREY, "strength": -1}, r"strength"),
    ("denoise", {"image": GREY, "method": "x"}, r"method"),
    ("correct_illumination", {"image": GREY, "sigma": 0}, r"sigma"),
    ("distance_to_labels", {"distance": GREY - 1}, r"negative"),
    # label maps: RGB, fractional, negative, NaN, no grains, huge ids
    ("segment_grains", {"image": np.stack([PHASES] * 3, -1), "source": "binary"}, r"RGB"),
    ("grain_statistics", {"labels": np.stack([GRAINS] * 3, -1).astype(np.uint8)}, r"RGB"),
    ("grain_statistics", {"labels": GRAINS + 0.5}, r"fractional"),
    ("grain_statistics", {"labels": GRAINS - 5}, r"negative"),
    ("grain_statistics", {"labels": np.where(GRAINS > 3, np.nan, GRAINS)}, r"NaN"),
    ("grain_statistics", {"labels": np.zeros((8, 8), int)}, r"no grains"),
    ("grain_statistics", {"labels": GRAINS, "spacing": (1.0,)}, r"spacing"),
    ("grain_statistics", {"labels": GRAINS, "n_lines": 0}, r"n_lines"),
    ("labels_to_distance", {"labels": np.ones((8, 8), int)}, r"single label"),
    ("labels_to_distance", {"labels": GRAINS, "spacing": (float("nan"),) * 2}, r"spacing"),
    ("line_intercept_length", {"labels": np.zeros((8, 8), int)}, r"no grains"),
    ("make_micrograph", {"labels": GRAINS + 0.5}, r"fractional"),
    ("make_micrograph", {"labels": GRAINS, "noise": -1}, r"noise"),
    # phase maps
    ("characterize", {"structure": np.zeros((16, 16), int)}, r"single phase"),
    ("characterize", {"structure": PHASES * 255}, r"phases"),
    ("characterize", {"structure": PHASES, "descriptors": []}, r"descriptors"),
    ("characterize", {"structure": PHASES, "descriptors": ["xyz"]}, r"xyz"),
    ("characterize", {"structure": PHASES, "n_phases": 50}, r"n_phases"),
    ("characterize", {"structure": PHASES, "limit_to": 2.5}, r"limit_to"),
    ("phase_fractions", {"phases": PHASES + 0.5}, r"fractional"),
    ("cluster_labels", {"structure": PHASES, "phase": -1}, r"phase"),
    ("smooth", {"structure": PHASES, "sigma": float("nan")}, r"sigma"),
    ("smooth", {"structure": PHASES, "spacing": (1.0, 1.0, 1.0)}, r"spacing"),
    ("structure_report", {"structure": VOLUME, "n_windows": 1, "transport": False}, r"n_windows"),
    ("structure_report", {"structure": VOLUME, "phases": [7], "transport": False}, r"phases"),
    ("tortuosity", {"structure": VOLUME, "axes": ["q"]}, r"axis"),
    ("effective_diffusivity", {"structure": VOLUME, "tol": -1}, r"tol"),
    ("descriptor_error", {"structure": PHASES, "target": PHASES}, r"target"),
    # reconstruction: shapes, budgets, settings
    ("reconstruct", {"target": TARGET, "shape": (16.7, 16, 16)}, r"shape"),
    ("reconstruct", {"target": TARGET, "shape": (-16, 16)}, r"shape"),
    ("reconstruct", {"target": TARGET, "shape": (4, 16, 16, 16)}, r"shape"),
    ("reconstruct", {"target": TARGET, "shape": "abc"}, r"shape"),
    ("reconstruct", {"target": TARGET, "shape": (16, 16), "max_iter": 2.5}, r"max_iter"),
    ("reconstruct", {"target": TARGET, "shape": (16, 16), "learning_rate": -1}, r"learning_rate"),
    ("reconstruct", {"target": TARGET, "shape": (16, 16), "optimizer": "x"}, r"optimizer"),
    ("reconstruct", {"target": TARGET, "shape": (16, 16), "weights": {"s2": float("nan")}}, r"weights"),
    ("reconstruct", {"target": TARGET, "shape": (16, 16), "colour": "red"}, r"colour"),
    ("reconstruct", {"target": PHASES, "shape": (16, 16)}, r"target"),
    ("reconstruct", {"target": TARGET, "shape": (4096, 4096, 4096)}, r"memory|free"),
    ("match", {"structure": PHASES, "shape": (16.5, 16)}, r"shape"),
    ("interpolate", {"a": TARGET, "b": TARGET, "n": 1}, r"\bn\b"),
    ("merge", {"yx": TARGET, "zx": TARGET, "tolerance": float("nan")}, r"tolerance"),
    ("reconstruct_ensemble", {"target": TARGET, "shape": (16, 16), "seeds": [1, 1], "client": "serial"}, r"seeds"),
    # generators: shapes, ranges, memory
    ("make_grain_structure", {"shape": (16.7, 16)}, r"shape"),
    ("make_grain_structure", {"shape": (4096, 4096, 4096)}, r"memory|free"),
    ("make_grain_structure", {"shape": (16, 16), "n_grains": 10**7}, r"n_grains"),
    ("make_particles", {"shape": (1024,) * 3}, r"memory|free"),
    ("make_particles", {"shape": (64, 64), "volume_fraction": 0.9}, r"volume_fraction"),
    ("make_two_phase", {"shape": (16, 16), "correlation_length": float("inf")}, r"correlation_length"),
    ("make_lamellae", {"shape": (16, 16), "fraction": 1.5}, r"fraction"),
    # fingerprints and models
    ("embed", {"fingerprints": np.ones((10, 4))}, r"different value"),
    ("embed", {"fingerprints": np.ones((10, 4)), "method": "tsne"}, r"different value"),
    ("embed", {"fingerprints": FINGERPRINTS, "method": "umap"}, r"method"),
    ("embed", {"fingerprints": np.where(FINGERPRINTS > 1, np.nan, FINGERPRINTS)}, r"NaN"),
    ("classify", {"fingerprints": FINGERPRINTS, "labels": np.zeros(12)}, r"two classes"),
    ("fit_property", {"fingerprints": FINGERPRINTS, "values": np.ones(5)}, r"values"),
    ("fit_property", {"fingerprints": FINGERPRINTS, "values": np.ones(12), "model": "x"}, r"model"),
    ("ood_score", {"z": FINGERPRINTS, "reference": FINGERPRINTS, "variance": 2.0}, r"variance"),
    ("decode", {"model": MODEL, "z": np.zeros((3, 7))}, r"latent dimension"),
    ("decode", {"model": "model.safetensors", "z": np.zeros((3, 4))}, r"model"),
    ("encode", {"model": MODEL, "image": RNG.random((96, 96)), "stride": 0}, r"stride"),
    ("encode", {"model": MODEL, "image": GREY.astype(complex)}, r"complex"),
    ("traverse", {"model": MODEL, "z": np.zeros(4), "dim": 9}, r"dim"),
    ("interpolate_latent", {"model": MODEL, "z1": np.zeros(4), "z2": np.zeros(4), "steps": 1}, r"steps"),
    ("gaussian_cloud", {"model": MODEL, "z": np.zeros(4), "gamma": -1}, r"gamma"),
    ("sample_latent", {"model": MODEL, "fingerprints": FINGERPRINTS, "n": 2.5}, r"\bn\b"),
    ("decoder_probes", {"model": MODEL, "dims": (9,)}, r"dims"),
    ("train_vae", {"images": [GREY.astype(complex)]}, r"complex"),
    ("train_vae", {"images": []}, r"images"),
    ("train_vae", {"images": [RNG.random((96, 96))], "epochs": 0}, r"epochs"),
    ("train_vae", {"images": [RNG.random((96, 96))], "architecture": "mlp"}, r"architecture"),
    ("fit_pixel_classifier", {"images": GREY, "scribbles": np.zeros((24, 24), int)}, r"scribbles"),
    ("fit_pixel_classifier", {"images": GREY, "scribbles": np.zeros((10, 24), int)}, r"shape"),
    ("fit_pixel_classifier", {"images": GREY, "scribbles": PHASES, "sigma_min": "x"}, r"sigma_min"),
    ("window_properties", {"image": GRAINS, "patch_size": 8, "stride": 4, "name": "x", "is_labels": True}, r"name"),
    ("load_example", {"name": "x"}, r"example"),
    ("generation_quality", {"generated": [PHASES], "real": [PHASES] * 3, "kind": "x"}, r"kind"),
    ("generation_quality", {"generated": [PHASES], "real": [PHASES] * 2}, r"at least 3"),
    ("walk_quality", {"model": None, "walk": None, "real": GREY}, r"model"),
    ("structure_quality", {"model": None, "structures": PHASES, "real": GREY}, r"model"),
    ("structure_quality", {"model": MODEL, "structures": [], "real": GREY}, r"structures"),
    ("structure_quality", {"model": MODEL, "structures": [NAN], "real": GREY}, r"structures\[0\]"),
    ("structure_quality", {"model": MODEL, "structures": VOLUME, "real": GREY, "spacing": 0}, r"spacing"),
    ("fit_descriptor_head", {"model": MODEL, "images": [GREY]}, r"at least 64 x 64"),
    ("structure_from_fingerprint", {"head": None, "z": np.zeros(4), "shape": (32, 32)}, r"head"),
    ("fit_grain_head", {"model": MODEL, "label_maps": [GRAINS]}, r"grain distance maps"),
    ("grains_from_fingerprint", {"head": None, "z": np.zeros(4), "shape": (32, 32)}, r"head"),
    ("grow_grains", {"shape": (16, 16), "mean_area": 20.0, "window": 32}, r"sections of at least 32"),
    ("grow_grains", {"shape": (32, 32), "mean_area": float("nan"), "window": 32}, r"mean_area"),
    ("grow_grains", {"shape": (32, 32), "mean_area": 20.0, "window": 2.5}, r"window"),
    ("grow_grains", {"shape": (32, 32), "mean_area": 20.0, "window": "a"}, r"window"),
    ("grow_grains", {"shape": (32, 32), "mean_area": 20.0, "window": 32, "growth": 0.5}, r"growth"),
    # files
    ("write_microstructure", {"path": "x.tif", "data": None}, r"data"),
    ("write_microstructure", {"path": "x.tif", "data": PHASES, "scale": (1.0, -1.0)}, r"scale"),
    ("write_microstructure", {"path": "x.tif", "data": PHASES, "layer_type": "points"}, r"layer_type"),
    ("read_microstructure", {"path": "does/not/exist.tif"}, r"does not exist"),
    ("save_model", {"model": MODEL, "path": "."}, r"folder"),
    ("load_model", {"path": "missing-model"}, r"could not be read"),
    ("load_builtin_model", {"name": "potts-256"}, r"unknown built-in model.*li2018-two-phase"),
    ("load_builtin_model", {"name": ["li2018-two-phase"]}, r"unknown built-in model"),
    ("load_builtin_model", {"device": "nope"}, r"unknown device 'nope'"),
    ("encode_folder", {"model": MODEL, "folder": "no-such-folder"}, r"not a folder"),
    ("segment_folder", {"folder": ".", "out_folder": "out", "kind": "texture"}, r"kind"),
    ("labels_to_boundaries", {"labels": np.stack([GRAINS] * 3, -1).astype(np.uint8)}, r"RGB"),
    ("segment_with_scribbles", {"image": GREY, "scribbles": np.zeros((10, 24), int)}, r"shape"),
    ("decode_labels", {"model": MODEL, "z": np.zeros(4)}, r"intensities"),
    ("reference_tortuosity", {"structure": PHASES}, r"3D"),
    ("archie_exponent", {"structure": PHASES}, r"3D"),
    ("archie_exponent", {"structure": np.zeros((8, 8, 8), np.uint8), "phase": 1}, r"fills 0%"),
    ("reference_exponents", {"structure": PHASES}, r"3D"),
    ("reference_exponents", {"structure": VOLUME, "skip": 1}, r"phase numbers"),
]


@pytest.mark.filterwarnings("ignore:The image looks like an RGB")  # an RGB input is converted, then refused
@pytest.mark.parametrize(("name", "kwargs", "pattern"), CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)])
def test_bad_input_is_refused_with_a_message_naming_it(name, kwargs, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a refused write could leave behind lands in the repository
    start = time.perf_counter()
    with pytest.raises(m.InputError) as err:
        getattr(m, name)(**kwargs)
    assert re.search(pattern, str(err.value)), f"{name}: {err.value!r} does not mention {pattern!r}"
    assert time.perf_counter() - start < 20, "refused only after heavy work"
    assert not list(tmp_path.iterdir()), "a refused call wrote a file"


def test_input_error_is_a_value_error():
    """``except ValueError`` in user scripts keeps working."""
    assert issubclass(m.InputError, ValueError)


def test_every_package_function_is_in_the_contract_table_or_the_fuzz():
    """A new public function needs contract rows (or a reason in EXEMPT)."""
    # the descriptor registry's helpers (for developers), and generator forms, which check when iterated, as their
    # plain forms (in the table) do
    exempt = {"available_descriptors", "register_descriptor", "reconstruct_iter", "reconstruct_batch_iter",
              "reconstruct_ensemble_iter", "train_vae_iter"}
    functions = {n for n in m.__all__ if callable(getattr(m, n)) and not isinstance(getattr(m, n), type)}
    covered = {name for name, _, _ in CASES}
    assert functions - covered - exempt == set()


def test_rgb_where_grey_is_meant_is_converted_with_a_warning():
    """RGB(A) is converted to grey (with a warning) where a micrograph is meant, and the result matches the grey
    image's own segmentation: the luminance of three equal channels is that channel."""
    with pytest.warns(UserWarning, match="RGB"):
        from_rgb = m.segment_phases(RGB)
    np.testing.assert_array_equal(from_rgb, m.segment_phases(GREY))


def test_sparse_huge_grain_ids_are_measured_without_allocating_by_value():
    """Grain ids of 2**40 would make per-grain tables allocate terabytes; they are renumbered inside, the table
    keeps the caller's ids, and the areas are those counted independently with numpy."""
    table, summary = m.grain_statistics(GRAINS.astype(np.int64) * 2**40)
    assert summary["n_grains"] == len(np.unique(GRAINS))
    np.testing.assert_array_equal(np.sort(table["label"]), np.unique(GRAINS) * 2**40)
    np.testing.assert_allclose(sorted(table["area"]), sorted(np.bincount(GRAINS.ravel())[1:]))


def test_multi_otsu_beyond_its_computable_range_is_refused_at_once():
    """Six classes stay fast through fewer histogram bins; seven are refused at once instead of running for hours."""
    start = time.perf_counter()
    phases = m.segment_phases(RNG.random((64, 64)), n_phases=6, method="multiotsu", denoise_method="none", min_size=0)
    assert set(np.unique(phases)) <= set(range(6)) and len(np.unique(phases)) == 6
    with pytest.raises(m.InputError, match="n_phases=7"):
        m.segment_phases(GREY, n_phases=7)
    assert time.perf_counter() - start < 20


def test_decoding_a_large_batch_goes_in_chunks():
    """Many fingerprints are decoded in chunks into one output; each chunk gives what decoding it alone gives."""
    z = RNG.normal(size=(600, 4))
    out = m.decode(MODEL, z)
    assert out.shape == (600, 64, 64)
    np.testing.assert_allclose(out[300:310], m.decode(MODEL, z[300:310]), atol=1e-5)


def test_an_inflating_npz_is_refused_before_it_is_read(tmp_path):
    """A small .npz whose member inflates beyond the free memory is refused from its header."""
    bomb = tmp_path / "bomb.npz"
    header = b"\x93NUMPY\x01\x00v\x00"
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }"
    text = text + " " * (118 - len(text) - 1) + "\n"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.npy", header + text.encode() + bytes(1024))
    with pytest.raises(m.InputError, match="memory"):
        m.read_microstructure(bomb)


def test_save_model_keeps_a_dotted_name(tmp_path):
    """``run.v2`` is saved as run.v2.safetensors/.json, so it cannot overwrite a model saved as ``run``."""
    m.save_model(MODEL, tmp_path / "run")
    weights, config = m.save_model(MODEL, tmp_path / "run.v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.safetensors", "run.v2.json",
                                                         "run.v2.safetensors"]
    assert m.load_model(tmp_path / "run.v2").config["latent_dim"] == 4


def test_legitimate_inputs_stay_accepted():
    """Inputs the contract must not refuse (a review of the contract found each refused once): a phase volume with
    4 columns is not an RGB image, zero-temperature grain growth, 0-d arrays as numbers, a sparse encoding stride
    beyond the patch, a fingerprint map to decode, a torch.device, and numpy arrays or sets as lists."""
    import torch

    volume = (RNG.random((16, 16, 4)) > 0.5).astype(np.int64)
    assert m.phase_fractions(volume)[1] == pytest.approx(volume.mean())
    assert m.make_grain_structure((32, 32), temperature=0, stage=np.array(3), device="cpu").shape == (32, 32)
    image = RNG.random((160, 160))
    assert m.encode(MODEL, image, stride=128).shape == (1, 1, 4)
    assert m.decode(MODEL, m.encode(MODEL, image, stride=32)).shape == (16, 64, 64)
    assert m.ReconstructionSettings(device=torch.device("cpu")).device == torch.device("cpu")
    assert list(m.tortuosity(VOLUME, axes=np.array([0, 1]))) == ["z", "y"]
    report = m.structure_report(VOLUME, phases={1}, transport=False)
    assert list(report.phases) == [1]
