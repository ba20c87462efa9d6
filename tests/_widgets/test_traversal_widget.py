import numpy as np
import pandas as pd
import pytest

from napari_microfingerprint import (
    InputError,
    decode,
    encode,
    gaussian_cloud,
    grain_statistics,
    make_grain_structure,
    make_two_phase,
    train_vae,
)
from napari_microfingerprint._widgets.encoding import EncodingWidget
from napari_microfingerprint._widgets.reconstruction import MODES, ReconstructionWidget
from napari_microfingerprint._widgets.traversal import TraversalWidget
from napari_microfingerprint.core.generation_quality import generation_quality, walk_quality

PLUGIN = "napari-microfingerprint"


@pytest.fixture(scope="module")
def model():
    images = [make_grain_structure((96, 96), stage="late", seed=s, device="cpu") for s in range(2)]
    return train_vae(images, architecture="conv", patch_size=64, latent_dim=8, epochs=3, batch_size=8,
                     patches_per_image=24, device="cpu", learning_rate=2e-3)


def _grains(viewer, seed, size=128):
    return viewer.add_labels(make_grain_structure((size, size), stage="late", seed=seed, device="cpu"),
                             name=f"grains {seed}")


def _wait(widget, qtbot):
    """Until the widget's worker is done. The grain bridge (head fit with its growth table, 2D and 3D growth)
    once took over 120 s on the two-core CI machine, so the limit leaves room for a loaded one."""
    qtbot.waitUntil(lambda: widget.progress.worker is None, timeout=300_000)


def test_sweep_writes_stacked_layers_and_the_model_comes_from_the_encoder(make_napari_viewer, qtbot, messages,
                                                                          model):
    viewer = make_napari_viewer()
    _, encoder = viewer.window.add_plugin_dock_widget(PLUGIN, "VAE encoding")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Latent traversal")
    assert isinstance(widget, TraversalWidget) and isinstance(encoder, EncodingWidget)
    encoder.model = model
    widget.use_encoding_model()
    assert widget.model is model and widget.dim.max == 7
    source = _grains(viewer, 5)
    widget.source.value = source
    widget.method.value = "sweep one dimension"
    widget.dim.value = 3
    widget.steps.value = 6
    widget.run_walk()
    _wait(widget, qtbot)
    image, labels = viewer.layers[-2], viewer.layers[-1]
    assert image.data.shape == labels.data.shape == (6, 64, 64)
    assert "sweep" in image.name and "grains 5" in image.name
    z = image.metadata["latent_walk"]["z"]
    np.testing.assert_allclose(z[:, 3], np.linspace(-4, 4, 6), atol=1e-6)
    # the start is the central patch's fingerprint, and the layer holds the decodings of the walk
    start = encode(model, np.asarray(source.data)[32:96, 32:96])
    np.testing.assert_allclose(np.delete(z, 3, axis=1), np.repeat(np.delete(start, 3)[None], 6, axis=0), atol=1e-5)
    np.testing.assert_allclose(image.data, decode(model, z), atol=1e-5)
    assert len(labels.metadata["grain_summaries"]) == 6 and len(image.metadata["latent_walk"]["ood"]) == 6
    assert any("central 64 x 64 patch" in m for m in messages["info"]) and messages["error"] == []
    # the walk is judged against the source layer's 64 x 64 patches, as the API judges it
    quality = walk_quality(model, widget.walk, np.asarray(source.data))
    pd.testing.assert_frame_equal(pd.DataFrame(image.metadata["generation_quality"]), quality.table)
    assert f"against the patches of grains 5: {quality.summary()}" in widget.report.text()


def test_path_and_sending_a_step_to_reconstruction(make_napari_viewer, qtbot, messages, model):
    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    widget.set_model(model, "test")
    a, b = _grains(viewer, 1, 64), _grains(viewer, 2, 64)
    widget.method.value = "path between two layers"
    widget.source.value, widget.other.value = a, b
    widget.steps.value = 4
    widget.run_walk()
    _wait(widget, qtbot)
    walk = widget.walk
    assert walk.images.shape == (4, 64, 64)
    np.testing.assert_allclose(walk.images[-1], decode(model, encode(model, b.data)), atol=1e-5)
    viewer.dims.set_current_step(0, 2)
    phases = widget.send_to_reconstruction()
    recon = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, ReconstructionWidget))
    assert recon.source.value is phases and recon.mode.value == MODES[0]
    assert phases.data.shape == (64, 64) and set(np.unique(phases.data)) <= {0, 1}
    assert phases.metadata["latent_walk_step"] == 2 and (recon.size_y.value, recon.size_x.value) == (64, 64)
    assert messages["error"] == []


def test_analysis_embeds_fits_and_shows_a_clicked_patch(make_napari_viewer, qtbot, messages, model):
    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    widget.set_model(model, "test")
    layers = [_grains(viewer, s) for s in (3, 4)]
    widget.analysis_layers.value = layers
    widget.stride.value = 16
    widget.property.value = "mean grain area"
    widget.folds.value = 5
    widget.run_analysis()
    _wait(widget, qtbot)
    rep = widget.points["report"]
    assert len(rep.values) == 2 * 25 and widget.points["xy"].shape == (50, 2)
    assert "mean grain area from fingerprints" in widget.report.text() and "R²" in widget.report.text()
    shown = widget.show_point(30)  # the 6th window of the second layer: row 1, column 0
    np.testing.assert_array_equal(shown.data, np.asarray(layers[1].data)[16:80, 0:64])
    assert shown.metadata["source"] == layers[1].name
    widget.validation.value = "leave one layer out"
    widget.embedding.value = "tsne"
    widget.run_analysis()
    _wait(widget, qtbot)
    np.testing.assert_array_equal(widget.points["report"].fold, np.repeat([0, 1], 25))  # each layer once
    assert "leaving one layer out" in widget.report.text()
    widget.validation.value = "k-fold"
    widget.run_analysis(by_layer=True)
    _wait(widget, qtbot)
    rep = widget.points["report"]
    np.testing.assert_array_equal(rep.labels, np.repeat([0, 1], 25))
    assert rep.chance == 0.5 and "classified by layer" in widget.report.text() and "accuracy" in widget.report.text()
    widget.property.value = "R-n slope"
    widget.run_analysis()
    _wait(widget, qtbot)
    slope = grain_statistics(np.asarray(layers[0].data)[:64, :64])[1]["rn_slope"]
    assert widget.points["report"].values[0] == pytest.approx(slope)
    assert messages["error"] == []


def test_a_point_of_a_fingerprint_map_is_a_source(make_napari_viewer, qtbot, messages, model):
    viewer = make_napari_viewer()
    encoder = EncodingWidget(viewer)
    encoder.model = model
    layer = _grains(viewer, 6)
    encoder.encode_layer.value = layer
    encoder.stride.value = 32
    encoder.run_encode()
    _wait(encoder, qtbot)
    fmap = viewer.layers[-1]
    widget = TraversalWidget(viewer)
    widget.set_model(model, "test")
    widget.source.value = fmap
    widget.row.value, widget.col.value = 2, 1
    widget.method.value = "Gaussian cloud"
    widget.gamma.value = 0.2
    widget.steps.value = 5
    widget.run_walk()
    _wait(widget, qtbot)
    centre = encode(model, np.asarray(layer.data)[64:128, 32:96])
    assert widget.walk.z.shape == (5, 8)
    np.testing.assert_allclose(widget.walk.z.mean(0), centre, atol=0.2 * 4 / np.sqrt(5))
    widget.row.value = 5
    widget.run_walk()
    assert "outside it" in messages["error"][-1]
    # the analysis encodes at its own stride, whatever an earlier encoding stored, and refuses the RGB map
    widget.analysis_layers.value = [fmap]
    widget.run_analysis()
    assert "fingerprint map or RGB" in messages["error"][-1]
    widget.analysis_layers.value = [layer]
    widget.stride.value, widget.folds.value, widget.property.value = 16, 5, "mean grain area"
    widget.run_analysis()
    _wait(widget, qtbot)
    assert len(widget.points["report"].values) == 25 and len(messages["error"]) == 2


def test_bad_input_notifications(make_napari_viewer, qtbot, messages, model):
    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    small = viewer.add_image(np.random.default_rng(0).random((32, 32)), name="small")
    widget.source.value = small
    widget.run_walk()
    assert "no model" in messages["error"][-1]
    widget.use_encoding_model()
    assert "encoding widget is not open" in messages["error"][-1]
    widget.set_model(model, "test")
    widget.run_walk()
    assert "smaller than the model's patch" in messages["error"][-1]
    widget.source.value = _grains(viewer, 7, 64)
    widget.method.value = "Gaussian cloud"
    widget.gamma.value = 0.0
    widget.run_walk()
    with pytest.raises(InputError) as api:  # the widget refuses with the API's own words
        gaussian_cloud(model, np.zeros(model.config["latent_dim"]), gamma=0.0)
    assert str(api.value) in messages["error"][-1]
    widget.method.value = "sample like the layer"
    widget.run_walk()
    assert "gives one" in messages["error"][-1]
    widget.analysis_layers.value = [widget.source.value]
    widget.folds.value = 10
    widget.property.value = "mean grain area"
    widget.run_analysis()
    _wait(widget, qtbot)  # the windows are counted in the worker
    assert "too few for 10-fold" in messages["error"][-1]
    widget.send_to_reconstruction()
    assert "no walk" in messages["error"][-1]
    assert [layer.name for layer in viewer.layers] == ["small", "grains 7"]


def test_progress_row_ends_done_or_failed(make_napari_viewer, qtbot, messages, model):
    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    widget.set_model(model, "test")
    widget.source.value = _grains(viewer, 8, 64)
    widget.run_walk()
    _wait(widget, qtbot)
    assert widget.progress.bar.format() == "done" and widget.progress.bar.value() == widget.progress.bar.maximum()

    def broken():
        yield from ()
        raise ValueError("boom")

    widget.progress.start(broken, lambda _: None, "test run")
    _wait(widget, qtbot)
    assert widget.progress.bar.format() == "failed" and "boom" in messages["error"][-1]


def test_grain_structures_from_a_step(make_napari_viewer, qtbot, messages, model):
    """A grain model's step predicts the grain size from the source label map's windows; the widget writes a 2D
    grain map whose windows have that size and a 3D grain volume (sections a patch a side) with the material's part
    of it, as the API predicts and measures them; a source that is not a label map is refused with a notification."""
    from napari_microfingerprint import fit_grain_head
    from napari_microfingerprint.core.fingerprint_grains import window_mean_area

    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    widget.set_model(model, "grains")
    source = _grains(viewer, 3)
    widget.source.value = source
    widget.method.value = "Gaussian cloud"
    widget.steps.value = 2
    widget.run_walk()
    _wait(widget, qtbot)
    widget.volume_side.value = 24
    widget.structures_from_step()
    _wait(widget, qtbot)
    grains2d, grains3d = viewer.layers[-2], viewer.layers[-1]
    assert grains2d.data.shape == (128, 128) and grains3d.data.shape == (24, 64, 64)
    assert "2D grains from fingerprint" in grains2d.name and "3D grains from fingerprint" in grains3d.name
    step = int(viewer.dims.current_step[0])
    # the prediction needs no growth table (its regressions alone), so the test fits none
    area = fit_grain_head(model, [source.data], growth_table=False).predict(widget.walk.z[step])[0][0]
    # the growth stops at the snapshot nearest the predicted area, about 12 % apart
    assert window_mean_area(grains2d.data, 64) == pytest.approx(area, rel=0.2)
    # a volume takes the material's part of the prediction (the widget's head has the growth table it needs)
    head = widget._head_cache[2]
    assert window_mean_area(grains3d.data, 64) == pytest.approx(
        head.predict(widget.walk.z[step], volume=True)[0][0], rel=0.25)
    # both are judged on 64 px windows against the source's: the 2D map's four, the volume's sections every 8th
    # along its first axis (the others, 24 x 64, hold no 64 px window)
    real = [source.data[y:y + 64, x:x + 64] for y in (0, 64) for x in (0, 64)]
    flat = [grains2d.data[y:y + 64, x:x + 64] for y in (0, 64) for x in (0, 64)]
    assert grains2d.metadata["generation_quality"] == generation_quality(flat, real, "grains").table.to_dict("list")
    assert grains3d.metadata["generation_quality"] == generation_quality(
        [grains3d.data[k] for k in (0, 8, 16)], real, "grains").table.to_dict("list")
    # another step from the same source and seed reuses the fitted head; a changed source fits anew
    assert widget._head(widget.model, source.data, widget.seed.value, lambda: pytest.fail("fitted again")) is head
    assert widget._head(widget.model, source.data + 1, widget.seed.value, lambda: "new") == "new"
    widget.source.value = viewer.add_image(source.data.astype(float), name="grains as an image")
    widget.structures_from_step()
    assert "not a Labels layer" in messages["error"][-1]


def test_sharp_structures_from_a_step(make_napari_viewer, qtbot, messages, model):
    """Every step's fingerprint predicts descriptors from the source layer's windows; the widget writes sharp 2D
    images, stacked like the walk, and the shown step's 3D volume, whose phase-1 fraction is the predicted one (as
    the API predicts it). Both are judged against the source layer's windows, as the measure judges windows cut
    by hand (the 2D images' 64 px windows; the 24^3 volume's sections, every 3rd along each axis, against 24 px
    windows of the source)."""
    from napari_microfingerprint.core.fingerprint_structures import fit_descriptor_head
    from napari_microfingerprint.core.vae.models import build_model
    from napari_microfingerprint.core.vae.training import VAEModel

    viewer = make_napari_viewer()
    widget = TraversalWidget(viewer)
    config = {"architecture": "conv", "patch_size": 64, "latent_dim": 4, "in_channels": 1, "transform": "intensity",
              "offset": 0.0, "scale": 1.0}
    intensity = VAEModel(build_model("conv", patch_size=64, latent_dim=4).eval(), config)
    widget.set_model(intensity, "two-phase")
    micrograph = make_two_phase((128, 128), 0.35, 3.0, seed=0).astype(float)
    widget.source.value = viewer.add_image(micrograph, name="two-phase")
    widget.steps.value = 3
    widget.run_walk()
    _wait(widget, qtbot)
    widget.volume_side.value = 24
    widget.structure_evals.value = 300
    widget.every_step.value = True
    widget.structures_from_step()
    _wait(widget, qtbot)
    images, volume = viewer.layers[-2], viewer.layers[-1]
    assert images.data.shape == (3, 128, 128) and volume.data.shape == (24, 24, 24)
    assert "steps 0-2 2D from fingerprints" in images.name and "3D from fingerprint" in volume.name
    step = int(viewer.dims.current_step[0])
    target = fit_descriptor_head(intensity, [micrograph]).predict(widget.walk.z[step])[0]
    fraction = target.values["2d"]["volume_fractions"][0]
    assert set(np.unique(images.data)) == {0, 1} and abs(images.data[step].mean() - fraction) < 0.03
    assert abs(volume.data.mean() - fraction) < 0.05
    assert volume.metadata["evaluations"] <= 300 and len(images.metadata["evaluations"]) == 3  # the widget's budget
    real = micrograph > 0.5
    windows = [im[y:y + 64, x:x + 64] for im in images.data for y in (0, 64) for x in (0, 64)]
    by_hand = generation_quality(windows, [real[y:y + 64, x:x + 64] for y in (0, 64) for x in (0, 64)])
    assert images.metadata["generation_quality"] == by_hand.table.to_dict("list")
    sections = [np.take(volume.data, k, axis=a) for a in range(3) for k in range(0, 24, 3)]
    by_hand = generation_quality(sections, [real[y:y + 24, x:x + 24] for y in range(0, 105, 24)
                                            for x in range(0, 105, 24)])
    assert volume.metadata["generation_quality"] == by_hand.table.to_dict("list")
    assert "sharp structures against the windows of 'two-phase'" in widget.report.text()
    assert "12 generated phases windows of 64 px (from 3 structures)" in widget.report.text()


def test_builtin_model_walks_right_after_installing(make_napari_viewer, qtbot, messages):
    """'Load built-in model' in both docks gives the shipped model; with the ceramics sample as the source, a
    sampled walk and its sharp 2D structure follow without training anything."""
    from napari_microfingerprint import load_builtin_model, load_example

    viewer = make_napari_viewer()
    encoder = EncodingWidget(viewer)
    encoder.load_builtin()
    shipped = load_builtin_model()
    assert encoder.model is not None and encoder.model.config == shipped.config
    widget = TraversalWidget(viewer)
    widget.load_builtin()
    assert widget.model is not None and "built-in" in widget.model_label.text()
    ceramics = load_example("ceramics")
    widget.source.value = viewer.add_labels(ceramics, name="ceramics")
    widget.method.value = "sample like the layer"
    widget.steps.value = 3
    widget.run_walk()
    _wait(widget, qtbot)
    assert widget.walk is not None and widget.walk.z.shape == (3, 16)
    widget.volume_side.value = 24
    widget.structure_evals.value = 200
    widget.structures_from_step()
    _wait(widget, qtbot)
    image = next(layer for layer in viewer.layers if layer.name.endswith("2D from fingerprint"))
    assert set(np.unique(image.data)) == {0, 1}
    assert abs(image.data.mean() - ceramics.mean()) < 0.1  # measured: 0.384 against the micrograph's 0.391
    assert not messages["error"]


def test_builtin_grain_model_walks_from_the_grains_sample(make_napari_viewer, qtbot, messages):
    """The built-in model chosen in the docks' list is the one loaded: the Potts grain model, walked from the
    'Grain structure 2D' sample it names, decodes grain label maps of its patch size."""
    from napari_microfingerprint._sample_data import grains_2d

    viewer = make_napari_viewer()
    encoder = EncodingWidget(viewer)
    encoder.builtin_choice.value = "potts-grains"
    encoder.load_builtin()
    assert encoder.model.config["latent_dim"] == 256 and "Grain structure 2D" in encoder.status.text()
    widget = TraversalWidget(viewer)
    widget.builtin_choice.value = "potts-grains"
    widget.load_builtin()
    assert widget.model.config["transform"] == "distance" and "Grain structure 2D" in widget.model_label.text()
    data, meta, _ = grains_2d()[0]
    widget.source.value = viewer.add_labels(data, **meta)
    widget.method.value = "sample like the layer"
    widget.steps.value = 2
    widget.run_walk()
    _wait(widget, qtbot)
    assert widget.walk.z.shape == (2, 256)
    assert widget.walk.labels.shape == (2, 64, 64) and widget.walk.labels.max() > 5  # grains, not the mean image
    assert not messages["error"]
