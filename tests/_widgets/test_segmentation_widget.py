import numpy as np
import pandas as pd
import pytest

from napari_microfingerprint import make_grain_structure, make_micrograph, segment_phases
from napari_microfingerprint._widgets.segmentation import SegmentationWidget

PLUGIN = "napari-microfingerprint"


def _wait_for_layers(qtbot, viewer, n, widget=None, timeout=60_000):
    """Until the viewer holds ``n`` layers and, given the ``widget``, its run has ended: the result is written
    when the worker returns, and the widget takes another run only after the worker has finished (a second run
    started in between was refused as "still running", which once made the CI time out here)."""
    qtbot.waitUntil(lambda: len(viewer.layers) >= n and (widget is None or widget.progress.worker is None),
                    timeout=timeout)


def test_dock_widget_segments_a_sample_end_to_end(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "grain_micrograph")
    image = viewer.layers[0]
    image.scale = (0.5, 0.5)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    assert isinstance(widget, SegmentationWidget)

    widget.phase_input.value = image
    widget.run_phases()
    _wait_for_layers(qtbot, viewer, 2, widget)
    phases = viewer.layers[-1]
    assert phases.name.startswith(image.name) and "phases" in phases.name
    assert set(np.unique(phases.data)) == {0, 1}
    assert tuple(phases.scale) == (0.5, 0.5)

    widget.grain_input.value = image
    widget.run_grains()
    _wait_for_layers(qtbot, viewer, 3)
    grains = viewer.layers[-1]
    assert "grains" in grains.name
    assert grains.data.max() > 100
    features = grains.features
    assert len(features) == grains.data.max()
    assert {"area", "equivalent_radius", "n_neighbours", "orientation_deg"} <= set(features.columns)
    # physical units: areas in um^2 at 0.5 um per pixel
    assert features["area"].sum() == pytest.approx(grains.data.size * 0.25)
    assert "grains N =" in widget.summary_label.text() and "phase fractions" in widget.summary_label.text()
    assert widget.table.rowCount() == len(features)
    np.testing.assert_array_equal(image.data, viewer.layers[0].data)  # the input is untouched

    path = widget.export_csv(str(tmp_path / "grains.csv"))
    table = pd.read_csv(path)
    assert len(table) == len(features) and messages["error"] == []


def test_measure_a_3d_labels_layer_in_physical_units(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    vol = make_grain_structure((24, 24, 24), n_grains=30, stage=2, seed=0, device="cpu")
    layer = viewer.add_labels(vol, name="vol", scale=(2.0, 1.0, 1.0))
    widget = SegmentationWidget(viewer)
    widget.stats_input.value = layer
    widget.periodic.value = True
    widget.run_measure()
    qtbot.waitUntil(lambda: widget.summary is not None, timeout=60_000)
    assert widget.summary["n_grains"] == len(np.unique(vol))
    assert layer.features["volume"].sum() == pytest.approx(vol.size * 2.0)
    assert "mean volume" in widget.summary_label.text()
    np.testing.assert_array_equal(layer.data, vol)


def test_preview_reuses_one_layer(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    img = make_micrograph(make_grain_structure((64, 64), stage="early", seed=0, device="cpu"))
    layer = viewer.add_image(img, name="m")
    widget = SegmentationWidget(viewer)
    widget.phase_input.value = layer
    widget.preview_phases()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    first = viewer.layers["m phases (preview)"]
    otsu = np.array(first.data, copy=True)
    widget.method.value = "manual"
    widget.thresholds.value = "0.8"
    widget.preview_phases()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    second = viewer.layers["m phases (preview)"]
    assert first is second and len(viewer.layers) == 2
    np.testing.assert_array_equal(second.data, segment_phases(img, method="manual", thresholds=[0.8]))
    assert second.data.mean() < otsu.mean()


@pytest.mark.parametrize(
    "data, kind, action, expected",
    [
        (np.full((32, 32), 3.0), "image", "run_phases", "constant"),
        (np.where(np.eye(32) > 0, np.nan, 1.0) + np.arange(32), "image", "run_phases", "NaN"),
        (np.zeros((2, 3, 16, 16)) + np.arange(16), "image", "run_phases", "4 dimensions"),
        (np.arange(256).reshape(16, 16) % 3, "labels", "run_phases", "Labels layer"),
        (np.arange(256).reshape(16, 16) % 5, "labels", "run_grains", "already holds"),
        (np.zeros((16, 16), dtype=int), "labels", "run_measure", "no grains"),
        (np.linspace(0, 1, 256).reshape(16, 16), "image", "run_measure", "Image layer"),
    ],
)
def test_bad_input_gives_a_notification_and_keeps_layers(make_napari_viewer, qtbot, messages, data, kind, action,
                                                         expected):
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, name="bad") if kind == "image" else viewer.add_labels(data, name="bad")
    before = np.array(layer.data, copy=True)
    widget = SegmentationWidget(viewer)
    for combo in (widget.phase_input, widget.grain_input, widget.stats_input):
        combo.value = layer
    getattr(widget, action)()
    qtbot.waitUntil(lambda: len(messages["error"]) > 0, timeout=30_000)
    assert expected in messages["error"][0]
    assert len(viewer.layers) == 1
    np.testing.assert_array_equal(np.asarray(layer.data), before)


def test_rgb_image_is_converted_with_a_notice(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    grey = make_micrograph(make_grain_structure((64, 64), stage="early", seed=0, device="cpu"))
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    layer = viewer.add_image(rgb, name="rgb", rgb=True)
    widget = SegmentationWidget(viewer)
    widget.phase_input.value = layer
    widget.run_phases()
    _wait_for_layers(qtbot, viewer, 2)
    assert any("converted to greyscale" in m for m in messages["info"])
    assert viewer.layers[-1].data.shape == (64, 64)


def test_float_labels_are_rejected(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.linspace(0, 1, 64).reshape(8, 8), name="float")
    widget = SegmentationWidget(viewer)
    widget.grain_input.value = layer
    widget.source.value = "binary"
    widget.run_grains()
    qtbot.waitUntil(lambda: len(messages["error"]) > 0, timeout=30_000)
    assert "fractional" in messages["error"][0]
    assert len(viewer.layers) == 1


def test_cancel_writes_no_layer(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    vol = make_micrograph(make_grain_structure((48, 48, 48), n_grains=80, stage=1, seed=0, device="cpu"))
    layer = viewer.add_image(vol, name="vol")
    widget = SegmentationWidget(viewer)
    widget.grain_input.value = layer
    worker = widget.run_grains()
    widget.progress.cancel()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    assert worker.abort_requested
    assert len(viewer.layers) == 1 and messages["error"] == []


def test_screenshot_renders_labels(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(make_grain_structure((64, 64), stage="early", seed=0, device="cpu"))
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].max() > 0
    assert len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 10
