"""The Segmentation dock's pixel-classifier section, through a real viewer."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from napari_microfingerprint._widgets.segmentation import SegmentationWidget

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_pixel_classifier import _iou, _strokes, _textured  # noqa: E402


def test_scribbles_train_and_predict_a_phase_layer(make_napari_viewer, qtbot, messages, tmp_path):
    viewer = make_napari_viewer()
    image, truth = _textured((96, 96), seed=6)
    img_layer = viewer.add_image(image, name="micrograph", scale=(0.5, 0.5))
    widget = SegmentationWidget(viewer)  # kept: the section lives inside it
    section = widget.scribble_section
    section.image.value = img_layer
    scrib = section.new_scribbles()
    assert scrib.data.shape == image.shape and scrib.mode == "paint" and section.scribbles.value is scrib
    painted = _strokes(truth, per_phase=5)
    scrib.data = painted.copy()
    section.sigma_max.value = 8.0
    section.probabilities.value = True
    section.run()
    qtbot.waitUntil(lambda: "micrograph phases (pixel classifier)" in viewer.layers, timeout=60_000)
    qtbot.waitUntil(lambda: section.progress.worker is None, timeout=60_000)
    result = viewer.layers["micrograph phases (pixel classifier)"]
    assert _iou(result.data, truth) > 0.85 and tuple(result.scale) == (0.5, 0.5)
    assert viewer.layers["micrograph class probabilities"].data.shape == (2, 96, 96)
    np.testing.assert_array_equal(scrib.data, painted)  # the scribbles are never overwritten
    np.testing.assert_array_equal(img_layer.data, image)
    # a second run updates the same result layer; a saved classifier predicts the same after loading
    n_layers = len(viewer.layers)
    section.save(str(tmp_path / "clf"))
    result.data = np.zeros_like(result.data)
    section.load(str(tmp_path / "clf.json"))
    qtbot.waitUntil(lambda: section.progress.worker is None and result.data.any(), timeout=60_000)
    assert len(viewer.layers) == n_layers and _iou(result.data, truth) > 0.85
    assert messages["error"] == []


def test_without_scribbles_a_notification_explains(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((32, 32)), name="img")
    widget = SegmentationWidget(viewer)  # kept: the section lives inside it
    section = widget.scribble_section
    assert section.run() is None
    assert any("New scribble layer" in m for m in messages["error"])


def test_live_mode_retrains_after_a_stroke(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    image, truth = _textured((64, 64), seed=7)
    widget = SegmentationWidget(viewer)  # kept: the section lives inside it
    section = widget.scribble_section
    section.image.value = viewer.add_image(image, name="img")
    scrib = section.new_scribbles()
    scrib.data = _strokes(truth, per_phase=4)
    section.sigma_max.value = 4.0
    section.live.value = True
    scrib.events.paint(value=[])  # what napari emits when a brush stroke ends
    qtbot.waitUntil(lambda: "img phases (pixel classifier)" in viewer.layers, timeout=60_000)
    section.live.value = False
    qtbot.waitUntil(lambda: section.progress.worker is None, timeout=60_000)
    assert messages["error"] == []
