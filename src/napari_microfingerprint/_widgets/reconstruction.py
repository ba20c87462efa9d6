"""3D reconstruction dock widget: a phase Labels layer (2D slice, up to three orthogonal slices, or a volume)
-> descriptors -> a reconstructed Labels layer (and the soft field as an Image), with a live preview, a
convergence plot and Cancel keeping the best state. Also a 2D mode and interpolation between two layers.

After each run the physics check (:mod:`..core.morphometry`) of the result against its source appears as a table
and a plot; *Check* measures any Labels layer, *Show clusters* writes the largest and the isolated clusters of a
phase as a Labels layer."""
from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from ..core.descriptors import available_descriptors
from ..core.descriptors.sets import DEFAULT_WEIGHTS, DescriptorSet, characterize, interpolate, merge
from ..core.morphometry import StructureReport, cluster_labels, structure_report_iter
from ..core.progress import Progress
from ..core.reconstruction import (
    OPTIMIZERS,
    ReconstructionProgress,
    ReconstructionResult,
    lost_phases_message,
    own_exponents,
    reconstruct_iter,
    reference_tortuosity,
)
from ..core.validation import InputError, check_labels
from ._common import ProgressRow, build_dock, build_section, report_error
from ._plot import CurvePlot
from ._report import ReportPanel

if TYPE_CHECKING:
    import napari

MODES = ("3D from 2D slice(s)", "3D from 3D volume", "2D", "interpolate between two layers")
NONE = "(none)"
TORTUOSITY = ("none", "this value", "same as the source volume")
FLOOR_EXPONENT = ("Archie's 2 (a 3D source: its own)", "this value")


class ReconstructionWidget(QWidget):
    """Plugins > napari-microfingerprint > 3D reconstruction."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: ReconstructionResult | list[ReconstructionResult] | None = None
        self.preview_layer: Labels | None = None
        self.runs_done = 0

        self.mode = ComboBox(label="mode", choices=list(MODES))
        self.source = ComboBox(label="phases (yx slice / volume / from)", choices=self._layers)
        self.zx = ComboBox(label="zx slice (optional)", choices=self._optional_layers)
        self.zy = ComboBox(label="zy slice (optional)", choices=self._optional_layers)
        self.other = ComboBox(label="interpolate to", choices=self._optional_layers)
        self.steps = SpinBox(label="interpolation steps (2D results, stacked)", value=5, min=2, max=50)
        inputs = Container(widgets=[self.mode, self.source, self.zx, self.zy, self.other, self.steps])

        self.weights: dict[str, tuple[CheckBox, FloatSpinBox]] = {}
        rows = []
        for name in available_descriptors():
            on = CheckBox(text=name, value=name in DEFAULT_WEIGHTS)
            weight = FloatSpinBox(value=DEFAULT_WEIGHTS.get(name, 1.0), min=0.0, max=1e6, tooltip=f"{name} weight")
            self.weights[name] = (on, weight)
            rows.append(Container(widgets=[on, weight], layout="horizontal", labels=False))
        descriptors = Container(widgets=rows, labels=False)

        self.limit_to = SpinBox(label="limit_to (px)", value=8, min=1, max=256)
        self.size_z = SpinBox(label="output Z", value=64, min=1, max=4096)
        self.size_y = SpinBox(label="output Y", value=64, min=1, max=4096)
        self.size_x = SpinBox(label="output X", value=64, min=1, max=4096)
        self.max_iter = SpinBox(label="iterations (evaluations)", value=500, min=1, max=100_000)
        self.optimizer = ComboBox(label="optimizer", choices=list(OPTIMIZERS))
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.ensemble = SpinBox(label="volumes (seeds from seed on)", value=1, min=1, max=1000,
                                tooltip="an ensemble of statistically equivalent volumes, one seed each, stacked "
                                        "as one layer; Cancel keeps the finished ones")
        self.multigrid = CheckBox(label="multigrid (coarse to fine)", value=True)
        self.show_3d = CheckBox(label="switch the viewer to 3D", value=True)
        settings = Container(widgets=[self.limit_to, self.size_z, self.size_y, self.size_x, self.max_iter,
                                      self.optimizer, self.device, self.seed, self.ensemble, self.multigrid,
                                      self.show_3d])

        self.connectivity = CheckBox(
            label="keep network phases connected (Archie floor, bridges)", value=True,
            tooltip="3D: every phase with 10-50 % of the volume conducts at least as Archie's law D_eff/D_0 = eps^m "
                    "says (m = 2, or a 3D source's own); clusters cut off by the decision are bridged; specks are "
                    "removed.")
        self.floor_mode = ComboBox(label="floor exponent", choices=list(FLOOR_EXPONENT))
        self.floor_m = FloatSpinBox(
            label="Archie exponent m", value=2.0, min=1.0, max=5.0, step=0.05,
            tooltip="cementation exponent of the network phases below half of the volume: a tortuosity of at most "
                    "eps^(1 - m); sandstones about 1.8-2.5")
        self.tau_mode = ComboBox(label="target tortuosity", choices=list(TORTUOSITY))
        self.tau_value = FloatSpinBox(label="tortuosity factor", value=3.0, min=1.0, max=1e4, step=0.1)
        self.tau_phase = SpinBox(label="of phase", value=1, min=0, max=15)
        transport = Container(widgets=[self.connectivity, self.floor_mode, self.floor_m, self.tau_mode,
                                       self.tau_value, self.tau_phase])

        self.check_layer = ComboBox(label="check layer", choices=self._labels_layers)
        self.check_reference = ComboBox(label="against (optional)", choices=self._optional_labels)
        self.check_transport = CheckBox(label="tortuosity in the check", value=True)
        self.cluster_phase = SpinBox(label="clusters of phase", value=1, min=0, max=15)
        check = Container(widgets=[self.check_layer, self.check_reference, self.check_transport, self.cluster_phase])
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check)
        self.clusters_button = QPushButton("Show clusters")
        self.clusters_button.clicked.connect(self.show_clusters)
        self.report_panel = ReportPanel()
        self.last_report: StructureReport | None = None

        self.run_button = QPushButton("Reconstruct")
        self.run_button.clicked.connect(self.run)
        self.progress = ProgressRow()
        self.plot = CurvePlot("loss evaluation", "loss")
        self.report = QLabel("")
        self.report.setWordWrap(True)

        self.plot.setMinimumHeight(180)
        sections = [("Target", inputs, []), ("Descriptors (weight)", descriptors, []), ("Settings", settings, []),
                    ("Transport", transport, [])]
        check_box = build_section("Physics check", check, [self.check_button, self.clusters_button,
                                                            self.report_panel])
        build_dock(self, sections, [self.run_button, self.progress, self.plot, self.report, check_box])

        self.source.changed.connect(self._size_from_source)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)
        self._size_from_source()

    # ----------------------------------------------------------------- choices
    def _layers(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, (Image, Labels))]

    def _optional_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(NONE, None)] + self._layers()

    def _labels_layers(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _optional_labels(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(NONE, None)] + self._labels_layers()

    def _refresh_choices(self, _event: Any = None) -> None:
        for combo in (self.source, self.zx, self.zy, self.other, self.check_layer, self.check_reference):
            combo.reset_choices()

    def _size_from_source(self, _event: Any = None) -> None:
        layer = self.source.value
        if layer is None:
            return
        shape = np.shape(layer.data)
        if len(shape) == 2:
            self.size_z.value, self.size_y.value, self.size_x.value = shape[0], shape[0], shape[1]
        elif len(shape) == 3:
            self.size_z.value, self.size_y.value, self.size_x.value = shape

    # ----------------------------------------------------------------- target
    def _phases(self, layer: Layer | None, role: str) -> np.ndarray:
        if layer is None:
            raise InputError(f"no {role} layer is selected; open or segment a phase map first.")
        if isinstance(layer, Image):
            raise InputError(
                f"'{layer.name}' is a greyscale Image, but reconstruction needs phases. Segment it first with "
                "Plugins > napari-microfingerprint > Segmentation (1. Phases), then pick the Labels layer it writes."
            )
        return np.array(layer.data)  # a copy: the worker reads it while the layer may be painted

    def _descriptor_weights(self) -> dict[str, float]:
        chosen = {n: w.value for n, (on, w) in self.weights.items() if on.value and w.value > 0}
        if not chosen:
            raise InputError("no descriptor is ticked; tick at least one (the defaults are volume_fractions, s2, "
                             "variation).")
        return chosen

    def _shape(self, ndim: int) -> tuple[int, ...]:
        if ndim == 2:
            return (self.size_y.value, self.size_x.value)
        return (self.size_z.value, self.size_y.value, self.size_x.value)

    def _targets(self, weights: dict[str, float]
                 ) -> tuple[Callable[[], list[DescriptorSet]], int, tuple[int, ...], Layer]:
        """The inputs, checked here; the target descriptors as a function for the worker (characterising a large
        volume takes long), how many targets it gives, the output shape and the source layer."""
        mode = self.mode.value
        layer = self.source.value
        data = self._phases(layer, "phase")
        lt = self.limit_to.value
        names = list(weights)
        if mode == "3D from 3D volume":
            if data.ndim != 3:
                raise InputError(f"'{layer.name}' is {data.ndim}D; this mode needs a 3D phase volume.")
            return (lambda: [characterize(data, names, lt)]), 1, self._shape(3), layer
        if data.ndim != 2:
            raise InputError(f"'{layer.name}' is {data.ndim}D; mode '{mode}' needs a 2D phase slice.")
        if mode == "interpolate between two layers":
            other = self._phases(self.other.value, "'interpolate to'")
            if other.ndim != 2:
                raise InputError("interpolation needs two 2D phase slices.")
            steps = self.steps.value

            def between() -> list[DescriptorSet]:
                first = characterize(data, names, lt)
                second = characterize(other, names, lt, n_phases=first.n_phases)
                if second.n_phases != first.n_phases:
                    first = characterize(data, names, lt, n_phases=second.n_phases)
                return interpolate(first, second, steps)

            return between, steps, self._shape(2), layer
        if mode == "2D":
            return (lambda: [characterize(data, names, lt)]), 1, self._shape(2), layer
        sections = {k: self._phases(v, k) for k, v in (("zx", self.zx.value), ("zy", self.zy.value))
                    if v is not None}

        def from_slices() -> list[DescriptorSet]:
            first = characterize(data, names, lt)
            if not sections:
                return [first]
            return [merge(yx=first, **{k: characterize(v, names, lt, n_phases=first.n_phases)
                                       for k, v in sections.items()})]

        return from_slices, 1, self._shape(3), layer

    # ----------------------------------------------------------------- run
    def run(self) -> GeneratorWorker | None:
        """Characterise the target and reconstruct in a worker; preview and plot update as it converges. A run
        cancelled before its first step writes nothing."""
        if self.progress.busy():
            return None
        try:
            weights = self._descriptor_weights()
            describe, n_targets, shape, layer = self._targets(weights)
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Reconstruction")
            return None
        settings = {"weights": weights, "optimizer": self.optimizer.value, "max_iter": self.max_iter.value,
                    "device": self.device.value, "seed": self.seed.value, "multigrid": self.multigrid.value,
                    "connectivity": "auto" if self.connectivity.value else "off"}
        try:
            tortuosity = self._tortuosity(layer, len(shape))
            if self.connectivity.value and self.floor_mode.value == "this value":
                if len(shape) != 3:
                    raise InputError("the Archie exponent sets the floor of 3D reconstructions; choose a 3D mode "
                                     "or the default floor exponent.")
                settings["archie_exponent"] = self.floor_m.value
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Reconstruction")
            return None
        reference = None if n_targets > 1 or self.zx.value is not None or self.zy.value is not None \
            else self._phases(layer, "phase")
        own_exponent = self.connectivity.value and "archie_exponent" not in settings and reference is not None \
            and reference.ndim == 3 and len(shape) == 3
        spacing = tuple(float(v) for v in layer.scale[-np.ndim(layer.data):])
        n_volumes = self.ensemble.value if n_targets == 1 else 1
        if self.ensemble.value > 1 and n_targets > 1:
            show_info("'volumes' makes an ensemble of one target; an interpolation makes one structure per step, "
                      "so it is ignored here.")
        n_runs = max(n_targets, n_volumes)
        seed = self.seed.value
        kind = "volume" if n_volumes > 1 else "reconstruction"
        cancel = threading.Event()
        self.plot.clear()
        self._history: list[float] = []
        self.runs_done = 0
        self._preview_name = f"{layer.name} reconstruction (preview)"

        def work() -> Generator[Any, None, tuple[list[ReconstructionResult], StructureReport | None]]:
            yield Progress(0, 1, "characterising the target")
            targets = describe()
            runs = [(t, seed) for t in targets] if n_volumes == 1 else \
                [(targets[0], seed + k) for k in range(n_volumes)]
            if isinstance(tortuosity, np.ndarray):  # the source volume's own, solved here and not in the GUI
                yield Progress(0, 1, "tortuosity of the source volume")
                settings["tortuosity"] = reference_tortuosity(tortuosity)
            elif tortuosity is not None:
                settings["tortuosity"] = tortuosity
            if own_exponent:  # the floor asks for at least the source volume's own conduction
                yield Progress(0, 1, "Archie exponent of the source volume")
                settings["archie_exponent"] = own_exponents(reference, shape, settings)
            results = []
            for k, (target, run_seed) in enumerate(runs):
                if cancel.is_set():
                    break
                res, steps = yield from _counting(reconstruct_iter(target, shape, cancel=cancel,
                                                                   **{**settings, "seed": run_seed}))
                if res.cancelled and (len(runs) > 1 or steps == 0):
                    break  # kept only when finished (ensembles, interpolations) or, alone, when it made a step
                results.append(res)
                yield Progress(k + 1, len(runs), f"{kind} {k + 1} of {len(runs)} done")
            report = None
            if len(results) == 1 and not results[0].cancelled and len(np.unique(results[0].labels)) > 1:
                out_spacing = spacing if len(spacing) == len(shape) else (spacing[0],) + spacing
                report = yield from _checked(results[0].labels, reference, out_spacing, True, cancel)
            return results, report

        def done(outcome: tuple[list[ReconstructionResult], StructureReport | None]) -> None:
            results, report = outcome
            self._write_results(results, layer, shape, settings, stacked=n_runs > 1, ensemble=n_volumes > 1)
            if report is not None:
                self._show_report(report, f"physics check of the reconstruction against '{layer.name}'")

        return self.progress.start(work, done, "Reconstruction", on_yield=self._on_progress, cancel_event=cancel)

    def _on_progress(self, p: Any) -> None:
        if isinstance(p, Progress):
            self.runs_done = p.step  # volumes of an ensemble (or interpolation steps) finished
            return
        if not isinstance(p, ReconstructionProgress):
            return
        self._history.append(p.loss)
        if len(self._history) % 5 == 0:
            self.plot.set_curve("loss", self._history)
        if p.preview is not None:
            preview = p.preview
            if self.preview_layer is not None and self.preview_layer in self.viewer.layers \
                    and self.preview_layer.data.shape == preview.shape:
                self.preview_layer.data = preview
            else:
                if self.preview_layer is not None and self.preview_layer in self.viewer.layers:
                    self.viewer.layers.remove(self.preview_layer)
                self.preview_layer = self.viewer.add_labels(preview, name=self._preview_name, opacity=0.8)
                if preview.ndim == 3 and self.show_3d.value:
                    self._show_3d()

    def _show_3d(self, layer: Layer | None = None) -> None:
        """Switch to 3D display at an oblique angle and, for a result, frame it."""
        if self.viewer.dims.ndisplay != 3:
            self.viewer.dims.ndisplay = 3
            camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
            camera.angles = (15.0, -35.0, 135.0)
        if layer is not None:
            try:
                self.viewer.reset_view(layers=[layer], reset_camera_angle=False)
            except TypeError:  # napari before 0.9 frames every layer
                self.viewer.reset_view()

    def _write_results(self, results: list[ReconstructionResult], layer: Layer, shape: tuple[int, ...],
                       settings: dict, stacked: bool, ensemble: bool) -> None:
        """Add the result as a Labels layer (several results stacked along a first axis: the interpolation steps
        or the ensemble's volumes, in seed order) and, for one result, its soft field as a hidden Image."""
        if self.preview_layer is not None and self.preview_layer in self.viewer.layers:
            self.viewer.layers.remove(self.preview_layer)
        self.preview_layer = None
        if not results:
            show_info("Reconstruction cancelled before a result was reached; nothing was written.")
            return
        self.result = results if stacked else results[0]
        self.plot.set_curve("loss", results[-1].history)
        spacing = tuple(layer.scale[-2:])
        scale = spacing if len(shape) == 2 else (spacing[0],) + spacing
        if np.ndim(layer.data) == 3:
            scale = tuple(layer.scale)
        labels = np.stack([r.labels for r in results]) if stacked else results[0].labels
        tag = "2D" if len(shape) == 2 else "3D"
        if ensemble:
            seeds = [r.settings["seed"] for r in results]
            tag = f"ensemble of {len(results)} {tag} (seeds {seeds[0]}-{seeds[-1]})"
        elif stacked:
            tag = "interpolated"
        how = f"{settings['optimizer']}, {'+'.join(settings['weights'])}, limit_to {self.limit_to.value}"
        meta = {"microfingerprint": {
            "made_by": "reconstruct", "source": layer.name, "settings": {**settings, "limit_to": self.limit_to.value},
            "errors": [r.errors for r in results], "undecided": [r.undecided for r in results],
            "seconds": [r.seconds for r in results], "cancelled": any(r.cancelled for r in results)}}
        lscale = ((1.0,) + scale) if stacked else scale
        out = self.viewer.add_labels(labels, name=f"{layer.name} reconstruction {tag} ({how})", scale=lscale,
                                     metadata=meta)
        if not stacked:
            self._add_soft_field(results[0].soft, f"{layer.name} reconstruction", scale, meta)
        if len(shape) == 3 and self.show_3d.value:
            self._show_3d(out)
        last = results[-1]
        errs = "; ".join(f"{a}: " + ", ".join(f"{n} {e:.3g}" for n, e in d.items()) for a, d in last.errors.items())
        lost = sorted({p for r in results for p in r.lost_phases})
        if lost:
            show_warning(f"'{layer.name}': " + lost_phases_message(", ".join(f"phase {p}" for p in lost)))
        state = "cancelled, best state kept" if last.cancelled else "done"
        self.report.setText(f"{state} in {sum(r.seconds for r in results):.1f} s, {last.evaluations} evaluations, "
                            f"undecided {100 * last.undecided:.2f} %\nrelative errors of the labels: {errs}")

    def _add_soft_field(self, soft: np.ndarray, name: str, scale: tuple[float, ...], meta: dict) -> None:
        """The soft field ``(P, *shape)`` as hidden Images of the result's own dimensions: phase 1's probability
        for two phases, one layer per phase otherwise (a phase axis would make the viewer 4D)."""
        if soft.shape[0] == 2:
            self.viewer.add_image(soft[1], name=f"{name} soft field", scale=scale, metadata=meta,
                                  colormap="magma", visible=False)
            return
        self.viewer.add_image(soft, channel_axis=0, name=[f"{name} probability of phase {p}" for p in
                                                          range(soft.shape[0])],
                              scale=scale, metadata=meta, colormap="magma", visible=False)

    # ----------------------------------------------------------------- physics check
    def _tortuosity(self, layer: Layer, ndim: int) -> Any:
        """The tortuosity setting from the Transport section: ``None``, ``{phase: value}``, or the checked source
        volume, whose tortuosity the worker solves (:func:`reference_tortuosity`)."""
        mode = self.tau_mode.value
        if mode == "none":
            return None
        if ndim != 3:
            raise InputError("a target tortuosity needs a 3D output; choose a 3D mode or set it to 'none'.")
        if mode == "this value":
            return {self.tau_phase.value: self.tau_value.value}
        data = np.asarray(layer.data)
        if data.ndim != 3:
            raise InputError(f"'same as the source volume' needs a 3D source, but '{layer.name}' is {data.ndim}D; "
                             "give a value instead.")
        return check_labels(data, f"layer '{layer.name}'")

    def _show_report(self, report: StructureReport, title: str) -> None:
        self.last_report = report
        self.report_panel.show_report(report, title)

    def check(self) -> GeneratorWorker | None:
        """Measure the chosen Labels layer (against the optional reference layer) in a worker."""
        if self.progress.busy():
            return None
        layer = self.check_layer.value
        ref_layer = self.check_reference.value
        try:
            data = _phase_data(layer)
            reference = None if ref_layer is None else _phase_data(ref_layer)
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Check")
            return None
        spacing = tuple(float(v) for v in layer.scale[-data.ndim:])
        against = "" if ref_layer is None else f" against '{ref_layer.name}'"

        def done(report: StructureReport) -> None:
            self._show_report(report, f"physics check of '{layer.name}'{against}")

        return self.progress.start(structure_report_iter, done, "Check", structure=data, reference=reference,
                                   spacing=spacing, transport=self.check_transport.value)

    def show_clusters(self) -> GeneratorWorker | None:
        """Write the largest (1) and the isolated (2) clusters of a phase of the checked layer as Labels (the
        clusters are labelled in a worker)."""
        if self.progress.busy():
            return None
        layer = self.check_layer.value
        phase = self.cluster_phase.value
        try:
            data = _phase_data(layer)
            if not (data == phase).any():
                raise InputError(f"'{layer.name}' has no voxel of phase {phase}; choose another phase.")
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Show clusters")
            return None

        def work() -> Generator[Progress, None, np.ndarray]:
            yield Progress(0, 1, f"clusters of phase {phase}")
            return cluster_labels(data, phase)

        def done(clusters: np.ndarray) -> None:
            isolated = float((clusters == 2).sum() / (clusters > 0).sum())
            self.viewer.add_labels(
                clusters, name=f"{layer.name} clusters of phase {phase} (1 largest, 2 isolated)", scale=layer.scale,
                metadata={"microfingerprint": {"made_by": "cluster_labels", "source": layer.name, "phase": phase,
                                               "isolated_share": isolated}})
            show_info(f"phase {phase} of '{layer.name}': largest cluster 1, every isolated cluster 2 "
                      f"({100 * isolated:.2f} % of the phase is isolated).")

        return self.progress.start(work, done, "Show clusters")


def _phase_data(layer: Layer | None) -> np.ndarray:
    """The phase map of the Labels layer chosen for a check; :class:`InputError` when none is chosen."""
    if layer is None:
        raise InputError("no Labels layer is chosen under 'check layer'; open or reconstruct a phase map first.")
    return check_labels(layer.data, f"layer '{layer.name}'")


def _checked(labels: np.ndarray, reference: np.ndarray | None, spacing: tuple[float, ...], transport: bool,
             cancel: threading.Event) -> Generator[Progress, None, StructureReport | None]:
    """The structure report after a run, against its source; when the source cannot give a spread, the result
    alone, with the reason as the report's mode, so that the run is kept. ``None`` when Cancel is pressed during
    the check (the reconstruction is written all the same)."""
    try:
        report = yield from _cancellable(structure_report_iter(labels, reference, spacing=spacing,
                                                               transport=transport), cancel)
    except InputError as err:
        if reference is None:
            raise
        report = yield from _cancellable(structure_report_iter(labels, None, spacing=spacing, transport=transport),
                                         cancel)
        if report is not None:
            report.mode = f"not compared with the source: {err}"
    return report


def _counting(gen: Generator[Any, None, ReconstructionResult]
              ) -> Generator[Any, None, tuple[ReconstructionResult, int]]:
    """Run a reconstruction generator; returns its result and how many progress steps it made."""
    steps = 0
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value, steps
        steps += 1
        yield step


def _cancellable(gen: Generator[Progress, None, StructureReport], cancel: threading.Event
                 ) -> Generator[Progress, None, StructureReport | None]:
    """Run a report generator, stopping at its next step once ``cancel`` is set (then ``None``)."""
    while True:
        if cancel.is_set():
            gen.close()
            return None
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        yield step
