"""The Segmentation dock's pixel-classifier section: paint a few strokes per phase on a Labels layer, train a
random forest on multi-scale features (:mod:`..core.pixel_classifier`) and predict a phase Labels layer (never
over the scribbles), optionally with the class probabilities and retraining after every stroke."""
from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog, QPushButton, QVBoxLayout, QWidget

from ..core.pixel_classifier import PixelClassifier, fit_pixel_classifier
from ..core.progress import Progress
from ..core.validation import InputError
from ._common import ProgressRow, build_section, layer_array, report_error

if TYPE_CHECKING:
    import napari

#: Live mode retrains after each stroke on images of at most this many pixels (a 1024^2 image takes 2-3 s here).
LIVE_MAX_PIXELS = 1024 * 1024
NONE = "(none)"


class ScribbleSection(QWidget):
    """Section "4. Pixel classifier (scribbles)" of the Segmentation dock."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.classifier: PixelClassifier | None = None
        self.image = ComboBox(label="image", choices=self._images)
        self.scribbles = ComboBox(label="scribbles", choices=self._labels)
        self.sigma_max = FloatSpinBox(label="largest feature scale (px)", value=16.0, min=1.0, max=64.0, step=1.0)
        self.trees = SpinBox(label="trees", value=100, min=1, max=2000)
        self.probabilities = CheckBox(label="add the class probabilities", value=False)
        self.live = CheckBox(label="live: retrain after each stroke (small images)", value=False)
        form = Container(widgets=[self.image, self.scribbles, self.sigma_max, self.trees, self.probabilities,
                                  self.live])
        self.new_button = QPushButton("New scribble layer")
        self.new_button.clicked.connect(self.new_scribbles)
        self.run_button = QPushButton("Train and predict")
        self.run_button.clicked.connect(self.run)
        self.save_button = QPushButton("Save classifier...")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load classifier and predict...")
        self.load_button.clicked.connect(self._load_dialog)
        self.progress = ProgressRow()
        box = build_section("4. Pixel classifier (scribbles)", form, [
            self.new_button, self.run_button, self.save_button, self.load_button, self.progress])
        QVBoxLayout(self).addWidget(box)
        self._watched: Labels | None = None
        self.scribbles.changed.connect(self._watch)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._refresh)

    # ----------------------------------------------------------------- choices
    def _images(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _labels(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(NONE, None)] + [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _refresh(self, _event: Any = None) -> None:
        self.image.reset_choices()
        self.scribbles.reset_choices()

    def _image_data(self) -> tuple[Image, np.ndarray]:
        layer = self.image.value
        if layer is None:
            raise InputError("no Image layer is selected; open a micrograph first.")
        return layer, layer_array(layer, "the pixel classifier")

    # ----------------------------------------------------------------- scribble layer
    def new_scribbles(self) -> Labels | None:
        """Add an empty Labels layer of the image's shape, in paint mode with label 1, and select it."""
        try:
            layer, data = self._image_data()
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Scribbles")
            return None
        scrib = self.viewer.add_labels(np.zeros(data.shape, dtype=np.uint8), name=f"{layer.name} scribbles",
                                       scale=layer.scale[-data.ndim:], translate=layer.translate[-data.ndim:])
        scrib.selected_label = 1
        scrib.brush_size = 5
        scrib.mode = "paint"
        self.viewer.layers.selection.active = scrib
        self.scribbles.value = scrib
        show_info("Paint a few strokes of each phase: label 1, 2, ... (0 erases). Then 'Train and predict'.")
        return scrib

    def _watch(self, _value: Any = None) -> None:
        """Follow the chosen scribble layer's strokes for live mode."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_stroke)
        self._watched = self.scribbles.value
        if self._watched is not None:
            self._watched.events.paint.connect(self._on_stroke)

    def _on_stroke(self, _event: Any = None) -> None:
        if not self.live.value or self.progress.worker is not None:
            return
        layer = self.image.value
        if layer is not None and np.prod(np.shape(layer.data)) <= LIVE_MAX_PIXELS:
            self.run()

    # ----------------------------------------------------------------- train and predict
    def run(self) -> GeneratorWorker | None:
        """Train on the scribbles (in a worker) and write the prediction as a new (or the previous) result."""
        if self.progress.busy():
            return None
        try:
            layer, data = self._image_data()
            scrib = self.scribbles.value
            if scrib is None:
                raise InputError("no scribble layer is chosen; press 'New scribble layer' and paint a few strokes "
                                 "per phase.")
            strokes = np.asarray(scrib.data).copy()  # the worker reads a copy: painting may go on meanwhile
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Pixel classifier")
            return None
        settings = {"sigma_max": self.sigma_max.value, "n_estimators": self.trees.value}

        def work() -> Generator[Progress, None, tuple[PixelClassifier, np.ndarray]]:
            yield Progress(0, 2, "training on the scribbles")
            clf = fit_pixel_classifier(data, strokes, sigma_min=min(1.0, settings["sigma_max"]),
                                       sigma_max=settings["sigma_max"], n_estimators=settings["n_estimators"])
            yield Progress(1, 2, "predicting")
            return clf, clf.predict_proba(data)

        return self.progress.start(work, lambda out: self._write(layer, *out), "Pixel classifier")

    def _write(self, layer: Image, classifier: PixelClassifier, proba: np.ndarray) -> None:
        self.classifier = classifier
        labels = classifier.labels(proba)
        name = f"{layer.name} phases (pixel classifier)"
        meta = {"microfingerprint": {"made_by": "pixel classifier", "source": layer.name,
                                     "classes": classifier.classes.tolist(),
                                     "settings": {"sigma_max": classifier.settings.sigma_max,
                                                  "trees": classifier.n_estimators}}}
        scale, translate = layer.scale[-labels.ndim:], layer.translate[-labels.ndim:]
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Labels):
            self.viewer.layers[name].data = labels  # our own earlier result: updated, not duplicated
            self.viewer.layers[name].metadata = meta
        else:
            self.viewer.add_labels(labels, name=name, scale=scale, translate=translate, metadata=meta, opacity=0.5)
        if self.probabilities.value:
            pname = f"{layer.name} class probabilities"
            if pname in self.viewer.layers:
                self.viewer.layers[pname].data = proba
            else:
                self.viewer.add_image(proba, name=pname, scale=(1.0, *scale), translate=(0.0, *translate),
                                      colormap="magma", contrast_limits=(0.0, 1.0), visible=False)

    # ----------------------------------------------------------------- save / load
    def _save_dialog(self) -> None:
        if self.classifier is None:
            report_error(InputError("no classifier yet; train one first."), "Save classifier")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save pixel classifier", "classifier.json", "JSON (*.json)")
        if path:
            self.save(path)

    def save(self, path: str) -> None:
        try:
            json_path, _ = self.classifier.save(path)
            show_info(f"Saved the pixel classifier to {json_path} (+ .npz).")
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Save classifier")

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load pixel classifier", "", "Classifier (*.json *.npz)")
        if path:
            self.load(path)

    def load(self, path: str) -> GeneratorWorker | None:
        """Load a saved classifier (refitting its forest) and predict the chosen image with it, in a worker."""
        if self.progress.busy():
            return None
        try:
            layer, data = self._image_data()
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Load classifier")
            return None

        def work() -> Generator[Progress, None, tuple[PixelClassifier, np.ndarray]]:
            yield Progress(0, 2, "loading (refitting the forest)")
            classifier = PixelClassifier.load(path)
            yield Progress(1, 2, "predicting")
            return classifier, classifier.predict_proba(data)

        return self.progress.start(work, lambda out: self._write(layer, *out), "Load classifier")
