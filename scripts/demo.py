"""Demo in a real napari window, through the plugin's dock widgets:

1. segment a synthetic grain micrograph into phases and grains (Segmentation widget); writes
   ``out/demo_segmentation.png`` (a screenshot of the whole window) and ``out/demo_grains.csv`` (the grain table)
   and prints the summary and the first rows of the table;
2. reconstruct a 64^3 volume from a 64 x 64 crop of the real ceramics micrograph (3D reconstruction widget); writes
   ``out/demo_reconstruction.png`` and prints the per-axis descriptor errors and the physics check (clusters,
   percolation, tortuosity per phase, and how many metrics fall within the slice's natural spread);
3. micrograph -> fingerprint -> new 2D structure -> 3D volume: train a small VAE on the ceramics micrograph
   (VAE encoding widget), encode it into a fingerprint map, sample new structures from its fingerprints (Latent
   traversal widget), and turn every sampled fingerprint into a sharp 128^2 image and one into a 64^3 volume
   (their descriptors predicted from the micrograph's nearest windows, then the descriptor reconstruction);
   prints the widget's judgement of both against the micrograph's own 64 x 64 windows (volume fractions and S2
   shape inside the real spread) and writes ``out/demo_pipeline.png``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

OUT = Path(__file__).resolve().parents[1] / "out"
PLUGIN = "napari-microfingerprint"


def wait_until(condition, timeout: float = 300.0) -> None:
    """Process Qt events until ``condition()`` holds (the widget's workers run in threads)."""
    start = time.time()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            sys.exit("demo: timed out waiting for a widget's worker")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="napari-microfingerprint demo")
    viewer.window.resize(1700, 1100)
    [image] = viewer.open_sample(PLUGIN, "grain_micrograph")
    image.scale = (0.5, 0.5)  # pretend 0.5 um per pixel: the grain table comes out in um and um^2
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")

    widget.phase_input.value = image
    widget.run_phases()
    wait_until(lambda: len(viewer.layers) == 2)

    widget.grain_input.value = image
    widget.run_grains()
    wait_until(lambda: len(viewer.layers) == 3)
    grains = viewer.layers[-1]
    viewer.layers[1].visible = False
    grains.opacity = 0.45
    viewer.reset_view()

    print(widget.summary_label.text())
    print()
    print(grains.features.drop(columns="index").head(10).to_string(index=False))
    widget.export_csv(str(OUT / "demo_grains.csv"))
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    imsave(OUT / "demo_segmentation.png", np.asarray(shot))
    print(f"\nscreenshot: {OUT / 'demo_segmentation.png'}\ngrain table: {OUT / 'demo_grains.csv'}\n")

    viewer.close()

    viewer = napari.Viewer(title="napari-microfingerprint demo: 3D reconstruction")
    viewer.window.resize(1700, 1100)
    [ceramics] = viewer.open_sample(PLUGIN, "ceramics")
    crop = viewer.add_labels(ceramics.data[:64, :64], name="ceramics 64x64 crop")
    viewer.layers.remove(ceramics)
    _, rec = viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
    rec.source.value = crop  # output size follows the slice: 64^3
    rec.run()
    wait_until(lambda: rec.result is not None)
    crop.visible = False
    print(rec.report.text())
    print(rec.report_panel.summary.text())  # the physics check: connectivity, topology, tortuosity vs the slice
    save_screenshot(viewer, "demo_reconstruction.png")
    pipeline()


def save_screenshot(viewer: napari.Viewer, name: str) -> None:
    """Let the window redraw, save a screenshot of it to ``out/name`` and close it."""
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    imsave(OUT / name, np.asarray(viewer.screenshot(canvas_only=False, flash=False)))
    print(f"screenshot: {OUT / name}")
    viewer.close()


def pipeline() -> None:
    """Micrograph -> VAE fingerprint map -> sampled new 2D structures -> 3D volume, all through the widgets."""
    viewer = napari.Viewer(title="napari-microfingerprint demo: micrograph to fingerprint to 3D")
    viewer.window.resize(1700, 1100)
    [ceramics] = viewer.open_sample(PLUGIN, "ceramics")
    _, enc = viewer.window.add_plugin_dock_widget(PLUGIN, "VAE encoding")
    enc.train_layers.value = [ceramics]
    enc.latent_dim.value, enc.epochs.value, enc.patches.value, enc.device.value = 16, 4, 96, "cpu"
    enc.run_training()
    wait_until(lambda: enc.model is not None and enc.progress.worker is None)
    print(enc.status.text())
    enc.encode_layer.value = ceramics
    enc.stride.value = 16
    enc.run_encode()  # fingerprints in the layer's metadata and a PCA-coloured fingerprint map
    wait_until(lambda: enc.progress.worker is None)
    _, trav = viewer.window.add_plugin_dock_widget(PLUGIN, "Latent traversal")
    trav.use_encoding_model()
    trav.source.value = ceramics
    trav.method.value = "sample like the layer"
    trav.steps.value = 6
    trav.run_walk()
    wait_until(lambda: trav.walk is not None and trav.progress.worker is None)
    print(trav.report.text())
    viewer.dims.set_current_step(0, 1)
    trav.volume_side.value = 64
    trav.every_step.value = True
    trav.structures_from_step()  # every step's fingerprint -> descriptors -> a sharp 2D image; step 1's -> 64^3
    wait_until(lambda: trav.progress.worker is None)
    images, volume = (next(layer for layer in viewer.layers if f"{dims} from fingerprint" in layer.name)
                      for dims in ("2D", "3D"))
    print(f"generated 2D structures ({images.name}) and the 3D volume ({volume.name}), judged by the widget "
          f"against the windows of the micrograph: {trav.report.text().splitlines()[-1]}")
    for layer in viewer.layers:
        layer.visible = layer is volume
    viewer.dims.ndisplay = 3
    viewer.reset_view()  # (resets the camera angles too)
    viewer.scene.camera.angles = (15.0, 30.0, 145.0)
    save_screenshot(viewer, "demo_pipeline.png")


if __name__ == "__main__":
    main()
