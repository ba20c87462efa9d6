"""Helpers shared by the dock widgets: layer choice, workers with progress and cancel, error notifications."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, Qt
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
    widgets (progress, plots, reports), all in a scroll area so that tall docks stay usable. When napari removes
    the dock, the runs of its :class:`ProgressRow` s are cancelled and joined."""
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
    owner.installEventFilter(_DockWatch(owner))


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


def _drive(gen: Generator[Progress, None, Any]) -> Generator[Progress, None, Any]:
    """The worker's generator function: runs ``gen``, which :class:`_Job` keeps so that it can close it."""
    return (yield from gen)


#: Seconds that closing the viewer or the dock waits for a cancelled run's thread to stop (runs stop at their
#: next progress step; a step that takes longer goes on in the background, its results dropped).
STOP_TIMEOUT_S = 30.0


class _Job:
    """One run's worker and cancel event; plain Python, so that it can be stopped while its widgets are being
    closed. Once stopped (``live`` False), whatever its worker still sends is dropped."""

    def __init__(self, worker: GeneratorWorker, context: str, cancel_event: threading.Event | None,
                 generator: Generator[Progress, None, Any]) -> None:
        self.worker = worker
        self.generator = generator
        self.context = context
        self.cancel_event = cancel_event
        self.live = True
        self.cancel_requested = False

    def guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback``, called only while the run is live."""
        def call(*args: Any) -> None:
            if self.live:
                callback(*args)
        return call

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self.cancel_event is not None:
            self.cancel_event.set()
        else:
            self.worker.quit()

    def stop(self, timeout: float) -> bool:
        """Cancel for good and wait up to ``timeout`` s for the worker's thread; True when it has stopped."""
        self.live = False
        deadline = time.monotonic() + timeout
        if self.cancel_event is not None:
            # the run ends itself at its next step and leaves its context managers (the thread governor) as
            # they were; quitting the worker would abandon its generator in the middle of them
            self.cancel_event.set()
            half = time.monotonic() + timeout / 2
            while self.worker.is_running and time.monotonic() < half:
                time.sleep(0.01)
        self.worker.quit()
        while self.worker.is_running and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.worker.is_running:
            return False
        self.close_generator()
        return True

    def close_generator(self) -> None:
        """Close the run's generator once its thread is done: a run that was quit mid-way (by Cancel or by
        napari closing) then leaves its ``with`` blocks at once, e.g. hands its cores back to the thread
        governor, instead of whenever the generator happens to be garbage-collected."""
        if not self.worker.is_running:
            self.generator.close()


class ProgressRow(QWidget):
    """A progress bar with a Cancel button that runs one generator worker at a time. Closing the window that
    holds it (napari's, when docked) cancels the run and waits for its thread (:meth:`shutdown`);
    :func:`build_dock` does the same when napari removes the dock, and so does deleting the row."""

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
        self.job: _Job | None = None
        self.outcome = "done"
        self.destroyed.connect(lambda: self.shutdown())  # a last resort: whatever deletes the widgets

    @property
    def worker(self) -> GeneratorWorker | None:
        """The running worker, or None."""
        return None if self.job is None else self.job.worker

    def busy(self) -> bool:
        """True, with a notification, while a run is going: a widget runs one thing at a time."""
        if self.job is None:
            return False
        show_info(f"{self.job.context} is still running; wait for it to end or press Cancel before starting "
                  "another run.")
        return True

    def start(
        self,
        func: Callable[..., Generator[Progress, None, Any]],
        on_done: Callable[[Any], None],
        context: str,
        on_yield: Callable[[Any], None] | None = None,
        cancel_event: threading.Event | None = None,
        **kwargs: Any,
    ) -> GeneratorWorker | None:
        """Run generator ``func(**kwargs)`` in a thread; progress goes to the bar (and to ``on_yield``), the
        result to ``on_done``, errors to a notification. The user's layers are only touched in ``on_done``.
        With ``cancel_event``, Cancel sets the event (the generator then returns its best state) instead of
        abandoning the worker. While another run is going, nothing starts (see :meth:`busy`)."""
        if self.busy():
            return None

        generator = _guarded(func, kwargs)
        worker = create_worker(_drive, generator, _start_thread=False)
        job = _Job(worker, context, cancel_event, generator)

        def finish(result: Any) -> None:
            if isinstance(result, _Failure):
                self.outcome = "failed"
                report_error(result.error, context)
            elif cancel_event is not None or not job.cancel_requested:  # a result that beat Cancel is dropped
                on_done(result)

        worker.errored.connect(job.guard(lambda err: report_error(err, context)))
        worker.yielded.connect(job.guard(self._on_progress))
        if on_yield is not None:
            worker.yielded.connect(job.guard(on_yield))
        worker.returned.connect(job.guard(finish))
        worker.finished.connect(job.guard(self._on_finished))
        worker.finished.connect(job.close_generator)
        self.job = job
        self.outcome = "done"
        self.cancel_button.setEnabled(True)
        self.bar.setFormat(context)
        _WindowWatch.install(self)
        worker.start()
        return worker

    def _on_progress(self, p: Any) -> None:
        self.bar.setRange(0, max(1, p.total))
        self.bar.setValue(p.step)
        self.bar.setFormat(f"{p.message} (%v/%m)")

    def _on_finished(self) -> None:
        job, self.job = self.job, None
        self.cancel_button.setEnabled(False)
        if job.cancel_requested:
            self.bar.setFormat("cancelled")
            if job.cancel_event is None:
                show_info(f"{job.context} was cancelled; nothing was written.")
            return
        self.bar.setValue(self.bar.maximum() if self.outcome == "done" else 0)
        self.bar.setFormat(self.outcome)

    def cancel(self) -> None:
        """Stop the running worker at its next progress step: with a cancel event the run ends early and its
        best state is still written; without one nothing is written."""
        if self.job is None:
            return
        self.job.request_cancel()
        self.bar.setFormat("cancelling: keeping the best state so far" if self.job.cancel_event is not None
                           else "cancelling")

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Cancel the run for good (nothing more of it reaches the widgets or the viewer) and wait up to
        ``timeout`` s for its thread to stop; True when no thread is left running. Called when the viewer
        window closes or the dock is removed; touches no Qt widget."""
        job, self.job = self.job, None
        return True if job is None else job.stop(timeout)


def _shutdown_rows(widget: QObject) -> None:
    """Stop the runs of every :class:`ProgressRow` inside ``widget``."""
    for row in widget.findChildren(ProgressRow):
        row.shutdown()


class _WindowWatch(QObject):
    """Event filter on the window that holds running :class:`ProgressRow` s (napari's main window when docked):
    a close that the window accepts (napari may ask the user first) stops their runs before the window goes."""

    @classmethod
    def install(cls, row: ProgressRow) -> None:
        """Watch the outermost ancestor of ``row`` (the QObject parents, so that a floating dock still leads to
        napari's window), once per window."""
        root: QObject = row
        while root.parent() is not None:
            root = root.parent()
        if root.findChild(cls, options=Qt.FindChildOption.FindDirectChildrenOnly) is None:
            root.installEventFilter(cls(root))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Close:
            return False
        obj.event(event)  # the window handles its close here (napari may ask the user), and only here
        if event.isAccepted():
            _shutdown_rows(obj)
        return True


class _DockWatch(QObject):
    """Event filter on a dock widget: when napari removes the dock (the widget loses its parent), the runs of
    its :class:`ProgressRow` are stopped."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            _shutdown_rows(obj)
        return False
