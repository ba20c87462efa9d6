"""The physics check of a structure in a dock: a table of metrics against the reference's spread and a plot of
the chord-length and pore-size distributions."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..core.morphometry import StructureReport

COLUMNS = ("phase", "metric", "value", "reference (mean ± sd)", "within 2 sd")
OUTSIDE = QColor(255, 205, 205)
OUTSIDE_TEXT = QColor(20, 20, 20)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not math.isfinite(value):
        return "inf"
    return f"{value:.4g}"


class DistributionPlot(FigureCanvasQTAgg):
    """Chord-length and pore-size distributions of one phase, the structure against the reference, as densities
    per unit of log length (the bins widen geometrically)."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 2.2), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.subplots(1, 2)
        self.show_report(None)

    def show_report(self, report: StructureReport | None, phase: int = 1) -> None:
        for ax, name, title in zip(self.axes, ("chord_length", "pore_size"), ("chord length", "local thickness"),
                                   strict=True):
            ax.clear()
            ax.set_title(title, fontsize="small")
            if report is None or phase not in report.distributions:
                continue
            d = report.distributions[phase][name]
            centres = np.sqrt(d["edges"][:-1] * d["edges"][1:])
            width = np.log(d["edges"][1:] / d["edges"][:-1])
            for key, style in (("structure", "-"), ("reference", "--")):
                keep = d[key] > 0
                ax.plot(centres[keep], d[key][keep] / width[keep], style, label=key)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(report.unit, fontsize="small")
            ax.legend(fontsize="x-small")
        self.draw()


class ReportPanel(QWidget):
    """The report's summary line, its table (rows outside two standard deviations shaded) and the plot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setMinimumHeight(220)
        self.plot = DistributionPlot()
        self.plot.setMinimumHeight(170)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.summary, self.table, self.plot):
            layout.addWidget(widget)
        self.report: StructureReport | None = None

    def show_report(self, report: StructureReport, title: str) -> None:
        """Fill the table and the plot from ``report``."""
        self.report = report
        self.summary.setText(f"{title}\n{report.summary()}")
        table = report.table()
        self.table.setRowCount(len(table))
        for row, r in enumerate(table.itertuples()):
            phase = "all" if r.phase == -1 else str(int(r.phase))
            unit = f" {r.unit}" if r.unit else ""
            ref = ""
            inside = ""
            if "ref_mean" in table.columns and not (isinstance(r.ref_mean, float) and math.isnan(r.ref_mean)):
                ref = f"{_fmt(r.ref_mean)} ± {_fmt(r.ref_sd)}"
                inside = "yes" if r.inside else "NO"
            shown = r.compared if "compared" in table.columns and not _missing(r.compared) else r.value
            cells = (phase, r.metric, _fmt(shown) + unit, ref, inside)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if inside == "NO":
                    item.setBackground(QBrush(OUTSIDE))
                    item.setForeground(QBrush(OUTSIDE_TEXT))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        phases = sorted(report.distributions)
        self.plot.show_report(report, 1 if 1 in phases else (phases[0] if phases else 1))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
