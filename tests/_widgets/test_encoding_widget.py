import numpy as np

from napari_microfingerprint import make_grain_structure
from napari_microfingerprint._widgets.encoding import EncodingWidget

PLUGIN = "napari-microfingerprint"


def _trained(viewer, qtbot):
    layers = [viewer.add_labels(make_grain_structure((96, 96), stage="late", seed=s, device="cpu"), name=f"g{s}")
              for s in range(2)]
    widget = EncodingWidget(viewer)
    widget.train_layers.value = layers
    widget.latent_dim.value = 8
    widget.epochs.value = 1
    widget.patches.value = 24
    widget.device.value = "cpu"
    widget.run_training()
    qtbot.waitUntil(lambda: widget.model is not None and widget.progress.worker is None, timeout=120_000)
    return widget, layers


def test_one_epoch_trains_and_writes_examples(make_napari_viewer, qtbot, messages, tmp_path):
    viewer = make_napari_viewer()
    _, dock_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "VAE encoding")
    assert isinstance(dock_widget, EncodingWidget)
    widget, layers = _trained(viewer, qtbot)
    examples = viewer.layers[-1]
    assert "VAE examples" in examples.name and examples.data.shape == (4, 64, 128)
    assert len(widget.model.history["val_loss"]) == 1
    widget.save_to(str(tmp_path / "m.safetensors"))
    widget.model = None
    widget.load_from(str(tmp_path / "m.safetensors"))
    assert widget.model is not None and "loaded" in widget.status.text()
    assert messages["error"] == []


def test_encode_and_decode_write_layers(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    widget, layers = _trained(viewer, qtbot)
    widget.encode_layer.value = layers[0]
    widget.stride.value = 16
    widget.run_encode()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    fmap = viewer.layers[-1]
    assert "fingerprint map" in fmap.name
    assert fmap.data.shape == (3, 3, 3) and layers[0].metadata["fingerprints"].shape == (3, 3, 8)
    before = len(viewer.layers)
    widget.run_decode()
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=60_000)
    decoded = viewer.layers[before:]
    assert decoded[0].data.shape == (9, 64, 64)
    # grain labels from the decoded distance maps, or a notice that a one-epoch model decodes no clear grains
    assert (len(decoded) == 2 and decoded[1].data.shape == (9, 64, 64)) or \
        any("no clear grains" in m for m in messages["info"])


def test_bad_input_notifications(make_napari_viewer, qtbot, messages, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.random.default_rng(0).random((32, 32)), name="small")
    widget = EncodingWidget(viewer)
    widget.encode_layer.value = layer
    widget.run_encode()
    assert "no model" in messages["error"][-1]
    widget.train_layers.value = [layer]
    widget.run_training()
    qtbot.waitUntil(lambda: len(messages["error"]) > 1, timeout=30_000)
    assert "smaller than the patch size" in messages["error"][-1]
    (tmp_path / "bad.json").write_text("{}")
    widget.load_from(str(tmp_path / "bad.safetensors"))
    assert "not a napari-microfingerprint VAE" in messages["error"][-1]
    assert len(viewer.layers) == 1


def test_folder_training_updates_one_examples_layer_per_epoch(make_napari_viewer, qtbot, messages, tmp_path):
    from napari_microfingerprint import make_two_phase

    for s in range(2):
        np.save(tmp_path / f"m{s}.npy", make_two_phase((96, 96), 0.4, 3.0, seed=s).astype(np.float32))
    viewer = make_napari_viewer()
    widget = EncodingWidget(viewer)
    widget.source.value = "folder"
    assert not widget.folder.native.isHidden() and widget.train_layers.native.isHidden()
    widget.folder.value = tmp_path
    widget.latent_dim.value = 4
    widget.epochs.value = 2
    widget.patches.value = 24
    widget.device.value = "cpu"
    widget.run_training()
    qtbot.waitUntil(lambda: widget.model is not None and widget.progress.worker is None, timeout=120_000)
    assert len(viewer.layers) == 1 and "2 files in" in viewer.layers[0].name
    assert viewer.layers[0].metadata["microfingerprint"]["epoch"] == len(widget.model.history["val_loss"]) == 2
    assert widget.model.config["transform"] == "percentile" and "test loss" in widget.status.text()
    assert messages["error"] == []


def test_paper_settings_and_bad_folder(make_napari_viewer, messages, tmp_path):
    viewer = make_napari_viewer()
    widget = EncodingWidget(viewer)
    widget.architecture.value = "conv"
    widget.use_paper_settings()
    assert (widget.patch_size.value, widget.latent_dim.value, widget.batch_size.value) == (256, 256, 8)
    assert widget.learning_rate.value == 1e-5
    widget.architecture.value = "texture"
    widget.use_paper_settings()
    assert (widget.patch_size.value, widget.latent_dim.value) == (128, 64)
    widget.source.value = "folder"
    widget.folder.value = tmp_path
    widget.run_training()
    assert "no image files" in messages["error"][-1]
    np.save(tmp_path / "tiny.npy", np.zeros((32, 40), np.float32))
    widget.run_training()
    assert "tiny.npy in" in messages["error"][-1] and "smaller than the patch size 128" in messages["error"][-1]
    assert len(viewer.layers) == 0
