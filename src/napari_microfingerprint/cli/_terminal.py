"""Progress and messages of the command line, on stderr: a bar on a terminal, plain lines in a log file."""
from __future__ import annotations

import sys
import time
from collections.abc import Generator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

#: In a log (stderr not a terminal), a progress line at most this often, in seconds, besides the first and last.
LOG_EVERY = 10.0
BAR_WIDTH = 30


class Reporter:
    """Writes progress of ``(step, total, message)`` records to ``stream``; ``quiet`` silences progress only."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._bar_open = False

    def info(self, text: str) -> None:
        """A line that is always written (results, where files went)."""
        self._close_bar()
        print(text, file=self.stream, flush=True)

    def progress(self, step: int, total: int, message: str = "") -> None:
        if self.quiet:
            return
        share = min(1.0, step / total) if total else 0.0
        if self.tty:
            filled = int(round(share * BAR_WIDTH))
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {share:4.0%} {step}/{total} {message[:60]:<60}")
            self.stream.flush()
            self._bar_open = True
            return
        now = time.monotonic()
        if step in (0, 1) or step >= total or now - self._last >= LOG_EVERY:
            self._last = now
            print(f"{time.strftime('%H:%M:%S')} {step}/{total} ({share:.0%}) {message}", file=self.stream, flush=True)

    def _close_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False

    def run(self, gen: Generator[Any, None, T]) -> T:
        """Exhaust a core progress generator (records with ``step``, ``total`` and ``message``), showing each."""
        try:
            while True:
                rec = next(gen)
                self.progress(int(rec.step), int(rec.total), str(rec.message))
        except StopIteration as stop:
            self._close_bar()
            return stop.value
        finally:
            gen.close()
