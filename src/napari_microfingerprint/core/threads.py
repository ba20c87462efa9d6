"""How many CPU threads torch may use while other work shares the machine.

Measured on this project's 2-core machine (BENCHMARKS.md, "Thread sharing"): torch's OpenMP threads wait for
each other by spinning, so a 2-thread run that shares a core with another process is 2.7-3.2x slower than on a
quiet machine and burns twice the CPU time, while a 1-thread run under the same load loses almost nothing. A
single thread is, however, 1.3x slower than two on a quiet machine at 64^3. :class:`ThreadGovernor` therefore
watches, while a run goes on, how much CPU the rest of the machine (other processes, and napari's GUI thread
when the run is in a worker) uses, and gives torch the cores that are left, between 1 and ``max_threads``.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Generator
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
Y = TypeVar("Y")
R = TypeVar("R")

#: Seconds between two looks at the machine's load.
INTERVAL = 1.0
#: A core counts as free when the others leave at least this share of it (so background noise of a few tenths
#: of a core keeps every thread, and one busy core takes one away).
FREE_SHARE = 0.5


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, which batch schedulers set), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None


def _busy_seconds() -> float | None:
    """CPU seconds the cores this process may use (its affinity mask: on a shared cluster node, the job's cores,
    not the whole machine) have spent busy since boot (``/proc/stat``), or None where it cannot be read."""
    allowed = _allowed_cpus()
    if allowed is None:
        return None
    busy = 0.0
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                name, *values = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in allowed:
                    continue
                fields = [float(v) for v in values]
                busy += sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)  # minus idle, iowait
    except (OSError, ValueError):
        return None
    return busy / os.sysconf("SC_CLK_TCK")


def _thread_seconds(native_id: int) -> float:
    """CPU seconds of one thread of this process (``/proc/self/task/<id>/stat``), 0 where it cannot be read."""
    try:
        with open(f"/proc/self/task/{native_id}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The governors running now in this process (torch's thread count is one setting for the whole process), and
#: the thread count from before the first of them, restored when the last one ends.
_ACTIVE: list[ThreadGovernor] = []
_LOCK = threading.Lock()
_BEFORE: list[int] = []


class ThreadGovernor:
    """Sets ``torch.set_num_threads`` to the cores other work leaves free, re-checked every :data:`INTERVAL`
    seconds by :meth:`tick` (call it once per optimisation step; it is cheap in between). Several governed runs
    in one process (a reconstruction and a training in napari) share the cores equally.

    ``threads`` fixes the count instead (no watching). Used as a context manager; when the last governor of the
    process ends, torch's thread count from before the first one is restored. Where ``/proc/stat`` does not
    exist (macOS, Windows) it keeps ``max_threads``.
    """

    def __init__(self, threads: int | None = None, max_threads: int | None = None, interval: float = INTERVAL):
        self.max_threads = max(1, min(max_threads or cpu_count(), cpu_count()))
        self.fixed = None if threads is None else max(1, int(threads))
        self.interval = interval
        self.history: list[int] = []
        self._gui_thread = None
        if threading.current_thread() is not threading.main_thread():
            self._gui_thread = threading.main_thread().native_id  # napari's event loop runs there
        self._mark = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        own = time.process_time() - (_thread_seconds(self._gui_thread) if self._gui_thread else 0.0)
        return time.perf_counter(), _busy_seconds(), own

    def __enter__(self) -> ThreadGovernor:
        with _LOCK:
            if not _ACTIVE:
                _BEFORE[:] = [torch.get_num_threads()]
            _ACTIVE.append(self)
        self._set(self.fixed or self._share())
        return self

    def __exit__(self, *exc) -> None:
        with _LOCK:
            _ACTIVE.remove(self)
            if not _ACTIVE:
                torch.set_num_threads(_BEFORE[0])

    def _share(self) -> int:
        """This run's part of ``max_threads`` when other governed runs share the process."""
        return max(1, self.max_threads // max(1, len(_ACTIVE)))

    def _set(self, n: int) -> None:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        self.history.append(n)

    def others(self) -> float | None:
        """Cores' worth of CPU used by everything but this run since the last look (None: unknown)."""
        now, busy, own = self._sample()
        wall0, busy0, own0 = self._mark
        self._mark = (now, busy, own)
        if busy is None or busy0 is None or now - wall0 <= 0:
            return None
        return max(0.0, ((busy - busy0) - (own - own0)) / (now - wall0))

    def tick(self) -> None:
        """Re-decide the thread count when :data:`INTERVAL` seconds have passed since the last decision."""
        if self.fixed is not None or self.max_threads == 1:
            return
        if time.perf_counter() - self._mark[0] < self.interval:
            return
        others = self.others()
        if others is None:
            return
        free = cpu_count() - others
        self._set(int(min(self._share(), max(1, int(free + (1 - FREE_SHARE))))))


def governed(func: Callable[P, Generator[Y, None, R]]) -> Callable[P, Generator[Y, None, R]]:
    """Decorator for the core's progress generators: the generator runs under a :class:`ThreadGovernor`
    (created when it starts, in the thread that runs it), which re-decides torch's thread count at each yield."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Y, None, R]:
        with ThreadGovernor() as governor:
            gen = func(*args, **kwargs)
            try:
                while True:
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    governor.tick()
                    yield item
            finally:
                gen.close()

    return wrapper
