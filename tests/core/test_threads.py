"""The thread governor: fixed counts, restoring torch's setting, and its measure of other work on the CPU."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import time

import pytest
import torch

from napari_microfingerprint.core import threads
from napari_microfingerprint.core.threads import ThreadGovernor, governed


def test_fixed_count_is_set_and_restored():
    before = torch.get_num_threads()
    with ThreadGovernor(1) as gov:
        assert torch.get_num_threads() == 1
        gov.tick()
        assert torch.get_num_threads() == 1 and gov.history == [1]
    assert torch.get_num_threads() == before


def test_decision_gives_torch_the_cores_others_leave(monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    with ThreadGovernor(interval=0.0) as gov:
        assert gov.history == [4]
        for others, want in ((0.1, 4), (0.4, 4), (1.0, 3), (1.7, 2), (2.9, 1), (6.0, 1), (0.0, 4)):
            monkeypatch.setattr(gov, "others", lambda o=others: o)
            gov.tick()
            assert gov.history[-1] == want, (others, gov.history)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_others_measures_a_busy_process():
    """A separate process that keeps one core busy is seen as about one core of other work, while this process's
    own CPU time (a busy loop in this thread) is not counted."""
    gov = ThreadGovernor(interval=0.0)
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:  # our own work: must not count as others
        pass
    quiet = gov.others()
    loop = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    burner = subprocess.Popen([sys.executable, "-c", loop])
    try:
        time.sleep(0.5)
        gov.others()  # restart the interval with the burner running
        time.sleep(1.5)
        busy = gov.others()
    finally:
        burner.kill()
    assert busy is not None and quiet is not None
    assert busy > 0.7 and busy > quiet + 0.5, (quiet, busy)


def test_governed_generator_keeps_its_items_and_value():
    before = torch.get_num_threads()

    @governed
    def work(n: int):
        for k in range(n):
            yield k
        return "done"

    gen = work(3)
    items = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            value = stop.value
            break
    assert items == [0, 1, 2] and value == "done"
    assert torch.get_num_threads() == before


def test_two_governed_runs_in_one_process_share_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    before = torch.get_num_threads()
    with ThreadGovernor(interval=0.0) as first:
        monkeypatch.setattr(first, "others", lambda: 0.0)
        first.tick()
        assert first.history[-1] == 4
        with ThreadGovernor(interval=0.0) as second:
            monkeypatch.setattr(second, "others", lambda: 0.0)
            second.tick()
            first.tick()
            assert second.history[-1] == 2 and first.history[-1] == 2
        first.tick()
        assert first.history[-1] == 4  # alone again
        assert torch.get_num_threads() == 4  # the second's end does not restore while the first runs
    assert torch.get_num_threads() == before


_WORKER_AFTER_MAIN = """
import threading
import torch
from napari_microfingerprint.core.threads import ThreadGovernor
torch.rand(512, 512).sum()  # the main thread's OpenMP pool now exists, as in napari after any torch work there
seen = []
def run():
    with ThreadGovernor() as gov:
        seen.append((gov.contended, gov.max_threads, torch.get_num_threads()))
worker = threading.Thread(target=run)
worker.start()
worker.join()
with ThreadGovernor() as gov:
    seen.append((gov.contended, gov.max_threads))
print(seen)
"""


@pytest.mark.skipif(threads.cpu_count() < 2, reason="needs two cores to have two threads to lose")
def test_a_worker_beside_the_main_threads_pool_keeps_to_one_thread():
    """With the main thread's OpenMP pool in place, two threads in a worker are 2.4-11x slower than one on the probe
    (BENCHMARKS.md, "Two OpenMP pools"), so a governor started in a worker keeps to one thread; in the main thread
    nothing is probed. A fresh process, so that this test's own torch work does not decide, without thread limits
    from the environment (OMP_NUM_THREADS=1: the main thread would then make no pool)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _WORKER_AFTER_MAIN], capture_output=True, text=True, check=True,
                         timeout=120, env=env).stdout
    worker, main = ast.literal_eval(out.strip().splitlines()[-1])
    assert worker == (True, 1, 1)
    assert main == (False, threads.cpu_count())
    assert not threads.parallel_pays(1)
