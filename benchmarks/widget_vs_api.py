"""The reconstruction widget's run against the API's on the same input, in one napari session (issue 10).

The widget reconstructs 48^3 from the ceramics crop with the default live 3D preview (napari renders it on the
same cores); the API runs the same settings in the same process without a viewer. Policies: torch on every core
throughout (the behaviour before issue 10: the governor's re-decisions switched off) and the thread governor.
Needs a display: ``xvfb-run -a python benchmarks/widget_vs_api.py``.
"""
from __future__ import annotations

import os
import time

import napari
from qtpy.QtWidgets import QApplication

from napari_microfingerprint import characterize, load_example, reconstruct
from napari_microfingerprint._widgets.reconstruction import ReconstructionWidget
from napari_microfingerprint.core import threads

SIZE = 48


def widget_run(viewer: napari.Viewer, layer) -> tuple[float, float]:
    """Seconds from the click to the written result (with the physics check the widget runs after), and the
    reconstruction's own seconds."""
    widget = ReconstructionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.value = layer
    widget.size_z.value = widget.size_y.value = widget.size_x.value = SIZE
    widget.device.value = "cpu"
    start = time.perf_counter()
    widget.run()
    app = QApplication.instance()
    while widget.progress.worker is None:  # the worker starts on the event loop
        app.processEvents()
    while widget.progress.worker is not None:
        app.processEvents()
        time.sleep(0.005)
    seconds = time.perf_counter() - start, widget.result.seconds
    for lay in [lay for lay in viewer.layers if lay is not layer]:
        viewer.layers.remove(lay)
    viewer.window.remove_dock_widget(widget)
    return seconds


def main() -> None:
    print("load before:", os.getloadavg())
    src = load_example("ceramics")[:64, :64]
    target = characterize(src, limit_to=8, levels=2)
    viewer = napari.Viewer()
    layer = viewer.add_labels(src, name="ceramics")
    reconstruct(target, (24, 24, 24), max_iter=20)  # warm-up
    governed_tick = threads.ThreadGovernor.tick
    print("| policy | widget: click to result s | widget: reconstruction s | API s | widget reconstruction / API |")
    print("|---|---|---|---|---|")
    for name, tick in (("all cores (before)", lambda self: None), ("governor (after)", governed_tick)):
        threads.ThreadGovernor.tick = tick
        total, w = widget_run(viewer, layer)
        a = reconstruct(target, (SIZE,) * 3, device="cpu").seconds
        print(f"| {name} | {total:.1f} | {w:.1f} | {a:.1f} | {w / a:.2f} |", flush=True)
    threads.ThreadGovernor.tick = governed_tick
    viewer.close()
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
