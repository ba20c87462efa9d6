import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PLUGIN = "napari-microfingerprint"


def test_npe2_validate_with_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2), "validate", "--imports", PLUGIN], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("key", ["grains_2d", "two_phase", "particles", "lamellae", "ceramics", "alloy",
                                 "grain_micrograph"])
def test_samples_open(make_napari_viewer, key):
    viewer = make_napari_viewer()
    layers = viewer.open_sample(PLUGIN, key)
    assert layers and layers[0].data.ndim == 2 and np.asarray(layers[0].data).size > 0


def test_reader_and_writer_through_napari(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    lab = np.random.default_rng(0).integers(0, 4, size=(6, 20, 30)).astype(np.uint8)
    layer = viewer.add_labels(lab, name="phases", scale=(2.0, 0.5, 0.5))
    written = viewer.layers.save(str(tmp_path / "phases.tif"), selected=False, plugin=PLUGIN)
    assert written
    [opened] = viewer.open(str(tmp_path / "phases.tif"), plugin=PLUGIN)
    assert opened.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(opened.data, lab)
    assert tuple(opened.scale) == (2.0, 0.5, 0.5)
    del layer
