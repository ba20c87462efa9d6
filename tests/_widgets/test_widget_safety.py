"""The dock widgets cannot hurt the napari session: multiphase results display in 3D, closing the viewer or the
dock stops running workers, a run cancelled before its first result writes nothing, one run at a time, and slow
calls run in workers."""
import threading

import numpy as np
from scipy import ndimage

from napari_microfingerprint import make_grain_structure, make_micrograph, make_two_phase
from napari_microfingerprint._widgets import encoding as enc_module
from napari_microfingerprint._widgets import reconstruction as rec_module
from napari_microfingerprint._widgets import segmentation as seg_module
from napari_microfingerprint._widgets import traversal as trav_module
from napari_microfingerprint._widgets.encoding import EncodingWidget
from napari_microfingerprint._widgets.reconstruction import ReconstructionWidget
from napari_microfingerprint._widgets.segmentation import SegmentationWidget
from napari_microfingerprint._widgets.traversal import TraversalWidget
from napari_microfingerprint.core import threads
from napari_microfingerprint.core.progress import run_to_end
from napari_microfingerprint.core.segmentation import MAX_OTSU_PHASES, MAX_PHASES
from napari_microfingerprint.core.vae.training import train_vae_iter

PLUGIN = "napari-microfingerprint"


def _reconstruction(widget, layer, size=12, iters=30):
    widget.source.value = layer
    widget.limit_to.value = 3
    widget.size_z.value = widget.size_y.value = widget.size_x.value = size
    widget.max_iter.value = iters
    widget.device.value = "cpu"
    return widget


def _long_reconstruction(widget, viewer):
    """Set up a 24^3 reconstruction of 100 000 evaluations: it runs until it is stopped."""
    return _reconstruction(widget, viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=1), name="slice"),
                           size=24, iters=100_000)


def _training(widget, viewer, epochs=1):
    layers = [viewer.add_labels(make_grain_structure((96, 96), stage="late", seed=s, device="cpu"), name=f"g{s}")
              for s in range(2)]
    widget.train_layers.value = layers
    widget.latent_dim.value = 4
    widget.epochs.value = epochs
    widget.patches.value = 24
    widget.device.value = "cpu"
    return layers


def _untrained_model(images):
    """A valid VAE model in no time: a training cancelled before its first batch."""
    stop = threading.Event()
    stop.set()
    return run_to_end(train_vae_iter(images, patch_size=64, latent_dim=4, patches_per_image=24, device="cpu",
                                     cancel=stop))


def _idle(widget, qtbot, timeout=60_000):
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=timeout)


def _threads_of(monkeypatch, module, name):
    """Record the thread that each call of ``module.name`` runs in."""
    seen = []
    real = getattr(module, name)

    def recorded(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return seen


def _cancelled_at_once(patch, module, name):
    """Make ``module.name`` (a cancellable core generator) see its cancel event set before its first step."""
    real = getattr(module, name)

    def cancelled(*args, cancel, **kwargs):
        cancel.set()
        return (yield from real(*args, cancel=cancel, **kwargs))

    patch.setattr(module, name, cancelled)


# ----------------------------------------------------------------- 1. multiphase results in 3D
def test_three_phase_reconstruction_displays_in_3d(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    smooth = ndimage.gaussian_filter(np.random.default_rng(0).random((32, 32)), 2.0)
    src = np.digitize(smooth, np.quantile(smooth, [0.33, 0.66])).astype(np.uint8)
    widget = _reconstruction(ReconstructionWidget(viewer), viewer.add_labels(src, name="three"))
    assert widget.show_3d.value  # the default
    widget.run()
    _idle(widget, qtbot)
    assert messages["error"] == [] and "undecided" in widget.report.text()
    assert viewer.dims.ndim == 3 and viewer.dims.ndisplay == 3
    soft = [layer for layer in viewer.layers if "probability of phase" in layer.name]
    assert len(soft) == 3 and all(layer.data.shape == (12, 12, 12) for layer in soft)
    np.testing.assert_allclose(sum(layer.data for layer in soft), 1.0, atol=1e-4)
    assert all(layer.ndim == 3 for layer in viewer.layers[1:])


# ----------------------------------------------------------------- 2. closing stops the workers
def test_closing_the_viewer_stops_running_workers(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    _, recon = viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
    _, encoder = viewer.window.add_plugin_dock_widget(PLUGIN, "VAE encoding")
    _long_reconstruction(recon, viewer)
    _training(encoder, viewer, epochs=10_000)
    workers = [recon.run(), encoder.run_training()]
    qtbot.waitUntil(lambda: len(recon._history) >= 1 and encoder.progress.bar.value() > 0, timeout=60_000)
    viewer.close()
    assert not any(worker.is_running for worker in workers)
    assert recon.progress.worker is None and encoder.progress.worker is None
    assert threads._ACTIVE == []  # the stopped runs handed their cores back to the thread governor
    qtbot.wait(300)  # what the workers sent before they stopped reaches no (deleted) widget
    assert messages["error"] == []


def test_a_refused_close_leaves_the_run_going(make_napari_viewer, qtbot, messages, monkeypatch):
    from napari._qt.qt_main_window import _QtMainWindow

    viewer = make_napari_viewer()
    _, recon = viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
    _long_reconstruction(recon, viewer)
    worker = recon.run()
    qtbot.waitUntil(lambda: len(recon._history) >= 1, timeout=60_000)
    with monkeypatch.context() as patch:  # as when the user answers no to napari's "close the window?"
        patch.setattr(_QtMainWindow, "closeEvent", lambda self, event: event.ignore())
        viewer.window._qt_window.close()
    assert recon.progress.worker is worker and not worker.abort_requested
    recon.progress.cancel()
    _idle(recon, qtbot)
    assert any("reconstruction 3D" in layer.name for layer in viewer.layers)


def test_removing_the_dock_stops_its_run(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    _, recon = viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
    _long_reconstruction(recon, viewer)
    worker = recon.run()
    qtbot.waitUntil(lambda: len(recon._history) >= 1, timeout=60_000)
    viewer.window.remove_dock_widget(recon)
    assert not worker.is_running and recon.progress.worker is None
    qtbot.wait(300)
    assert not any("reconstruction 3D" in layer.name for layer in viewer.layers)  # no result was written


def test_deleting_the_widget_stops_its_run(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    widget = _reconstruction(ReconstructionWidget(viewer),
                             viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=1), name="slice"),
                             size=24, iters=100_000)
    worker = widget.run()
    qtbot.waitUntil(lambda: len(widget._history) >= 1, timeout=60_000)
    widget.deleteLater()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    qtbot.wait(300)
    assert not any("reconstruction 3D" in layer.name for layer in viewer.layers)


# ----------------------------------------------------------------- 3. cancelled before the first result
def test_reconstruction_cancelled_before_its_first_step_writes_nothing(make_napari_viewer, qtbot, messages,
                                                                       monkeypatch):
    viewer = make_napari_viewer()
    widget = _reconstruction(ReconstructionWidget(viewer),
                             viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=1), name="slice"))
    with monkeypatch.context() as patch:
        _cancelled_at_once(patch, rec_module, "reconstruct_iter")  # the core returns a zero-evaluation state
        widget.run()
        _idle(widget, qtbot)
    widget.run()
    widget.progress.cancel()  # Cancel pressed at once
    _idle(widget, qtbot)
    assert [layer.name for layer in viewer.layers] == ["slice"] and widget.result is None
    assert sum("nothing was written" in m for m in messages["info"]) == 2
    assert widget.progress.bar.format() == "cancelled" and messages["error"] == []


def test_training_cancelled_before_its_first_epoch_keeps_the_model(make_napari_viewer, qtbot, messages,
                                                                   monkeypatch):
    viewer = make_napari_viewer()
    widget = EncodingWidget(viewer)
    layers = _training(widget, viewer)
    previous = _untrained_model([layer.data for layer in layers])
    widget.model = previous
    _cancelled_at_once(monkeypatch, enc_module, "train_vae_iter")
    widget.run_training()
    _idle(widget, qtbot)
    assert widget.model is previous and any("previous model" in m for m in messages["info"])
    assert len(viewer.layers) == 2 and messages["error"] == []  # no examples layer either


# ----------------------------------------------------------------- 4. one run at a time
def test_a_second_run_is_refused_and_the_first_stays_cancellable(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    widget = _reconstruction(ReconstructionWidget(viewer),
                             viewer.add_labels(make_two_phase((32, 32), 0.4, 2.0, seed=1), name="slice"),
                             size=24, iters=100_000)
    widget.multigrid.value = False
    first = widget.run()
    qtbot.waitUntil(lambda: len(widget._history) >= 2, timeout=60_000)
    assert widget.run() is None and widget.check() is None and widget.show_clusters() is None
    assert sum("still running" in m for m in messages["info"]) == 3
    assert widget.progress.worker is first
    widget.progress.cancel()
    _idle(widget, qtbot)
    results = [layer for layer in viewer.layers if "reconstruction 3D" in layer.name]
    assert len(results) == 1 and results[0].metadata["microfingerprint"]["cancelled"] is True
    assert widget.run() is not None  # free again
    widget.progress.cancel()
    _idle(widget, qtbot)


def test_encoding_refuses_a_second_run_during_training(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    widget = EncodingWidget(viewer)
    layers = _training(widget, viewer, epochs=10_000)
    widget.model = _untrained_model([layer.data for layer in layers])
    widget.encode_layer.value = layers[0]
    widget.run_training()
    assert widget.run_encode() is None and widget.run_decode() is None and widget.run_training() is None
    assert sum("still running" in m for m in messages["info"]) == 3
    widget.progress.cancel()
    _idle(widget, qtbot)


# ----------------------------------------------------------------- 5. slow calls in workers, cancellable
def test_phase_count_is_bounded_and_the_preview_runs_in_a_worker(make_napari_viewer, qtbot, messages,
                                                                 monkeypatch):
    viewer = make_napari_viewer()
    img = make_micrograph(make_grain_structure((64, 64), stage="early", seed=0, device="cpu"))
    widget = SegmentationWidget(viewer)
    widget.phase_input.value = viewer.add_image(img, name="m")
    assert widget.n_phases.max == MAX_OTSU_PHASES and "at most" in widget.n_phases.tooltip
    widget.method.value = "manual"
    assert widget.n_phases.max == MAX_PHASES
    widget.n_phases.value = MAX_PHASES
    widget.method.value = "multiotsu"
    assert widget.n_phases.value == widget.n_phases.max == MAX_OTSU_PHASES
    widget.n_phases.value = 4
    threads = _threads_of(monkeypatch, seg_module, "segment_phases_iter")
    widget.preview_phases()
    widget.progress.cancel()
    _idle(widget, qtbot)
    assert len(viewer.layers) == 1 and any("nothing was written" in m for m in messages["info"])
    widget.preview_phases()
    _idle(widget, qtbot)
    assert viewer.layers[-1].name == "m phases (preview)" and set(np.unique(viewer.layers[-1].data)) == {0, 1, 2, 3}
    assert threads and threading.get_ident() not in threads and messages["error"] == []


def test_characterising_runs_in_the_worker(make_napari_viewer, qtbot, messages, monkeypatch):
    viewer = make_napari_viewer()
    widget = _reconstruction(ReconstructionWidget(viewer),
                             viewer.add_labels(make_two_phase((16, 16, 16), 0.4, 2.0, seed=2), name="volume"))
    widget.mode.value = "3D from 3D volume"
    threads = _threads_of(monkeypatch, rec_module, "characterize")
    widget.run()
    _idle(widget, qtbot)
    assert threads and threading.get_ident() not in threads
    assert any("reconstruction 3D" in layer.name for layer in viewer.layers) and messages["error"] == []


def test_encode_and_decode_run_in_workers_and_cancel(make_napari_viewer, qtbot, messages, monkeypatch):
    viewer = make_napari_viewer()
    widget = EncodingWidget(viewer)
    layer = viewer.add_image(make_micrograph(make_grain_structure((96, 96), stage="late", seed=0, device="cpu")),
                             name="m")
    widget.model = _untrained_model([layer.data])
    widget.encode_layer.value = layer
    widget.stride.value = 16
    encoding = _threads_of(monkeypatch, enc_module, "encode_iter")
    decoding = _threads_of(monkeypatch, enc_module, "decode")
    widget.run_encode()
    _idle(widget, qtbot)
    assert layer.metadata["fingerprints"].shape == (3, 3, 4) and viewer.layers[-1].data.shape == (3, 3, 3)
    widget.run_decode()
    widget.progress.cancel()
    _idle(widget, qtbot)
    assert len(viewer.layers) == 2 and any("Decode was cancelled" in m for m in messages["info"])
    widget.run_decode()
    _idle(widget, qtbot)
    assert viewer.layers[-1].name == "m decoded" and viewer.layers[-1].data.shape == (9, 64, 64)
    assert encoding and decoding and threading.get_ident() not in encoding + decoding and messages["error"] == []


def test_walk_encodes_in_the_worker(make_napari_viewer, qtbot, messages, monkeypatch):
    viewer = make_napari_viewer()
    source = viewer.add_labels(make_grain_structure((96, 96), stage="late", seed=3, device="cpu"), name="g")
    widget = TraversalWidget(viewer)
    widget.set_model(_untrained_model([source.data]), "test")
    widget.source.value = source
    widget.method.value = "Gaussian cloud"
    widget.stride.value = 16
    widget.steps.value = 3
    threads = _threads_of(monkeypatch, trav_module, "encode")
    widget.run_walk()
    _idle(widget, qtbot)
    assert len(threads) == 2 and threading.get_ident() not in threads  # the central patch, the windows
    assert widget.walk.z.shape == (3, 4) and messages["error"] == []
