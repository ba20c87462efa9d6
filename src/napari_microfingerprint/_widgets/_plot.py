"""A small matplotlib canvas for curves in a dock widget (convergence, losses)."""
from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class CurvePlot(FigureCanvasQTAgg):
    """One or more named curves on a log-scaled y axis, redrawn on demand."""

    def __init__(self, xlabel: str, ylabel: str, height: float = 2.2) -> None:
        self.figure = Figure(figsize=(4, height), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.xlabel, self.ylabel = xlabel, ylabel
        self.curves: dict[str, list[float]] = {}
        self.clear()

    def clear(self) -> None:
        self.curves = {}
        self._redraw()

    def set_curve(self, name: str, values: list[float]) -> None:
        self.curves[name] = list(values)
        self._redraw()

    def _redraw(self) -> None:
        ax = self.axes
        ax.clear()
        for name, values in self.curves.items():
            if values:
                ax.plot(range(1, len(values) + 1), values, label=name)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        if any(v and min(v) > 0 for v in self.curves.values()):
            ax.set_yscale("log")
        if len(self.curves) > 1:
            ax.legend(fontsize="small")
        self.draw()
