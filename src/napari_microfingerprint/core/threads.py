"""How many CPU threads torch may use while other work shares the machine.

Measured on this project's 2-core machine (BENCHMARKS.md, "Thread sharing"): torch's OpenMP threads wait for
each other by spinning, so a 2-thread run that shares a core with another process is 2.7-3.2x slower than on a
quiet machine and burns twice the CPU time, while a 1-thread run under the same load loses almost nothing. A
single thread is, however, 1.3x slower than two on a quiet machine at 64^3. :class:`ThreadGovernor` therefore
watches, while a run goes on, how much CPU the rest of the machine (other processes, and napari's GUI thread
when the run is in a worker) uses, and gives torch the cores that are left, between 1 and ``max_threads``.

A second cause of the same slowdown sits inside the process. Each thread that runs torch work has its own OpenMP
thread pool, and the main thread's stays for good once it has run any parallel torch operation (napari's console,
a model loaded or a fixture trained there). While it exists, a worker thread's pool makes more OpenMP threads than
cores, and libgomp then cuts their spinning short: they sleep and wake at every parallel region, like
``OMP_WAIT_POLICY=PASSIVE``. Measured here (BENCHMARKS.md, "Two OpenMP pools"): a 64^3 reconstruction in a worker
thread took 21.0 s with two threads against 13.6 s in the main thread and 19.5 s with one thread in the worker;
256^2 Potts grain growth took 3.1 s against 1.0 s and 1.2 s. A governor started outside the main thread therefore
first times one small operation with two threads and with one (:func:`parallel_pays`, 10-30 ms) and keeps to one
thread when two are much slower.
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


#: Elements of the probe of :func:`parallel_pays`: above torch's grain size (32768), so that it runs in parallel.
PROBE_ELEMENTS = 1 << 16
#: Operations per timing of the probe, and timings of which the fastest counts.
PROBE_REPEATS = (40, 3)
#: More threads do not pay when their probe takes this many times one thread's: 0.75-0.87 alone and 2.4-11 beside
#: the main thread's pool; a bound at 1 let noise of a busy moment keep a quiet worker to one thread.
PROBE_SLOWER = 1.5


def parallel_pays(threads: int) -> bool:
    """Whether ``threads`` torch threads are worth using from the calling thread: their time for a small parallel
    operation (a multiply of :data:`PROBE_ELEMENTS` numbers, the fastest of :data:`PROBE_REPEATS`) against one
    thread's. Measured here (BENCHMARKS.md, "Two OpenMP pools"): 0.75-0.87 times one thread's time alone, 2.4-11
    times it from a worker thread while the main thread's pool exists; they pay unless :data:`PROBE_SLOWER` times
    slower. Torch's thread count is restored."""
    if threads <= 1:
        return False
    before = torch.get_num_threads()
    data = torch.ones(PROBE_ELEMENTS)
    out = torch.empty_like(data)
    repeats, timings = PROBE_REPEATS
    seconds = {}
    try:
        for n in (threads, 1):
            torch.set_num_threads(n)
            best = float("inf")
            for _ in range(timings):
                start = time.perf_counter()
                for _ in range(repeats):
                    torch.mul(data, 1.0001, out=out)
                best = min(best, time.perf_counter() - start)
            seconds[n] = best
    finally:
        torch.set_num_threads(before)
    return seconds[threads] < PROBE_SLOWER * seconds[1]


#: The governors running now in this process (torch's thread count is one setting for the whole process), and
#: the thread count from before the first of them, restored when the last one ends.
_ACTIVE: list[ThreadGovernor] = []
_LOCK = threading.Lock()
_BEFORE: list[int] = []


class ThreadGovernor:
    """Sets ``torch.set_num_threads`` to the cores other work leaves free, re-checked every :data:`INTERVAL`
    seconds by :meth:`tick` (call it once per optimisation step; it is cheap in between). Several governed runs
    in one process (a reconstruction and a training in napari) share the cores equally.

    Started outside the main thread, it first checks with :func:`parallel_pays` that more than one thread helps
    there (it does not while the main thread has its own OpenMP pool: module docstring), and otherwise keeps to one
    thread (``contended``). ``threads`` fixes the count instead (no watching, no check). Used as a context
    manager; when the last governor of the process ends, torch's thread count from before the first one is
    restored. Where ``/proc/stat`` does not exist (macOS, Windows) it keeps ``max_threads``.
    """

    def __init__(self, threads: int | None = None, max_threads: int | None = None, interval: float = INTERVAL):
        self.max_threads = max(1, min(max_threads or cpu_count(), cpu_count()))
        self.fixed = None if threads is None else max(1, int(threads))
        self.interval = interval
        self.history: list[int] = []
        self._gui_thread = None
        self.contended = False
        if threading.current_thread() is not threading.main_thread():
            self._gui_thread = threading.main_thread().native_id  # napari's event loop runs there
            if self.fixed is None and self.max_threads > 1 and not parallel_pays(self.max_threads):
                self.contended, self.max_threads = True, 1
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
