"""VAE encoding dock widget: train a VAE on layers or a folder of image files (worker, progress, live loss curve,
example reconstructions every epoch, Cancel keeps the best weights), save / load the model, encode a layer into
fingerprints (stored in its metadata, plus a fingerprint map coloured by PCA) and decode them back into Image
(and, for grain models, Labels) layers."""
from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, RadioButtons, Select, SpinBox
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QLabel, QPushButton, QWidget

from ..core.progress import Progress
from ..core.vae.data import load_image_folder
from ..core.vae.fingerprint_map import pca_rgb
from ..core.vae.model_io import (
    BUILTIN_MODELS,
    decode,
    decode_labels,
    encode_iter,
    load_builtin_model,
    load_model,
    save_model,
)
from ..core.vae.models import MODELS
from ..core.vae.training import PAPER_SETTINGS, TRANSFORMS, TrainingProgress, VAEModel, train_vae_iter
from ..core.validation import InputError, check_fits
from ._common import ProgressRow, ask_model_file, build_dock, layer_2d, report_error
from ._plot import CurvePlot

if TYPE_CHECKING:
    import napari

#: Fingerprints decoded per progress step (and per chance to cancel).
DECODE_STEP = 256


class EncodingWidget(QWidget):
    """Plugins > napari-microfingerprint > VAE encoding."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model: VAEModel | None = None

        self.source = RadioButtons(label="train on", choices=["layers", "folder"], value="layers",
                                   orientation="horizontal")
        self.train_layers = Select(label="training layers", choices=self._layers)
        self.folder = FileEdit(label="image folder", mode="d")
        self.folder.visible = False
        self.source.changed.connect(self._show_source)
        self.transform = ComboBox(label="input transform", choices=list(TRANSFORMS), value="auto",
                                  tooltip="auto: grain label maps → distance maps (paper 000), micrographs → "
                                          "per-image white balance (paper 001 2.2)")
        self.architecture = ComboBox(label="model", choices=sorted(MODELS), value="conv")
        self.patch_size = SpinBox(label="patch size", value=64, min=16, max=512, step=16)
        self.latent_dim = SpinBox(label="latent size", value=16, min=2, max=1024)
        self.epochs = SpinBox(label="epochs", value=5, min=1, max=10_000)
        self.batch_size = SpinBox(label="batch size", value=8, min=1, max=1024)
        self.learning_rate = FloatSpinBox(label="learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-5)
        self.patches = SpinBox(label="patches per layer", value=64, min=4, max=100_000)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.builtin_choice = ComboBox(label="built-in model", choices=list(BUILTIN_MODELS),
                                       tooltip="; ".join(f"{k}: {v['about']}" for k, v in BUILTIN_MODELS.items()))
        train_form = Container(widgets=[self.source, self.train_layers, self.folder, self.transform,
                                        self.architecture, self.patch_size, self.latent_dim, self.epochs,
                                        self.batch_size, self.learning_rate, self.patches, self.device, self.seed,
                                        self.builtin_choice])
        self.paper_button = QPushButton("Use the paper's settings")
        self.paper_button.setToolTip("The sizes and training settings the chosen model's paper states; "
                                     "these train for hours on a CPU. The defaults train in minutes.")
        self.paper_button.clicked.connect(self.use_paper_settings)
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.run_training)
        self.save_button = QPushButton("Save model...")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load model...")
        self.load_button.clicked.connect(self._load_dialog)
        self.builtin_button = QPushButton("Load built-in model")
        self.builtin_button.clicked.connect(self.load_builtin)

        self.encode_layer = ComboBox(label="layer", choices=self._layers)
        self.stride = SpinBox(label="stride (0 = half a patch)", value=0, min=0, max=4096)
        use_form = Container(widgets=[self.encode_layer, self.stride])
        self.encode_button = QPushButton("Encode layer")
        self.encode_button.clicked.connect(self.run_encode)
        self.decode_button = QPushButton("Decode its fingerprints")
        self.decode_button.clicked.connect(self.run_decode)

        self.progress = ProgressRow()
        self.plot = CurvePlot("epoch", "loss")
        self.plot.setMinimumHeight(180)
        self.status = QLabel("No model yet: train one or load a file.")
        self.status.setWordWrap(True)

        build_dock(self, [("Train", train_form, [self.paper_button, self.train_button, self.save_button,
                                                 self.load_button, self.builtin_button]),
                          ("Encode / decode", use_form, [self.encode_button, self.decode_button])],
                   [self.progress, self.plot, self.status])
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)

    def _layers(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, (Image, Labels))]

    def _refresh_choices(self, _event: Any = None) -> None:
        for combo in (self.train_layers, self.encode_layer):
            combo.reset_choices()

    # ----------------------------------------------------------------- training
    def _show_source(self, _value: Any = None) -> None:
        self.train_layers.visible = self.source.value == "layers"
        self.folder.visible = self.source.value == "folder"

    def use_paper_settings(self) -> None:
        """Set patch size, latent size and training settings to those the chosen architecture's paper states."""
        for name, value in PAPER_SETTINGS[self.architecture.value].items():
            widget = {"patches_per_image": self.patches}.get(name, getattr(self, name, None))
            widget.value = value
        show_info(f"{self.architecture.value}: the paper's settings are set "
                  f"({', '.join(f'{k} {v}' for k, v in PAPER_SETTINGS[self.architecture.value].items())}).")

    def _training_images(self) -> tuple[list[np.ndarray], str, str]:
        """The training images, the input transform and a description of the source."""
        if self.source.value == "folder":
            folder = self.folder.value
            if folder is None or str(folder) in ("", "."):
                raise InputError("no image folder is chosen; pick a folder of .png / .tif / .npy files.")
            images, names = load_image_folder(folder)
            small = [n for n, im in zip(names, images) if min(im.shape) < self.patch_size.value]
            if small:
                raise InputError(f"{', '.join(small)} in {folder} are smaller than the patch size "
                                 f"{self.patch_size.value}; choose a smaller patch or move them out.")
            return images, self.transform.value, f"{len(names)} files in {folder}"
        layers = list(self.train_layers.value)
        if not layers:
            raise InputError("no training layer is selected; select one or more 2D Image or Labels layers.")
        images = [layer_2d(layer) for layer in layers]
        kinds = {isinstance(layer, Labels) for layer in layers}
        if len(kinds) > 1:
            raise InputError("mix of Image and Labels layers: a model learns either intensities or grain maps.")
        transform = self.transform.value
        if transform == "auto" and kinds == {True}:  # grain maps → distance maps, phase maps stay as they are
            transform = "distance" if all(np.unique(im).size > 2 for im in images) else "intensity"
        elif transform == "auto":
            transform = "percentile"
        return images, transform, ", ".join(layer.name for layer in layers)

    def run_training(self) -> GeneratorWorker | None:
        """Train in a worker; the loss curves and an example layer update every epoch; Cancel keeps the best
        weights. A training that ends before its first epoch (cancelled, or a diverging loss) keeps the previous
        model."""
        if self.progress.busy():
            return None
        try:
            images, transform, source = self._training_images()
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "VAE training")
            return None
        cancel = threading.Event()
        self.plot.clear()
        self.examples_layer: Image | None = None
        kwargs = {"images": images, "architecture": self.architecture.value, "patch_size": self.patch_size.value,
                  "latent_dim": self.latent_dim.value, "epochs": self.epochs.value,
                  "batch_size": self.batch_size.value, "learning_rate": self.learning_rate.value,
                  "patches_per_image": self.patches.value, "transform": transform, "seed": self.seed.value,
                  "device": self.device.value, "cancel": cancel}
        curves: dict[str, list[float]] = {"train": [], "validation": []}

        def on_yield(p: Any) -> None:
            if isinstance(p, TrainingProgress) and p.val_loss is not None:
                curves["train"].append(p.train_loss)
                curves["validation"].append(p.val_loss)
                for name, values in curves.items():
                    self.plot.set_curve(name, values)
                self._show_examples(p.examples, source, p.epoch)

        def done(model: VAEModel) -> None:
            if "stopped" in model.history:
                show_warning(f"VAE training: {model.history['stopped']}")
            if not model.history["val_loss"]:
                show_info("VAE training ended before its first epoch: nothing was trained, the previous model "
                          "(if any) is kept.")
                return
            self.model = model
            self._set_status(f"trained on {source}")

        return self.progress.start(train_vae_iter, done, "VAE training", on_yield=on_yield, cancel_event=cancel,
                                   **kwargs)

    def _show_examples(self, examples: np.ndarray | None, source: str, epoch: int) -> None:
        """Validation patches beside their reconstructions, one Image layer updated every epoch."""
        if examples is None:
            return
        name = f"VAE examples ({source}: input | reconstruction)"
        if self.examples_layer is None or self.examples_layer not in self.viewer.layers:
            self.examples_layer = self.viewer.add_image(examples, name=name, contrast_limits=(0.0, 1.0),
                                                        metadata={"microfingerprint": {"made_by": "train_vae"}})
        else:
            self.examples_layer.data = examples
        self.examples_layer.metadata["microfingerprint"]["epoch"] = epoch

    def _set_status(self, what: str) -> None:
        c = self.model.config
        h = self.model.history
        val = h.get("val_loss") or [float("nan")]
        test = f", held-out test loss {h['test_loss']:.4g}" if "test_loss" in h else ""
        self.status.setText(f"model: {c['architecture']}, patch {c['patch_size']}, latent {c['latent_dim']}, "
                            f"loss {c['loss']} + {c['beta']} x KL per pixel, {c['transform']} data; "
                            f"best validation loss {min(val):.4g}{test} ({what})")

    def save_to(self, path: str) -> None:
        """Save the current model (safetensors + JSON)."""
        if self.model is None:
            report_error(InputError("there is no model to save; train or load one first."), "Save model")
            return
        save_model(self.model, path)
        show_info(f"Model saved to {path}")

    def load_from(self, path: str) -> None:
        """Load a model written by Save; a corrupt or mismatched file gives a notification."""
        try:
            self.model = load_model(path)
        except Exception as err:  # noqa: BLE001
            report_error(err, "Load model")
            return
        self._set_status(f"loaded from {path}")
        self.patch_size.value = self.model.config["patch_size"]

    def load_builtin(self) -> None:
        """Load the model shipped with the package that ``builtin_choice`` names
        (:func:`~..core.vae.model_io.load_builtin_model`)."""
        name = self.builtin_choice.value
        try:
            self.model = load_builtin_model(name)
        except Exception as err:  # noqa: BLE001
            report_error(err, "Load built-in model")
            return
        self._set_status(f"built-in {name}: {BUILTIN_MODELS[name]['hint']}")
        self.patch_size.value = self.model.config["patch_size"]

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save VAE model", "model.safetensors", "Model (*.safetensors)")
        if path:
            self.save_to(path)

    def _load_dialog(self) -> None:
        path = ask_model_file(self)
        if path:
            self.load_from(path)

    # ----------------------------------------------------------------- encode / decode
    def _need_model(self) -> VAEModel:
        if self.model is None:
            raise InputError("no model is loaded; train one or load a model file first.")
        return self.model

    def run_encode(self) -> GeneratorWorker | None:
        """Encode the chosen layer in a worker: fingerprints go to its metadata; a map larger than one window
        becomes an RGB Image layer of its first three principal components."""
        if self.progress.busy():
            return None
        try:
            model = self._need_model()
            layer = self.encode_layer.value
            if layer is None:
                raise InputError("no layer to encode is selected.")
            data = layer_2d(layer)
        except Exception as err:  # noqa: BLE001
            report_error(err, "Encode")
            return None
        stride = self.stride.value or None

        def work() -> Generator[Progress, None, np.ndarray]:
            return (yield from encode_iter(model, data, stride=stride))

        def done(fingerprints: np.ndarray) -> None:
            layer.metadata["fingerprints"] = fingerprints
            if fingerprints.ndim == 1:
                show_info(f"'{layer.name}': one fingerprint of {fingerprints.size} numbers, stored in its "
                          "metadata.")
                return
            step = stride or max(1, model.config["patch_size"] // 2)
            scale = tuple(float(s) * step for s in layer.scale[-2:])
            self.viewer.add_image(pca_rgb(fingerprints), rgb=True, name=f"{layer.name} fingerprint map (PCA 1-3)",
                                  scale=scale, metadata={"fingerprints": fingerprints})

        return self.progress.start(work, done, "Encode")

    def run_decode(self) -> GeneratorWorker | None:
        """Decode the fingerprints stored on the chosen layer (encode it first) into Image (and, for grain models,
        Labels) layers, in a worker, :data:`DECODE_STEP` fingerprints per progress step."""
        if self.progress.busy():
            return None
        try:
            model = self._need_model()
            layer = self.encode_layer.value
            if layer is None or "fingerprints" not in layer.metadata:
                raise InputError("the chosen layer holds no fingerprints; press 'Encode layer' first.")
            z = np.asarray(layer.metadata["fingerprints"])
            z = z.reshape(-1, z.shape[-1])
            grains = model.config["transform"] == "distance"
            p = model.config["patch_size"]
            check_fits(len(z) * p * p * 4 * (2 if grains else 1),
                       f"Decoding {len(z)} fingerprints into {p} x {p} images", "encode at a larger stride")
        except Exception as err:  # noqa: BLE001
            report_error(err, "Decode")
            return None

        def work() -> Generator[Progress, None, tuple[np.ndarray, np.ndarray | None, InputError | None]]:
            images, labels, no_grains = [], [], None
            for i in range(0, len(z), DECODE_STEP):
                yield Progress(i, len(z), f"decoding {len(z)} fingerprints")
                chunk = z[i:i + DECODE_STEP]
                images.append(decode(model, chunk))
                if grains and no_grains is None:
                    try:
                        labels.append(decode_labels(model, chunk, h=0.5))
                    except InputError as err:
                        no_grains = err
            grain_maps = np.concatenate(labels) if grains and no_grains is None else None
            return np.concatenate(images), grain_maps, no_grains

        def done(out: tuple[np.ndarray, np.ndarray | None, InputError | None]) -> None:
            images, grain_maps, no_grains = out
            self.viewer.add_image(images, name=f"{layer.name} decoded")
            if no_grains is not None:
                show_info(f"The decoded distance maps hold no clear grains ({no_grains}); train the model longer.")
            elif grain_maps is not None:
                self.viewer.add_labels(grain_maps, name=f"{layer.name} decoded grains")

        return self.progress.start(work, done, "Decode")
