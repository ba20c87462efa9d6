"""Helpers shared by the dock widgets: layer choice, workers with progress and cancel, error notifications."""
from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core.progress import Progress
from ..core.validation import InputError, as_spatial_array, to_greyscale


def report_error(err: BaseException, context: str) -> None:
    """Show ``err`` as a napari notification: input errors as they are, anything else with its type."""
    if isinstance(err, InputError):
        show_error(f"{context}: {err}")
    else:
        show_error(f"{context} failed ({type(err).__name__}: {err}).")


def layer_array(layer: Layer, purpose: str) -> np.ndarray:
    """The layer's data as a 2D/3D array; RGB(A) images are converted to grey with a notification."""
    data = np.asarray(layer.data)
    if isinstance(layer, Image) and layer.rgb:
        show_info(f"'{layer.name}' is RGB; it was converted to greyscale for {purpose}.")
        data = to_greyscale(data, rgb=True)
    return as_spatial_array(data, f"layer '{layer.name}'")


def layer_2d(layer: Layer) -> np.ndarray:
    """A layer's data as one 2D array for the VAE widgets: RGB becomes greyscale (with a notice); anything not 2D
    is refused."""
    data = np.asarray(layer.data)
    if isinstance(layer, Image) and layer.rgb:
        show_info(f"'{layer.name}' is RGB; it was converted to greyscale.")
        data = to_greyscale(data, rgb=True)
    if data.ndim != 2:
        raise InputError(f"'{layer.name}' is {data.ndim}D; the VAE works on 2D images. Pick a 2D layer or slice it.")
    return data


def ask_model_file(parent: QWidget) -> str:
    """A file dialog for a VAE model (the .safetensors or .json of a pair); empty if cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Load VAE model", "", "Model (*.safetensors *.json)")
    return path


def build_section(title: str, form: Any, widgets: list[QWidget]) -> QGroupBox:
    """A group box holding a magicgui form and the widgets (buttons, panels) below it."""
    box = QGroupBox(title)
    inner = QVBoxLayout(box)
    inner.addWidget(form.native)
    for widget in widgets:
        inner.addWidget(widget)
    return box


def build_dock(owner: QWidget, sections: list[tuple[str, Any, list[QWidget]]], tail: list[QWidget]) -> None:
    """Lay out a dock widget: one group box per ``(title, magicgui form, buttons)`` section, then the ``tail``
    widgets (progress, plots, reports), all in a scroll area so that tall docks stay usable."""
    content = QWidget()
    layout = QVBoxLayout(content)
    for title, form, buttons in sections:
        layout.addWidget(build_section(title, form, buttons))
    for widget in tail:
        layout.addWidget(widget)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(content)
    QVBoxLayout(owner).addWidget(scroll)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _guarded(func: Callable[..., Generator[Progress, None, Any]], kwargs: dict) -> Generator[Progress, None, Any]:
    """Run ``func(**kwargs)`` and turn an exception into a :class:`_Failure` result, so that a failed run
    ends in one notification instead of napari's traceback relay."""
    try:
        return (yield from func(**kwargs))
    except Exception as err:  # noqa: BLE001 - reported to the user by the caller
        return _Failure(err)


class ProgressRow(QWidget):
    """A progress bar with a Cancel button that runs one generator worker at a time."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.worker: GeneratorWorker | None = None
        self.cancel_event: threading.Event | None = None
        self.outcome = "done"

    def start(
        self,
        func: Callable[..., Generator[Progress, None, Any]],
        on_done: Callable[[Any], None],
        context: str,
        on_yield: Callable[[Any], None] | None = None,
        cancel_event: threading.Event | None = None,
        **kwargs: Any,
    ) -> GeneratorWorker:
        """Run generator ``func(**kwargs)`` in a thread; progress goes to the bar (and to ``on_yield``), the
        result to ``on_done``, errors to a notification. The user's layers are only touched in ``on_done``.
        With ``cancel_event``, Cancel sets the event (the generator then returns its best state) instead of
        abandoning the worker."""
        def finish(result: Any) -> None:
            if isinstance(result, _Failure):
                self.outcome = "failed"
                report_error(result.error, context)
            else:
                on_done(result)

        worker = create_worker(_guarded, func, kwargs, _start_thread=False,
                               _connect={"errored": lambda err: report_error(err, context)})
        worker.yielded.connect(self._on_progress)
        if on_yield is not None:
            worker.yielded.connect(on_yield)
        worker.returned.connect(finish)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.outcome = "done"
        self.cancel_event = cancel_event
        self.cancel_button.setEnabled(True)
        self.bar.setFormat(context)
        worker.start()
        return worker

    def _on_progress(self, p: Any) -> None:
        self.bar.setRange(0, max(1, p.total))
        self.bar.setValue(p.step)
        self.bar.setFormat(f"{p.message} (%v/%m)")

    def _on_finished(self) -> None:
        self.cancel_button.setEnabled(False)
        if self.cancel_event is None or not self.cancel_event.is_set():
            self.bar.setValue(self.bar.maximum() if self.outcome == "done" else 0)
            self.bar.setFormat(self.outcome)
        self.worker = None

    def cancel(self) -> None:
        """Stop the running worker at its next progress step: with a cancel event the run ends early and its
        best state is still written; without one nothing is written."""
        if self.worker is None:
            return
        if self.cancel_event is not None:
            self.cancel_event.set()
            self.bar.setFormat("cancelling: keeping the best state so far")
        else:
            self.worker.quit()
            self.bar.setFormat("cancelled")
