"""Segmentation dock widget: greyscale Image -> phases (Labels); Image or Labels -> grains (Labels with a
``features`` table); grain statistics with a summary, a table and CSV export; a pixel classifier trained from
scribbles (:mod:`.scribbles`). All science is in ``core``."""
from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..core.characterization import grain_statistics, phase_fractions
from ..core.progress import Progress
from ..core.segmentation import (
    MAX_OTSU_PHASES,
    MAX_PHASES,
    resolve_grain_source,
    segment_grains_iter,
    segment_phases_iter,
)
from ..core.validation import InputError, check_labels
from ._common import ProgressRow, build_dock, layer_array, report_error
from .scribbles import ScribbleSection

if TYPE_CHECKING:
    import napari

#: Rows shown in the dock's table (the full table is in the layer's ``features`` and the CSV export).
MAX_TABLE_ROWS = 1000
#: Tooltip of the phase count. scikit-image's multi-Otsu tries every threshold combination, about bins^(phases - 1):
#: at 256 bins 5 phases took 2.6 s here and 6 phases about 2 minutes; the core lowers the bins from 5 phases on
#: (6 phases: 0.1 s) and refuses more than MAX_OTSU_PHASES.
PHASES_TIP = (f"otsu / multiotsu: at most {MAX_OTSU_PHASES} phases (the exhaustive multi-Otsu search explodes with "
              f"the phases: 6 phases at 256 bins took 2 minutes); manual thresholds: up to {MAX_PHASES}. For more "
              "phases use manual thresholds or the pixel classifier.")


def _spacing(layer: Layer, ndim: int) -> tuple[float, ...] | None:
    scale = tuple(float(s) for s in layer.scale[-ndim:])
    return None if all(s == 1.0 for s in scale) else scale


def _format_summary(summary: dict, fractions: dict[int, float] | None) -> str:
    size_key = "mean_area" if "mean_area" in summary else "mean_volume"
    lines = [
        f"grains N = {summary['n_grains']}",
        f"{size_key.replace('_', ' ')} = {summary[size_key]:.4g}",
        f"mean equivalent radius = {summary['mean_equivalent_radius']:.4g}",
        f"R-n slope s = {summary['rn_slope']:.4g} (R2 {summary['rn_r2']:.2f}, {summary['rn_fitted_grains']} grains)",
        f"mean line intercept = {summary['mean_intercept_length']:.4g}",
    ]
    if "lamellae_direction_deg" in summary:
        lines.append(f"mean lamellae direction = {summary['lamellae_direction_deg']:.1f} deg")
    if fractions:
        lines.append("phase fractions: " + ", ".join(f"{p}: {f:.3f}" for p, f in fractions.items()))
    lines.append(f"units: {summary['units']}")
    return "\n".join(lines)


class SegmentationWidget(QWidget):
    """Plugins > napari-microfingerprint > Segmentation."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.table_frame: pd.DataFrame | None = None
        self.summary: dict | None = None

        # 1. phases
        self.phase_input = ComboBox(label="image", choices=self._layers)
        self.low = FloatSpinBox(label="clip low %", value=1.0, min=0.0, max=50.0, step=0.5)
        self.high = FloatSpinBox(label="clip high %", value=99.0, min=50.0, max=100.0, step=0.5)
        self.illumination = FloatSpinBox(label="illumination sigma (0 = off)", value=0.0, min=0.0, max=10000.0)
        self.denoise = ComboBox(label="denoise", choices=["auto", "nl_means", "gaussian", "median", "none"])
        self.strength = FloatSpinBox(label="denoise strength", value=1.0, min=0.1, max=10.0, step=0.1)
        self.method = ComboBox(label="method", choices=["otsu", "multiotsu", "manual"])
        self.n_phases = SpinBox(label="phases", value=2, min=2, max=MAX_OTSU_PHASES, tooltip=PHASES_TIP)
        self.thresholds = LineEdit(label="manual thresholds", value="0.5")
        self.phase_min_size = SpinBox(label="min region size (px)", value=16, min=0, max=1_000_000)
        phase_form = Container(widgets=[self.phase_input, self.low, self.high, self.illumination, self.denoise,
                                        self.strength, self.method, self.n_phases, self.thresholds,
                                        self.phase_min_size])
        self.method.changed.connect(self._limit_phases)
        self.preview_button = QPushButton("Preview (current slice)")
        self.preview_button.clicked.connect(self.preview_phases)
        self.phase_button = QPushButton("Segment phases")
        self.phase_button.clicked.connect(self.run_phases)

        # 2. grains
        self.grain_input = ComboBox(label="source layer", choices=self._layers)
        self.source = ComboBox(label="source type", choices=["auto", "boundaries", "binary", "distance"])
        self.boundary = ComboBox(label="boundaries are", choices=["auto", "dark", "bright"])
        self.ridge_scale = FloatSpinBox(label="boundary half-width (px)", value=1.0, min=0.5, max=20.0, step=0.5)
        self.min_distance = SpinBox(label="marker min distance", value=3, min=1, max=1000)
        self.h = FloatSpinBox(label="h-maxima depth h (-1 = default)", value=-1.0, min=-1.0, max=100.0, step=0.5)
        self.grain_min_size = SpinBox(label="min grain size (px)", value=5, min=0, max=1_000_000)
        grain_form = Container(widgets=[self.grain_input, self.source, self.boundary, self.ridge_scale,
                                        self.min_distance, self.h, self.grain_min_size])
        self.grain_button = QPushButton("Segment grains")
        self.grain_button.clicked.connect(self.run_grains)

        # 3. statistics
        self.stats_input = ComboBox(label="grain labels", choices=self._layers)
        self.periodic = CheckBox(label="periodic domain", value=False)
        stats_form = Container(widgets=[self.stats_input, self.periodic])
        self.measure_button = QPushButton("Measure grains")
        self.measure_button.clicked.connect(self.run_measure)
        self.export_button = QPushButton("Export table as CSV...")
        self.export_button.clicked.connect(self._export_dialog)
        self.summary_label = QLabel("No grains measured yet.")
        self.summary_label.setWordWrap(True)
        self.table = QTableWidget()
        self.table.setMinimumHeight(160)

        self.progress = ProgressRow()
        self.scribble_section = ScribbleSection(self.viewer)

        build_dock(self, [
            ("1. Phases", phase_form, [self.preview_button, self.phase_button]),
            ("2. Grains", grain_form, [self.grain_button]),
            ("3. Grain statistics", stats_form, [self.measure_button]),
        ], [self.progress, self.summary_label, self.table, self.export_button, self.scribble_section])

        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)

    # ----------------------------------------------------------------- layer choices
    def _layers(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, (Image, Labels))]

    def _refresh_choices(self, _event: Any = None) -> None:
        for combo in (self.phase_input, self.grain_input, self.stats_input):
            combo.reset_choices()

    # ----------------------------------------------------------------- phases
    def _phase_kwargs(self) -> dict:
        thresholds = None
        if self.method.value == "manual":
            try:
                thresholds = [float(t) for t in self.thresholds.value.replace(";", ",").split(",") if t.strip()]
            except ValueError as err:
                raise InputError(
                    f"manual thresholds {self.thresholds.value!r} are not numbers; write e.g. '0.4, 0.7'."
                ) from err
        return {
            "n_phases": self.n_phases.value,
            "method": self.method.value,
            "thresholds": thresholds,
            "normalize_percentiles": (self.low.value, self.high.value),
            "illumination_sigma": self.illumination.value or None,
            "denoise_method": self.denoise.value,
            "denoise_strength": self.strength.value,
            "min_size": self.phase_min_size.value,
        }

    def _phase_source(self) -> tuple[Image, np.ndarray]:
        layer = self.phase_input.value
        if layer is None:
            raise InputError("no image layer is selected; open a micrograph or a sample first.")
        if isinstance(layer, Labels):
            raise InputError(
                f"'{layer.name}' is a Labels layer, but phases are segmented from a greyscale Image. "
                "Choose an Image layer, or use '2. Grains' / '3. Grain statistics' for labels."
            )
        return layer, layer_array(layer, "phase segmentation")

    def _limit_phases(self, method: str) -> None:
        """Otsu's exhaustive search is bounded (:data:`PHASES_TIP`); manual thresholds are not."""
        self.n_phases.max = MAX_PHASES if method == "manual" else MAX_OTSU_PHASES

    def preview_phases(self) -> GeneratorWorker | None:
        """Segment the 2D image (or the displayed slice of a 3D one), in a worker, into a reusable preview
        layer."""
        if self.progress.busy():
            return None
        try:
            layer, data = self._phase_source()
            kwargs = self._phase_kwargs()
        except Exception as err:  # noqa: BLE001 - every failure becomes a notification
            report_error(err, "Phase preview")
            return None
        z = None
        if data.ndim == 3:
            z = int(self.viewer.dims.current_step[-3]) if self.viewer.dims.ndim >= 3 else 0
            z = min(max(z, 0), data.shape[0] - 1)

        def work() -> Generator[Progress, None, np.ndarray]:
            if z is None:
                return (yield from segment_phases_iter(data, **kwargs))
            preview = np.zeros(data.shape, dtype=np.uint8)
            preview[z] = yield from segment_phases_iter(data[z], **kwargs)
            return preview

        def done(preview: np.ndarray) -> None:
            name = f"{layer.name} phases (preview)"
            if name in self.viewer.layers:
                self.viewer.layers[name].data = preview
            else:
                self.viewer.add_labels(preview, name=name, scale=layer.scale, translate=layer.translate, opacity=0.5)

        return self.progress.start(work, done, "Phase preview")

    def run_phases(self) -> GeneratorWorker | None:
        """Segment the chosen Image into phases in a worker; writes a new Labels layer."""
        if self.progress.busy():
            return None
        try:
            layer, data = self._phase_source()
            kwargs = self._phase_kwargs()
        except Exception as err:  # noqa: BLE001
            report_error(err, "Phase segmentation")
            return None

        def done(phases: np.ndarray) -> None:
            fractions = phase_fractions(phases)
            label = (f"{layer.name} phases ({kwargs['method']}, {kwargs['n_phases']})")
            self.viewer.add_labels(
                phases, name=label, scale=layer.scale, translate=layer.translate,
                metadata={"microfingerprint": {"made_by": "segment_phases", "source": layer.name,
                                               "settings": kwargs, "phase_fractions": fractions}},
            )
            self.summary_label.setText("phase fractions: " + ", ".join(f"{p}: {f:.3f}" for p, f in fractions.items()))

        return self.progress.start(segment_phases_iter, done, "Phase segmentation", image=data, **kwargs)

    # ----------------------------------------------------------------- grains
    def _grain_kwargs(self) -> dict:
        return {
            "source": self.source.value,
            "boundary": self.boundary.value,
            "ridge_scale": self.ridge_scale.value,
            "denoise_method": self.denoise.value,
            "min_distance": self.min_distance.value,
            "h": None if self.h.value < 0 else self.h.value,
            "min_size": self.grain_min_size.value,
        }

    def run_grains(self) -> GeneratorWorker | None:
        """Segment grains from the chosen layer in a worker; writes a Labels layer with a features table."""
        if self.progress.busy():
            return None
        try:
            layer = self.grain_input.value
            if layer is None:
                raise InputError("no source layer is selected; open a micrograph or a segmented phase map first.")
            data = layer_array(layer, "grain segmentation")
            kwargs = self._grain_kwargs()
            if isinstance(layer, Labels):
                values = np.unique(data)
                if values.size > 2:
                    raise InputError(
                        f"'{layer.name}' already holds {values.size} labels; measure it with "
                        "'3. Grain statistics', or pick a two-phase Labels layer or an Image to segment."
                    )
                data = check_labels(data, f"layer '{layer.name}'")
            spacing = _spacing(layer, data.ndim)
            periodic = self.periodic.value
        except Exception as err:  # noqa: BLE001
            report_error(err, "Grain segmentation")
            return None

        def work() -> Generator[Progress, None, tuple]:
            kwargs["source"], kwargs["boundary"] = resolve_grain_source(data, kwargs["source"], kwargs["boundary"],
                                                                        kwargs["ridge_scale"])
            labels = yield from segment_grains_iter(data, spacing=spacing, **kwargs)
            yield Progress(4, 5, "measuring grains")
            df, summary = grain_statistics(labels, spacing=spacing, periodic=periodic)
            yield Progress(5, 5, "done")
            return labels, df, summary

        def done(result: tuple) -> None:
            labels, df, summary = result
            how = f"{kwargs['boundary']} boundaries" if kwargs["source"] == "boundaries" else kwargs["source"]
            name = f"{layer.name} grains (watershed, {how})"
            new = self.viewer.add_labels(
                labels, name=name, scale=layer.scale, translate=layer.translate,
                features=df.assign(index=df["label"]),
                metadata={"microfingerprint": {"made_by": "segment_grains", "source": layer.name,
                                               "settings": kwargs, "summary": summary}},
            )
            self._show_statistics(df, summary, new)

        return self.progress.start(work, done, "Grain segmentation")

    # ----------------------------------------------------------------- statistics
    def run_measure(self) -> GeneratorWorker | None:
        """Measure the chosen grain Labels layer in a worker; shows the summary and the table."""
        if self.progress.busy():
            return None
        try:
            layer = self.stats_input.value
            if layer is None:
                raise InputError("no Labels layer is selected; segment grains first (2. Grains).")
            if not isinstance(layer, Labels):
                raise InputError(
                    f"'{layer.name}' is an Image layer, but grain statistics need a grain Labels layer. "
                    "Segment grains first (2. Grains), then measure the layer it writes."
                )
            data = check_labels(layer_array(layer, "grain statistics"), f"layer '{layer.name}'")
            spacing = _spacing(layer, data.ndim)
            periodic = self.periodic.value
        except Exception as err:  # noqa: BLE001
            report_error(err, "Grain statistics")
            return None

        def work() -> Generator[Progress, None, tuple]:
            yield Progress(0, 1, "measuring grains")
            df, summary = grain_statistics(data, spacing=spacing, periodic=periodic)
            yield Progress(1, 1, "done")
            return df, summary

        def done(result: tuple) -> None:
            df, summary = result
            ours = "microfingerprint" in layer.metadata
            if ours or len(layer.features) == 0:
                layer.features = df.assign(index=df["label"])
            self._show_statistics(df, summary, layer)

        return self.progress.start(work, done, "Grain statistics")

    def _show_statistics(self, df: pd.DataFrame, summary: dict, layer: Labels) -> None:
        self.table_frame, self.summary = df, summary
        fractions = None
        for candidate in self.viewer.layers:
            info = candidate.metadata.get("microfingerprint", {}) if isinstance(candidate, Labels) else {}
            if info.get("made_by") == "segment_phases" and np.shape(candidate.data) == np.shape(layer.data):
                fractions = info.get("phase_fractions")
        self.summary_label.setText(f"{layer.name}\n" + _format_summary(summary, fractions))
        shown = df.head(MAX_TABLE_ROWS)
        self.table.clear()
        self.table.setRowCount(len(shown))
        self.table.setColumnCount(len(shown.columns))
        self.table.setHorizontalHeaderLabels([str(c) for c in shown.columns])
        for r, row in enumerate(shown.itertuples(index=False)):
            for c, value in enumerate(row):
                text = f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)
                self.table.setItem(r, c, QTableWidgetItem(text))

    def export_csv(self, path: str) -> str | None:
        """Write the last grain table to ``path`` as CSV."""
        if self.table_frame is None:
            show_error("There is no grain table yet; segment or measure grains first.")
            return None
        self.table_frame.to_csv(path, index=False)
        show_info(f"Grain table written to {path}")
        return path

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export grain table", "grains.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)
