"""Latent traversal dock widget: walk a VAE's latent space from layers (sweep, path, Gaussian cloud, sampling,
decoder probes) into stacked Image (and grain Labels) layers, embed the fingerprints of layers (PCA / t-SNE)
coloured by a measured property with a cross-validated regression report, and send a generated structure,
segmented into phases, to the 3D reconstruction widget as its target."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Select, SpinBox
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from ..core.analysis import PATCH_PROPERTIES, REGRESSORS, classify, embed, fit_property, window_properties
from ..core.characterization import grain_statistics
from ..core.fingerprint_grains import fit_grain_head, grains_from_fingerprint_iter
from ..core.fingerprint_structures import fit_descriptor_head
from ..core.generation_quality import GenerationQuality, structure_quality, walk_quality
from ..core.latent import LatentWalk, decoder_probes, gaussian_cloud, interpolate_latent, sample_latent, traverse
from ..core.progress import Progress
from ..core.reconstruction import ReconstructionResult, reconstruct_iter
from ..core.segmentation import segment_phases
from ..core.vae.data import sliding_windows
from ..core.vae.model_io import BUILTIN_MODELS, encode, load_builtin_model, load_model
from ..core.vae.training import VAEModel
from ..core.validation import InputError, check_int, check_positive
from ._common import ProgressRow, ask_model_file, build_dock, layer_2d, report_error
from ._plot import CurvePlot
from ._scatter import ScatterPlot

if TYPE_CHECKING:
    import napari

PLUGIN = "napari-microfingerprint"
METHODS = ("sweep one dimension", "path between two layers", "Gaussian cloud", "sample like the layer",
           "decoder probes")
PROPERTIES = (*PATCH_PROPERTIES, "values from a CSV file")
VALIDATIONS = ("k-fold", "leave one layer out")


@dataclass
class _Structures:
    """What :meth:`TraversalWidget.structures_from_step` made: the 2D structures and the steps they come from,
    the 3D volume (grain label maps, or reconstruction results for two-phase models), which of the two a Cancel
    cut short, and their judgements (a :class:`GenerationQuality`, or why there is none)."""

    steps: list[int] = field(default_factory=list)
    flat: list[Any] = field(default_factory=list)
    volume: Any = None
    cancelled: str | None = None
    quality_2d: GenerationQuality | str | None = None
    quality_3d: GenerationQuality | str | None = None

    def judge(self, model: VAEModel, real: np.ndarray) -> None:
        """Judge the 2D structures together, and the volume, against the windows of the real image."""
        def labels(made: Any) -> np.ndarray:
            return made if isinstance(made, np.ndarray) else made.labels

        for name, structures in (("quality_2d", self.flat), ("quality_3d", [self.volume] if self.volume is not None
                                                                            else [])):
            if not structures:
                continue
            try:
                setattr(self, name, structure_quality(model, [labels(s) for s in structures], real))
            except InputError as err:  # the structures stand; only their judgement is missing, and the report says so
                setattr(self, name, f"not judged ({err})")


def _prefixed(gen: Generator[Any, None, Any], prefix: str) -> Generator[Progress, None, Any]:
    """Run a progress generator, passing on its progress with ``prefix`` before each message; return its value."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(p.step, p.total, f"{prefix}: {p.message}")


def _dock_widget(viewer: napari.viewer.Viewer, cls: type) -> Any:
    """The open dock widget of class ``cls`` in the viewer's window, or None."""
    for dock in viewer.window.dock_widgets.values():
        if isinstance(dock, cls):
            return dock
    return None


class TraversalWidget(QWidget):
    """Plugins > napari-microfingerprint > Latent traversal."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model: VAEModel | None = None
        self.walk: LatentWalk | None = None
        self.walk_layer: Image | None = None
        self.points: dict[str, Any] = {}
        #: The last fingerprint -> structure head (model, key of the source's data and seed, head): another step
        #: of a walk from the same source reuses it instead of fitting again (a grain head's growth table takes
        #: about a minute).
        self._head_cache: tuple[VAEModel, tuple, Any] | None = None
        #: The last walk's report, which the structures' judgement is added to.
        self._walk_report = ""

        self.use_encoder_button = QPushButton("Use the VAE encoding widget's model")
        self.use_encoder_button.clicked.connect(self.use_encoding_model)
        self.load_button = QPushButton("Load model...")
        self.load_button.clicked.connect(self._load_dialog)
        self.builtin_choice = ComboBox(label="built-in model", choices=list(BUILTIN_MODELS),
                                       tooltip="; ".join(f"{k}: {v['about']}" for k, v in BUILTIN_MODELS.items()))
        self.builtin_button = QPushButton("Load built-in model")
        self.builtin_button.clicked.connect(self.load_builtin)
        self.model_label = QLabel("No model: load one or use the encoding widget's.")
        self.model_label.setWordWrap(True)

        self.method = ComboBox(label="walk", choices=list(METHODS))
        self.source = ComboBox(label="from layer", choices=self._layers)
        self.other = ComboBox(label="to layer (path)", choices=self._layers)
        self.row = SpinBox(label="map row (fingerprint maps)", value=0, min=0, max=100_000)
        self.col = SpinBox(label="map column", value=0, min=0, max=100_000)
        self.dim = SpinBox(label="dimension (sweep)", value=0, min=0, max=100_000)
        self.low = FloatSpinBox(label="from value", value=-4.0, min=-100.0, max=100.0)
        self.high = FloatSpinBox(label="to value", value=4.0, min=-100.0, max=100.0)
        self.steps = SpinBox(label="steps / samples", value=10, min=1, max=1000)
        self.gamma = FloatSpinBox(label="gamma (cloud)", value=0.5, min=0.0, max=100.0, step=0.05)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.volume_side = SpinBox(label="3D side (sharp structures)", value=48, min=16, max=512)
        self.structure_evals = SpinBox(label="evaluations (sharp structures)", value=500, min=50, max=100_000,
                                       tooltip="Reconstruction budget per structure. Low-porosity materials need "
                                               "more: a 64^3 sandstone volume reached the real S2 spread at 1500.")
        self.every_step = CheckBox(text="a 2D structure for every step (sharp structures)", value=False,
                                   tooltip="One 2D structure per step of the walk, stacked like the walk, and the "
                                           "3D volume from the shown step; all are judged against the source "
                                           "layer's windows. A sampled walk of many steps then shows whether the "
                                           "samples are statistically equivalent to the material.")
        walk_form = Container(widgets=[self.method, self.source, self.other, self.row, self.col, self.dim, self.low,
                                       self.high, self.steps, self.gamma, self.seed, self.volume_side,
                                       self.structure_evals, self.every_step])
        self.walk_button = QPushButton("Walk")
        self.walk_button.clicked.connect(self.run_walk)
        self.send_button = QPushButton("Send the current step to 3D reconstruction")
        self.send_button.clicked.connect(self.send_to_reconstruction)
        self.structure_button = QPushButton("Sharp 2D and 3D structures from the current step (or every step)")
        self.structure_button.setToolTip(
            "Two-phase micrograph models: the step's fingerprint predicts descriptors (volume fractions, S2, "
            "variation) from the source layer's nearest windows, and the descriptor reconstruction makes a sharp "
            "2D image and a 3D volume with them. Grain models: a ridge regression on the source label map's "
            "windows predicts the grain size and R-n slope from the fingerprint, and Potts grain growth makes "
            "grains of that size.")
        self.structure_button.clicked.connect(lambda: self.structures_from_step())

        self.analysis_layers = Select(label="layers", choices=self._layers)
        self.stride = SpinBox(label="stride (0 = half a patch)", value=0, min=0, max=4096)
        self.embedding = ComboBox(label="embedding", choices=["pca", "tsne"])
        self.property = ComboBox(label="property", choices=list(PROPERTIES))
        self.csv = FileEdit(label="CSV (one value per window)", mode="r", filter="*.csv")
        self.regressor = ComboBox(label="regression", choices=list(REGRESSORS))
        self.folds = SpinBox(label="folds", value=10, min=2, max=100)
        self.validation = ComboBox(label="validation", choices=list(VALIDATIONS),
                                   tooltip="k-fold (paper 001 3.4) or leave one layer out (paper 002 Table 3)")
        analysis_form = Container(widgets=[self.analysis_layers, self.stride, self.embedding, self.property,
                                           self.csv, self.regressor, self.validation, self.folds])
        self.analyse_button = QPushButton("Embed and fit the property")
        self.analyse_button.clicked.connect(lambda: self.run_analysis())
        self.classify_button = QPushButton("Embed and classify windows by layer (SVM)")
        self.classify_button.setToolTip("Can the fingerprints tell the layers (e.g. process routes) apart? "
                                        "k-fold SVM accuracy against the chance level (paper 002 section 4.4).")
        self.classify_button.clicked.connect(lambda: self.run_analysis(by_layer=True))

        self.progress = ProgressRow()
        self.curve = CurvePlot("step", "grains")
        self.curve.setMinimumHeight(160)
        self.scatter = ScatterPlot(self.show_point)
        self.scatter.setMinimumHeight(240)
        self.report = QLabel("")
        self.report.setWordWrap(True)
        build_dock(self, [("Model", Container(widgets=[self.builtin_choice]),
                           [self.use_encoder_button, self.load_button, self.builtin_button, self.model_label]),
                          ("Walk the latent space", walk_form, [self.walk_button, self.send_button,
                                                                self.structure_button]),
                          ("Fingerprint analysis", analysis_form, [self.analyse_button, self.classify_button])],
                   [self.progress, self.curve, self.scatter, self.report])
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)

    def _layers(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, (Image, Labels))]

    def _refresh_choices(self, _event: Any = None) -> None:
        for combo in (self.source, self.other, self.analysis_layers):
            combo.reset_choices()

    # ----------------------------------------------------------------- model
    def set_model(self, model: VAEModel, where: str) -> None:
        self.model = model
        c = model.config
        self.dim.max = c["latent_dim"] - 1
        self.model_label.setText(f"model: {c['architecture']}, patch {c['patch_size']}, latent {c['latent_dim']}, "
                                 f"{c['transform']} data ({where})")

    def use_encoding_model(self) -> None:
        """Take the model of the open VAE encoding widget."""
        from .encoding import EncodingWidget

        encoder = _dock_widget(self.viewer, EncodingWidget)
        if encoder is None or encoder.model is None:
            report_error(InputError("the VAE encoding widget is not open or has no model; train or load one there, "
                                    "or load a model file here."), "Latent traversal")
            return
        self.set_model(encoder.model, "from the VAE encoding widget")

    def load_from(self, path: str) -> None:
        try:
            self.set_model(load_model(path), f"loaded from {path}")
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Load model")

    def load_builtin(self) -> None:
        """Use the model shipped with the package that ``builtin_choice`` names; the label says which sample image
        its training data match (the structures from a fingerprint take their statistics from its windows)."""
        name = self.builtin_choice.value
        try:
            self.set_model(load_builtin_model(name), f"built-in {name}: {BUILTIN_MODELS[name]['hint']}")
        except Exception as err:  # noqa: BLE001
            report_error(err, "Load built-in model")

    def _load_dialog(self) -> None:
        path = ask_model_file(self)
        if path:
            self.load_from(path)

    def _need_model(self) -> VAEModel:
        if self.model is None:
            raise InputError("no model is loaded; load a model file or use the VAE encoding widget's model.")
        return self.model

    # ----------------------------------------------------------------- fingerprints of layers
    def _fingerprint(self, layer: Layer | None) -> Callable[[], np.ndarray]:
        """One fingerprint for a layer, checked here and computed (in the worker) by the returned function: a
        window of its stored fingerprint map (row, column), its one stored fingerprint, or the encoding of the
        layer; a larger layer is cropped to its central patch (and says so), a smaller one is refused."""
        model = self._need_model()
        if layer is None:
            raise InputError("no source layer is selected.")
        stored = layer.metadata.get("fingerprints")
        if stored is not None:
            z = np.asarray(stored)
            if z.ndim == 1:
                return lambda: z
            if not (self.row.value < z.shape[0] and self.col.value < z.shape[1]):
                raise InputError(f"'{layer.name}' holds a {z.shape[0]} x {z.shape[1]} fingerprint map; row "
                                 f"{self.row.value}, column {self.col.value} is outside it.")
            point = z[self.row.value, self.col.value]
            return lambda: point
        data = layer_2d(layer)
        p = model.config["patch_size"]
        if min(data.shape) < p:
            raise InputError(f"'{layer.name}' ({data.shape[0]} x {data.shape[1]}) is smaller than the model's patch "
                             f"{p}; tile or upsample it, or train a model with a smaller patch.")
        if data.shape != (p, p):
            y, x = (data.shape[0] - p) // 2, (data.shape[1] - p) // 2
            show_info(f"'{layer.name}' is {data.shape[0]} x {data.shape[1]}; its central {p} x {p} patch was used.")
            data = data[y:y + p, x:x + p]
        return lambda: encode(model, data)

    def _window_fingerprints(self, layer: Layer) -> tuple[int, Callable[[], np.ndarray]]:
        """All window fingerprints of a layer (its stored map, or a sliding-window encoding at the widget's
        stride): how many there are, and the function that gives them (in the worker)."""
        stored = layer.metadata.get("fingerprints")
        if stored is not None:
            z = np.asarray(stored).reshape(-1, np.shape(stored)[-1])
            return len(z), lambda: z
        model = self._need_model()
        p = model.config["patch_size"]
        stride = self.stride.value or max(1, p // 2)
        data = layer_2d(layer)
        count = len(range(0, data.shape[0] - p + 1, stride)) * len(range(0, data.shape[1] - p + 1, stride))
        return count, lambda: encode(model, data, stride=stride).reshape(-1, model.config["latent_dim"])

    # ----------------------------------------------------------------- walks
    def _walk_job(self) -> tuple[Callable[[], LatentWalk], dict]:
        """The walk to run in the worker (a function of no arguments, encoding included) and a description;
        the inputs are checked here, in the main thread."""
        model = self._need_model()
        method, labels = self.method.value, model.config["transform"] == "distance"
        n, seed = self.steps.value, self.seed.value
        if method == "decoder probes":
            dims = sorted({0, min(self.dim.value, model.config["latent_dim"] - 1)})
            return (lambda: decoder_probes(model, dims=dims, labels=labels)), {"from": "zeros"}
        source = self.source.value
        start = self._fingerprint(source)
        count, windows = self._window_fingerprints(source) \
            if source.metadata.get("fingerprints") is not None or \
            min(np.shape(source.data)) > model.config["patch_size"] else (0, None)
        where = {"from": source.name}

        def reference() -> np.ndarray | None:  # the layer's windows score how typical each step is
            return windows() if count >= 3 else None

        if method == "sweep one dimension":
            dim = check_int(self.dim.value, "dim", 0, model.config["latent_dim"] - 1)  # the API's own check
            values = np.linspace(self.low.value, self.high.value, n)
            return (lambda: traverse(model, start(), dim, values, reference(), labels)), where
        if method == "path between two layers":
            if self.other.value is None or self.other.value is source:
                raise InputError("a path needs a second, different layer in 'to layer (path)'.")
            end = self._fingerprint(self.other.value)
            return (lambda: interpolate_latent(model, start(), end(), max(n, 2), reference(), labels)), \
                {**where, "to": self.other.value.name}
        if method == "Gaussian cloud":
            gamma = check_positive(self.gamma.value, "gamma")
            return (lambda: gaussian_cloud(model, start(), gamma, n, seed, reference(), labels)), where
        if count < 2:
            raise InputError(f"sampling fits normals to many fingerprints, but '{source.name}' gives one; encode a "
                             "layer larger than the patch (a fingerprint map).")

        def sample() -> LatentWalk:
            z = windows()
            return sample_latent(model, z, n, seed, z if count >= 3 else None, labels)

        return sample, where

    def run_walk(self) -> GeneratorWorker | None:
        """Run the chosen walk (encoding, decoding and measuring its grains) in a worker and write its stacked
        layer(s)."""
        if self.progress.busy():
            return None
        try:
            job, where = self._walk_job()
            model = self._need_model()
            source = self.source.value
            real = layer_2d(source) if source is not None and self.method.value != "decoder probes" else None
        except Exception as err:  # noqa: BLE001
            report_error(err, "Latent walk")
            return None

        def work() -> Generator[Progress, None, tuple[LatentWalk, list[dict] | None, GenerationQuality | str | None]]:
            yield Progress(0, 3, "encoding and decoding")
            walk = job()
            summaries = None
            if walk.labels is not None:
                yield Progress(1, 3, "measuring the grains of each step")
                summaries = [grain_statistics(lab)[1] if lab.any() else {"n_grains": 0, "mean_area": np.nan}
                             for lab in walk.labels]
            if real is None:
                return walk, summaries, None
            yield Progress(2, 3, "comparing the steps with the source layer's patches")
            try:
                return walk, summaries, walk_quality(model, walk, real)
            except InputError as err:  # the walk stands; only its judgement is missing, and the report says why
                return walk, summaries, f"not compared with the source layer ({err})"

        return self.progress.start(work, lambda out: self._show_walk(*out, where), "Latent walk")

    def _show_walk(self, walk: LatentWalk, summaries: list[dict] | None, quality: GenerationQuality | str | None,
                   where: dict) -> None:
        self.walk = walk
        details = ", ".join(f"{k} {v}" for k, v in walk.parameters.items() if k in ("dim", "gamma", "n", "steps")
                            and not isinstance(v, list))
        name = f"latent {walk.kind} ({details}) from {where['from']}" + (f" to {where['to']}" if "to" in where else "")
        meta = {"latent_walk": {"kind": walk.kind, "parameters": walk.parameters, "z": walk.z,
                                "ood": walk.ood, **where}}
        if isinstance(quality, GenerationQuality):
            meta["generation_quality"] = quality.table.to_dict("list")
        self.walk_layer = self.viewer.add_image(walk.images, name=name, metadata=meta)
        self.curve.clear()
        lines = [f"{len(walk.z)} steps"]
        if walk.ood is not None:
            lines.append("out-of-distribution score per step: " + " ".join(f"{v:.2f}" for v in walk.ood))
        if summaries is not None:
            self.viewer.add_labels(walk.labels, name=f"{name} grains",
                                   metadata={"grain_summaries": summaries, **meta})
            self.curve.set_curve("grains", [s["n_grains"] for s in summaries])
            lines.append("grains per step: " + " ".join(str(s["n_grains"]) for s in summaries))
        if isinstance(quality, GenerationQuality):
            lines.append(f"against the patches of {where['from']}: {quality.summary()}")
        elif quality is not None:
            lines.append(quality)
        self._walk_report = "; ".join(lines)
        self.report.setText(self._walk_report)
        self.viewer.dims.set_current_step(0, 0)

    def send_to_reconstruction(self) -> Labels | None:
        """Segment the shown step of the last walk into two phases (Otsu) and make it the 3D reconstruction
        widget's target, opening that widget if needed."""
        from .reconstruction import MODES, ReconstructionWidget

        try:
            if self.walk is None or self.walk_layer is None or self.walk_layer not in self.viewer.layers:
                raise InputError("there is no walk to take a step from; press 'Walk' first.")
            step = int(self.viewer.dims.current_step[0])
            step = min(max(step, 0), len(self.walk.images) - 1)
            phases = segment_phases(self.walk.images[step], 2, denoise_method="none")
        except Exception as err:  # noqa: BLE001
            report_error(err, "Send to 3D reconstruction")
            return None
        layer = self.viewer.add_labels(phases.astype(np.int32), name=f"{self.walk_layer.name} step {step} phases",
                                       metadata={"latent_walk_step": step, "z": self.walk.z[step]})
        recon = _dock_widget(self.viewer, ReconstructionWidget)
        if recon is None:
            _, recon = self.viewer.window.add_plugin_dock_widget(PLUGIN, "3D reconstruction")
        recon.mode.value = MODES[0]
        recon.source.reset_choices()
        recon.source.value = layer
        show_info(f"Step {step} (two phases, Otsu) is the 3D reconstruction widget's target; press Reconstruct.")
        return layer

    def structures_from_step(self) -> GeneratorWorker | None:
        """In a worker: from the shown step's fingerprint a 2D structure (twice the patch a side) and a 3D volume,
        as new Labels layers; with ``every_step``, a 2D structure from every step's fingerprint instead, stacked
        like the walk. A two-phase model fits the fingerprint -> descriptors regression on the source layer's
        windows (:func:`~..core.fingerprint_structures.fit_descriptor_head`) and reconstructs from the predicted
        descriptors; a grain model fits the fingerprint -> grain size regression on the source label map's
        windows (:func:`~..core.fingerprint_grains.fit_grain_head`) and grows Potts grains to the predicted size
        (3D sections at least a patch a side; a volume takes the material's part of it, which for one source map
        is the map's own grain size). The 2D structures and the volume are each judged against the source
        layer's windows (:func:`~..core.generation_quality.structure_quality`): the report says whether they pass,
        and the layers' metadata hold the table. Cancel keeps what is finished; a structure cancelled before its
        first step is not written."""
        if self.progress.busy():
            return None
        try:
            model = self._need_model()
            if self.walk is None or self.walk_layer is None or self.walk_layer not in self.viewer.layers:
                raise InputError("there is no walk to take a step from; press 'Walk' first.")
            source = self.source.value
            if source is None:
                raise InputError("no source layer: the descriptors come from the windows of the 'from layer'.")
            data = layer_2d(source)
            step = min(max(int(self.viewer.dims.current_step[0]), 0), len(self.walk.z) - 1)
            zs, p, side = self.walk.z, model.config["patch_size"], self.volume_side.value
            evaluations, seed = self.structure_evals.value, self.seed.value
            grains = model.config["transform"] == "distance"
            if grains and not isinstance(source, Labels):
                raise InputError(f"'{source.name}' is not a Labels layer; a grain model's structures take their "
                                 "grain sizes from the windows of a grain label map.")
        except Exception as err:  # noqa: BLE001
            report_error(err, "Structures from a fingerprint")
            return None
        cancel = threading.Event()
        steps = list(range(len(zs))) if self.every_step.value else [step]
        volume_shape = (side, max(side, p), max(side, p)) if grains else (side,) * 3

        def work() -> Generator[Any, None, _Structures]:
            if grains:
                yield Progress(0, 1, f"pairing the fingerprints of '{source.name}' with their grain sizes")
                head = self._head(model, data, seed, lambda: fit_grain_head(model, [data], seed=seed))

                def one(z: np.ndarray, shape: tuple[int, ...]) -> Generator[Any, None, np.ndarray | None]:
                    return (yield from grains_from_fingerprint_iter(head, z, shape, seed, cancel=cancel))
            else:
                yield Progress(0, 1, f"pairing the fingerprints of '{source.name}' with their descriptors")
                descriptor_head = self._head(model, data, None, lambda: fit_descriptor_head(model, [data]))

                def one(z: np.ndarray, shape: tuple[int, ...]) -> Generator[Any, None, ReconstructionResult | None]:
                    target = descriptor_head.predict(z)[0]
                    result = yield from reconstruct_iter(target, shape, cancel=cancel, max_iter=evaluations)
                    return result if result.evaluations > 0 else None

            made = _Structures()
            for i, k in enumerate(steps):
                result = yield from _prefixed(one(zs[k], (2 * p, 2 * p)), f"2D structure {i + 1} of {len(steps)}")
                if result is not None:
                    made.steps.append(k)
                    made.flat.append(result)
                if cancel.is_set():
                    made.cancelled = "2D"
                    break
            if made.cancelled is None:
                made.volume = yield from _prefixed(one(zs[step], volume_shape), f"3D volume from step {step}")
                made.cancelled = "3D" if cancel.is_set() else None
            yield Progress(0, 1, f"judging the structures against the windows of '{source.name}'")
            made.judge(model, data)
            return made

        return self.progress.start(work, lambda made: self._show_structures(made, step, source.name),
                                   "Structures from a fingerprint", cancel_event=cancel)

    def _show_structures(self, made: _Structures, step: int, source: str) -> None:
        """Write the structures of :meth:`structures_from_step` as Labels layers and their judgement into the
        report."""
        if not made.flat and made.volume is None:
            show_info("Cancelled before a structure was reached; nothing was written.")
            return
        grains = isinstance(made.volume if made.volume is not None else made.flat[0], np.ndarray)
        kind = "grains from fingerprint" if grains else "from fingerprint"
        walk_name = self.walk_layer.name if self.walk_layer is not None else "latent walk"
        lines = []
        for dims, structures, steps, quality in (("2D", made.flat, made.steps, made.quality_2d),
                                                 ("3D", [made.volume] if made.volume is not None else [], [step],
                                                  made.quality_3d)):
            if not structures:
                continue
            state = ""
            if made.cancelled == dims:
                state = " (cancelled, partly grown)" if grains else " (cancelled, best state)"
            where = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
            meta: dict[str, Any] = {"z": self.walk.z[steps] if len(steps) > 1 else self.walk.z[steps[0]],
                                    "steps": steps, ("grain_sizes_from" if grains else "descriptors_from"): source}
            if grains:
                meta["seed"] = self.seed.value
                labels = list(structures)
            else:
                labels = [r.labels.astype(np.int32) for r in structures]
                runs = {"errors": [r.errors for r in structures], "undecided": [r.undecided for r in structures],
                        "evaluations": [r.evaluations for r in structures]}
                meta.update({k: v[0] if len(steps) == 1 else v for k, v in runs.items()})
            if isinstance(quality, GenerationQuality):
                meta["generation_quality"] = quality.table.to_dict("list")
                lines.append(f"{dims}: {quality.summary()}")
            elif quality is not None:
                lines.append(f"{dims}: {quality}")
            data = labels[0] if len(labels) == 1 else np.stack(labels)
            plural = "s" if len(steps) > 1 else ""
            self.viewer.add_labels(data, name=f"{walk_name} {where} {dims} {kind}{plural}{state}", metadata=meta)
        self.report.setText(f"{self._walk_report}\nsharp structures against the windows of '{source}': "
                            + "; ".join(lines))

    def _head(self, model: VAEModel, data: np.ndarray, seed: int | None, fit: Callable[[], Any]) -> Any:
        """The head ``fit`` makes, or the last one when it came from the same model, source data and seed."""
        digest = hashlib.blake2b(np.ascontiguousarray(data).tobytes(), digest_size=16).hexdigest()
        key = (data.shape, str(data.dtype), digest, seed)
        cached = self._head_cache
        if cached is not None and cached[0] is model and cached[1] == key:
            return cached[2]
        head = fit()
        self._head_cache = (model, key, head)
        return head

    # ----------------------------------------------------------------- analysis
    def _csv_values(self) -> np.ndarray:
        path = self.csv.value
        try:
            return np.loadtxt(path, delimiter=",", ndmin=1, dtype=float)
        except (OSError, ValueError) as err:
            raise InputError(f"the CSV file {path} could not be read as one number per line ({err}).") from err

    def run_analysis(self, by_layer: bool = False) -> GeneratorWorker | None:
        """Fingerprint every window of the chosen layers, embed them, colour the embedding by the property and
        report its cross-validated prediction from the fingerprints; with ``by_layer``, colour by layer and report
        a k-fold SVM classification of the windows into their layers instead. Encoding, measuring, embedding and
        fitting run in a worker."""
        if self.progress.busy():
            return None
        leave_one_out = self.validation.value == "leave one layer out" and not by_layer
        try:
            layers = list(self.analysis_layers.value)
            if not layers:
                raise InputError("no layer is selected for the analysis.")
            model = self._need_model()
            maps = [layer.name for layer in layers if isinstance(layer, Image) and layer.rgb]
            if maps:
                raise InputError(f"{', '.join(maps)}: a fingerprint map or RGB layer; choose the layers the "
                                 "fingerprints come from.")
            if (by_layer or leave_one_out) and len(layers) < 2:
                raise InputError("classifying by layer or leaving one layer out needs at least two layers; "
                                 "select more or use k-fold.")
            images = [(layer_2d(layer), isinstance(layer, Labels)) for layer in layers]
            csv = self._csv_values() if self.property.value == "values from a CSV file" and not by_layer else None
        except Exception as err:  # noqa: BLE001
            report_error(err, "Fingerprint analysis")
            return None
        p = model.config["patch_size"]
        stride = self.stride.value or max(1, p // 2)
        method, regressor, folds, prop = self.embedding.value, self.regressor.value, self.folds.value, \
            self.property.value

        def work() -> Generator[Progress, None, tuple]:
            zs, values, corners = [], [], []
            for k, (data, is_labels) in enumerate(images):
                yield Progress(k, len(images) + 2, f"fingerprinting layer {k + 1} of {len(images)}")
                zs.append(encode(model, data, stride=stride).reshape(-1, model.config["latent_dim"]))
                corners += [(k, c) for c in sliding_windows(data, p, stride)[1]]
                if csv is None and not by_layer:
                    values.append(window_properties(data, p, stride, prop, is_labels))
            z = np.concatenate(zs)
            groups = np.repeat(np.arange(len(zs)), [len(g) for g in zs])
            y = groups if by_layer else (csv if csv is not None else np.concatenate(values))
            if y.size != len(z):
                raise InputError(f"the CSV holds {y.size} values; the layers give {len(z)} windows.")
            if not leave_one_out and len(z) < folds:
                raise InputError(f"{len(z)} windows are too few for {folds}-fold cross-validation; "
                                 "lower the stride or the folds, or add layers.")
            yield Progress(len(images), len(images) + 2, f"embedding ({method})")
            xy = embed(z, method=method)
            yield Progress(len(images) + 1, len(images) + 2,
                           "cross-validating " + ("an SVM" if by_layer else regressor))
            rep = classify(z, y, folds=folds) if by_layer else \
                fit_property(z, y, model=regressor, folds=folds, groups=groups if leave_one_out else None)
            return xy, y, corners, rep

        def done(result: tuple) -> None:
            xy, y, corners, rep = result
            self.points = {"xy": xy, "sources": [(layers[k], c) for k, c in corners], "report": rep, "patch": p}
            label = "layer" if by_layer else prop
            self.scatter.show(xy, y, f"{method.upper()} of {len(xy)} fingerprints", label)
            if by_layer:
                names = ", ".join(f"{k} = {layer.name}" for k, layer in enumerate(layers))
                self.report.setText(f"windows classified by layer ({folds}-fold; {names}): {rep.summary()}")
                return
            how = "leaving one layer out" if leave_one_out else f"{folds}-fold"
            self.report.setText(f"{prop} from fingerprints ({how}), {rep.summary()}")

        return self.progress.start(work, done, "Fingerprint analysis")

    def show_point(self, index: int) -> Image:
        """Show the patch behind embedding point ``index`` in the viewer (one layer, updated on each click)."""
        layer, (y, x) = self.points["sources"][index]
        p = self.points["patch"]
        patch = np.asarray(layer.data)[y:y + p, x:x + p]
        name = "selected fingerprint patch"
        meta = {"source": layer.name, "corner_yx": (y, x), "index": index}
        if name in self.viewer.layers:
            shown = self.viewer.layers[name]
            shown.data, shown.metadata = patch, meta
        else:
            shown = self.viewer.add_image(patch, name=name, metadata=meta)
        shown.translate = tuple(np.asarray(layer.translate[-2:]) + np.array([y, x]) * np.asarray(layer.scale[-2:]))
        shown.scale = layer.scale[-2:]
        return shown
