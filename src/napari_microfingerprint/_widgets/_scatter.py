"""A matplotlib scatter canvas for fingerprint embeddings: points coloured by a property, clicking one calls back
with its index."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class ScatterPlot(FigureCanvasQTAgg):
    """An embedding ``(n, 2)`` coloured by ``values``; ``on_pick(index)`` runs when a point is clicked."""

    def __init__(self, on_pick: Callable[[int], None], height: float = 3.0) -> None:
        self.figure = Figure(figsize=(4, height), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.on_pick = on_pick
        self.colorbar = None
        self.mpl_connect("pick_event", self._picked)

    def show(self, xy: np.ndarray, values: np.ndarray, title: str, label: str) -> None:
        """Draw the points (pickable within 5 px) with a colour bar named ``label``."""
        if self.colorbar is not None:
            self.colorbar.remove()
        ax = self.axes
        ax.clear()
        points = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=12, cmap="viridis", picker=5)
        self.colorbar = self.figure.colorbar(points, ax=ax, label=label)
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        self.draw()

    def _picked(self, event) -> None:
        if len(event.ind):
            self.on_pick(int(event.ind[0]))
