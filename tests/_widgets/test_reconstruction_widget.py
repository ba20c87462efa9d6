import numpy as np
import pytest

from napari_microfingerprint import make_two_phase
from napari_microfingerprint._widgets.reconstruction import ReconstructionWidget

PLUGIN = "napari-microfingerprint"


def _widget(viewer, layer, size=(16, 16, 16), iters=60):
    widget = ReconstructionWidget(viewer)
    widget.source.value = layer
    widget.limit_to.value = 3
    widget.size_z.value, widget.size_y.value, widget.size_x.value = size
    widget.max_iter.value = iters
    widget.device.value = "cpu"
    return widget


def test_tiny_3d_reconstruction_writes_layers(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    _, dock_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
    assert isinstance(dock_widget, ReconstructionWidget)
    src = make_two_phase((32, 32), 0.4, 2.0, seed=0)
    layer = viewer.add_labels(src, name="slice", scale=(0.5, 0.5))
    widget = _widget(viewer, layer)
    widget.run()
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=120_000)
    labels, soft = viewer.layers[1], viewer.layers[2]
    assert labels.data.shape == (16, 16, 16) and "reconstruction 3D" in labels.name
    assert tuple(labels.scale) == (0.5, 0.5, 0.5)
    info = labels.metadata["microfingerprint"]
    assert set(info["errors"][0]) == {"z", "y", "x"} and info["settings"]["limit_to"] == 3
    assert soft.data.shape == (16, 16, 16) and 0.0 <= soft.data.min() and soft.data.max() <= 1.0
    assert viewer.dims.ndisplay == 3
    assert "undecided" in widget.report.text()
    np.testing.assert_array_equal(layer.data, src)
    assert messages["error"] == []


def test_cancel_keeps_the_best_state(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=1), name="slice")
    widget = _widget(viewer, layer, size=(24, 24, 24), iters=5000)
    widget.multigrid.value = False
    widget.run()
    qtbot.waitUntil(lambda: len(widget._history) >= 3, timeout=60_000)
    widget.progress.cancel()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    result_layers = [lay for lay in viewer.layers if "reconstruction 3D" in lay.name]
    assert len(result_layers) == 1
    assert result_layers[0].metadata["microfingerprint"]["cancelled"] is True
    assert widget.result.evaluations < 5000
    assert "cancelled" in widget.report.text()


def test_interpolation_writes_a_stack(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    a = viewer.add_labels(make_two_phase((32, 32), 0.3, 1.5, seed=2), name="a")
    b = viewer.add_labels(make_two_phase((32, 32), 0.5, 3.0, seed=3), name="b")
    widget = _widget(viewer, a, size=(1, 24, 24), iters=40)
    widget.mode.value = "interpolate between two layers"
    widget.other.value = b
    widget.steps.value = 3
    widget.run()
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=120_000)
    stack = viewer.layers[-1]
    assert stack.data.shape == (3, 24, 24) and "interpolated" in stack.name
    fractions = stack.data.reshape(3, -1).mean(axis=1)
    assert fractions[0] < fractions[1] < fractions[2]  # volume fraction moves from 0.3 to 0.5


def test_anisotropic_target_from_orthogonal_slices(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    yx = viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=4), name="yx")
    zx = viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=5), name="zx")
    widget = _widget(viewer, yx, iters=40)
    widget.zx.value = zx
    widget.run()
    qtbot.waitUntil(lambda: len(viewer.layers) == 4, timeout=120_000)
    assert set(viewer.layers[2].metadata["microfingerprint"]["errors"][0]) == {"z", "y"}  # x is left free


@pytest.mark.parametrize(
    "kind, data, change, expected",
    [
        ("image", np.random.default_rng(0).random((32, 32)), {}, "Segmentation"),
        ("labels", np.zeros((32, 32), dtype=int), {}, "single phase"),
        ("labels", np.arange(32 * 32).reshape(32, 32) % 40, {}, "at most"),
        ("labels", make_two_phase((32, 32), 0.4, 2.0), {"limit_to": 20}, "limit_to"),
        ("labels", make_two_phase((32, 32), 0.4, 2.0), {"size_z": 4}, "limit_to"),
        ("labels", make_two_phase((32, 32), 0.4, 2.0), {"size_z": 4000, "size_y": 4000, "size_x": 4000},
         "needs about"),
        ("labels", make_two_phase((32, 32, 32), 0.4, 2.0), {}, "needs a 2D"),
    ],
)
def test_bad_input_is_reported(make_napari_viewer, qtbot, messages, kind, data, change, expected):
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, name="in") if kind == "image" else viewer.add_labels(data, name="in")
    widget = _widget(viewer, layer)
    for key, value in change.items():
        getattr(widget, key).value = value
    widget.run()
    qtbot.waitUntil(lambda: len(messages["error"]) > 0, timeout=30_000)
    assert expected in messages["error"][0]
    assert len(viewer.layers) == 1


def test_report_after_a_run_and_check_and_clusters(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    src = make_two_phase((48, 48), 0.3, 2.0, seed=3)
    layer = viewer.add_labels(src, name="slice", scale=(2.0, 2.0))
    widget = _widget(viewer, layer, size=(16, 16, 16))
    widget.run()
    qtbot.waitUntil(lambda: widget.last_report is not None, timeout=120_000)
    report = widget.last_report
    assert report.shape == (16, 16, 16) and report.spacing == (2.0, 2.0, 2.0)
    assert "2D sections" in report.mode  # a slice is compared on the 2D metrics of the result's sections
    table = widget.report_panel.table
    assert table.rowCount() == len(report.table()) > 20
    metrics = {table.item(r, 1).text() for r in range(table.rowCount())}
    assert {"tortuosity_z", "euler_density", "volume_fraction (2D sections)"} <= metrics
    assert "phase 1" in widget.report_panel.summary.text()

    result = next(lay for lay in viewer.layers if "reconstruction 3D" in lay.name)
    widget.check_layer.value = result
    widget.check_reference.value = None
    widget.check_transport.value = False
    widget.last_report = None
    widget.check()
    qtbot.waitUntil(lambda: widget.last_report is not None, timeout=60_000)
    assert widget.last_report.comparison is None and "tortuosity_z" not in widget.last_report.phases[1].values

    before = len(viewer.layers)
    widget.cluster_phase.value = 1
    widget.show_clusters()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    clusters = viewer.layers[-1]
    assert len(viewer.layers) == before + 1 and "clusters of phase 1" in clusters.name
    assert set(np.unique(clusters.data)) <= {0, 1, 2} and (clusters.data == 1).any()
    np.testing.assert_array_equal(clusters.data > 0, result.data == 1)
    assert messages["error"] == []


def test_tortuosity_target_from_the_widget(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    src = make_two_phase((48, 48), 0.35, 2.0, seed=3)
    layer = viewer.add_labels(src, name="slice")
    widget = _widget(viewer, layer, size=(16, 16, 16))
    widget.tau_mode.value = "same as the source volume"
    widget.run()  # a 2D source has no 3D tortuosity: a notification, no run
    assert any("3D source" in m for m in messages["error"]) and widget.progress.worker is None
    widget.tau_mode.value = "this value"
    widget.tau_value.value = 2.0
    widget.floor_mode.value = "this value"
    widget.floor_m.value = 2.4
    widget.run()
    qtbot.waitUntil(lambda: widget.last_report is not None, timeout=120_000)
    result = next(lay for lay in viewer.layers if "reconstruction 3D" in lay.name)
    assert result.metadata["microfingerprint"]["settings"]["tortuosity"] == {1: 2.0}
    assert result.metadata["microfingerprint"]["settings"]["archie_exponent"] == 2.4


def test_a_source_too_small_for_a_spread_keeps_the_run(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(make_two_phase((40, 40), 0.4, 2.0, seed=1)[:9, :9], name="tiny slice")
    widget = _widget(viewer, layer, size=(16, 16, 16))
    widget.run()
    qtbot.waitUntil(lambda: widget.last_report is not None, timeout=120_000)
    assert widget.last_report.comparison is None and "not compared" in widget.last_report.mode
    assert any("reconstruction 3D" in lay.name for lay in viewer.layers) and messages["error"] == []
    assert "not compared" in widget.report_panel.summary.text()
    widget.check_layer.value = next(lay for lay in viewer.layers if "reconstruction 3D" in lay.name)
    widget.check_reference.value = layer  # chosen explicitly: the same problem is an error now
    widget.check()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    assert any("too small to give a spread" in m for m in messages["error"])


def test_tortuosity_of_the_source_volume_is_solved_in_the_worker(make_napari_viewer, qtbot, messages):
    from napari_microfingerprint import archie_exponent, reference_tortuosity

    viewer = make_napari_viewer()
    vol = make_two_phase((16, 16, 16), 0.45, 2.0, seed=2)  # phase 0 (0.55) is a network phase too
    layer = viewer.add_labels(vol, name="volume")
    widget = _widget(viewer, layer, size=(16, 16, 16))
    widget.mode.value = "3D from 3D volume"
    widget.tau_mode.value = "same as the source volume"
    worker = widget.run()
    assert worker is not None and "tortuosity" not in str(widget.report.text())  # nothing solved in the GUI yet
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=120_000)
    result = next(lay for lay in viewer.layers if "reconstruction 3D" in lay.name)
    wanted = result.metadata["microfingerprint"]["settings"]["tortuosity"]
    expected = reference_tortuosity(vol)
    assert set(wanted) == set(expected) and messages["error"] == []
    for phase, taus in expected.items():
        assert wanted[phase] == pytest.approx(taus, rel=1e-9)
    # the connectivity floor of the other network phase uses the source's own Archie exponent; the phase with a
    # target has no floor, so none is solved for it
    assert set(expected) == {1} and result.metadata["microfingerprint"]["settings"]["archie_exponent"] == \
        {0: pytest.approx(archie_exponent(vol, 0), rel=1e-9)}


def test_ensemble_stacks_one_volume_per_seed(make_napari_viewer, qtbot, messages):
    from napari_microfingerprint import characterize, reconstruct

    viewer = make_napari_viewer()
    src = make_two_phase((32, 32), 0.4, 2.0, seed=6)
    layer = viewer.add_labels(src, name="slice")
    widget = _widget(viewer, layer, iters=40)
    widget.seed.value = 3
    widget.ensemble.value = 3
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.worker is None and len(viewer.layers) == 2, timeout=180_000)
    stack = viewer.layers[-1]
    assert stack.data.shape == (3, 16, 16, 16) and "ensemble of 3 3D (seeds 3-5)" in stack.name
    # each slice of the stack is the API's reconstruction with that seed
    target = characterize(src, limit_to=3)
    for k, seed in enumerate((3, 4, 5)):
        api = reconstruct(target, (16, 16, 16), seed=seed, max_iter=40, device="cpu")
        assert (stack.data[k] == api.labels).mean() > 0.99
    assert messages["error"] == []


def test_cancelled_ensemble_keeps_the_finished_volumes(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=7), name="slice")
    widget = _widget(viewer, layer, iters=40)
    widget.ensemble.value = 50
    widget.run()
    qtbot.waitUntil(lambda: widget.runs_done >= 1, timeout=120_000)
    widget.progress.cancel()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    stacks = [lay for lay in viewer.layers if "ensemble" in lay.name]
    assert len(stacks) == 1
    n = stacks[0].data.shape[0]
    assert widget.runs_done <= n < 50 and stacks[0].data.shape[1:] == (16, 16, 16)
    assert not stacks[0].metadata["microfingerprint"]["cancelled"]


def test_a_lost_phase_reaches_the_user_as_a_notification(make_napari_viewer, qtbot, messages):
    """A reconstruction that lost a phase (a section of the Leopard's dense zone, 115 pore pixels in 3 clusters)
    says so in a napari warning notification; the layer is still written, for the user to see."""
    from pathlib import Path

    section = np.load(Path(__file__).parents[1] / "data" / "leopard_sections.npz")["dense_z50"]
    viewer = make_napari_viewer()
    layer = viewer.add_labels(section, name="dense")
    widget = _widget(viewer, layer, size=(24, 24, 24), iters=500)
    widget.limit_to.value = 8
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=120_000)
    result = next(lay for lay in viewer.layers if "reconstruction 3D" in lay.name)
    assert not (result.data == 1).any() and widget.result.lost_phases == [1]
    assert any("'dense': the reconstruction lost phase 1" in m for m in messages["warning"]), messages
