import json
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from napari_microfingerprint import InputError, characterize, make_two_phase
from napari_microfingerprint.core.ensemble import (
    MANIFEST,
    META,
    read_manifest,
    reconstruct_ensemble,
    reconstruct_ensemble_iter,
)

SETTINGS = {"max_iter": 30, "device": "cpu"}
SHAPE = (16, 16, 16)


@pytest.fixture(scope="module")
def source():
    return make_two_phase((32, 32), 0.4, 3.0, seed=1)


@pytest.fixture(scope="module")
def target(source):
    return characterize(source, limit_to=4)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def ensemble(target, client, tmp_path_factory):
    """Three 16^3 volumes on the two-worker cluster: the store and the manifest returned."""
    store = tmp_path_factory.mktemp("ensemble") / "store"
    return store, reconstruct_ensemble(target, SHAPE, n=3, client=client, store=store, **SETTINGS)


def _mtimes(store):
    return {p.name: p.stat().st_mtime_ns for p in store.iterdir()}


def test_writes_every_volume_and_a_manifest(ensemble):
    store, table = ensemble
    assert list(table["seed"]) == [0, 1, 2] and (table["status"] == "done").all()
    assert {"error_s2", "error_volume_fractions", "error_variation", "undecided", "evaluations", "seconds",
            "worker", "threads"} <= set(table.columns)
    assert (table["shape"] == "16x16x16").all() and (table["threads"] == 1).all()
    assert not table["worker"].eq("local").any()  # the rows come from dask workers
    assert (table["evaluations"] <= SETTINGS["max_iter"]).all() and table["error_s2"].notna().all()
    for row in table.itertuples():
        volume = np.load(store / row.file)
        assert volume.shape == SHAPE and set(np.unique(volume)) == {0, 1}
    pd.testing.assert_frame_equal(read_manifest(store), table, check_dtype=False)
    meta = json.loads((store / META).read_text())
    assert meta["shape"] == list(SHAPE) and meta["target"]["limit_to"] == 4
    assert meta["settings"]["max_iter"] == 30 and "seed" not in meta["settings"]


def test_a_rerun_skips_the_finished_volumes(ensemble, target, client):
    store, table = ensemble
    before = _mtimes(store)
    gen = reconstruct_ensemble_iter(target, SHAPE, n=3, client=client, store=store, **SETTINGS)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            again = stop.value
            break
    assert len(steps) == 1 and steps[0].step == steps[0].total == 3  # nothing submitted
    assert _mtimes(store) == before  # no volume and not the manifest rewritten
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


def test_a_store_of_another_ensemble_is_refused(ensemble, target, source):
    store, _ = ensemble
    with pytest.raises(InputError, match="shape 16x16x16.*new store"):
        reconstruct_ensemble(target, (16, 16, 20), n=3, client="serial", store=store, **SETTINGS)
    with pytest.raises(InputError, match="another descriptor target"):
        reconstruct_ensemble(characterize(1 - source, limit_to=4), SHAPE, n=3, client="serial", store=store,
                             **SETTINGS)
    with pytest.raises(InputError, match="other settings \\(max_iter\\)"):
        reconstruct_ensemble(target, SHAPE, n=3, client="serial", store=store, max_iter=31, device="cpu")


def test_serial_mode_gives_the_same_volumes(ensemble, target, tmp_path):
    store, _ = ensemble
    serial = reconstruct_ensemble(target, SHAPE, seeds=[2, 0], client="serial", store=tmp_path / "s", **SETTINGS)
    assert list(serial["seed"]) == [0, 2] and (serial["worker"] == "local").all()
    for seed in (0, 2):  # the reconstruction is seeded: the same labels whatever runs it (measured: exact)
        name = f"volume_{seed:05d}.npy"
        np.testing.assert_array_equal(np.load(tmp_path / "s" / name), np.load(store / name))


def test_a_failing_seed_is_recorded_and_retried(target, client, tmp_path):
    store = tmp_path / "store"
    (store / "volume_00001.npy").mkdir(parents=True)  # saving seed 1 cannot replace a folder
    table = reconstruct_ensemble(target, (24, 24), n=3, client=client, store=store, **SETTINGS)
    failed = table.set_index("seed").loc[1]
    assert failed["status"] == "failed" and failed["error"].startswith("IsADirectoryError")
    assert failed["file"] == "" and np.isnan(failed["error_s2"])
    assert list(table[table["status"] == "done"]["seed"]) == [0, 2]
    assert not list(store.glob(".*.tmp"))  # no temporary file left behind
    (store / "volume_00001.npy").rmdir()
    seconds = table.set_index("seed")["seconds"]
    retried = reconstruct_ensemble(target, (24, 24), n=3, client=client, store=store, **SETTINGS).set_index("seed")
    assert (retried["status"] == "done").all() and np.load(store / "volume_00001.npy").shape == (24, 24)
    assert retried.loc[[0, 2], "seconds"].tolist() == seconds.loc[[0, 2]].tolist()  # not run again


@pytest.mark.parametrize("where", ["serial", "cluster"])
def test_cancel_keeps_the_finished_volumes(target, client, tmp_path, where):
    cancel = threading.Event()
    store = tmp_path / "store"
    gen = reconstruct_ensemble_iter(target, (24, 24), n=6, client="serial" if where == "serial" else client,
                                    store=store, cancel=cancel, **SETTINGS)
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            table = stop.value
            break
        if progress.step >= 1:
            cancel.set()
    assert 1 <= len(table) < 6 and (table["status"] == "done").all()
    if where == "serial":
        assert len(table) == 1
    assert all((store / f).is_file() for f in table["file"])
    pd.testing.assert_frame_equal(read_manifest(store), table, check_dtype=False)


def test_an_interrupt_cancels_the_rest_and_is_raised(target, client, tmp_path):
    store = tmp_path / "store"
    gen = reconstruct_ensemble_iter(target, (24, 24), n=6, client=client, store=store, **SETTINGS)
    while next(gen).step < 1:
        pass
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    table = read_manifest(store)
    assert 1 <= len(table) < 6 and all((store / f).is_file() for f in table["file"])
    deadline = time.monotonic() + 10
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(client.processing().values())  # nothing left running on the cluster
    assert len(list(store.glob("volume_*.npy"))) < 6  # the pending tasks never ran


def test_the_physics_check_is_optional(target, source, tmp_path):
    table = reconstruct_ensemble(target, (24, 24), n=1, client="serial", store=tmp_path / "a", check=True,
                                 reference=source, **SETTINGS)
    assert table.loc[0, "outside_2sd"] >= 0 and "outside 2 sd" in table.loc[0, "check"]
    table = reconstruct_ensemble(target, (24, 24), n=1, client="serial", store=tmp_path / "b", check=True,
                                 **SETTINGS)
    assert np.isnan(table.loc[0, "outside_2sd"]) and "percolates" in table.loc[0, "check"]
    assert "check" not in reconstruct_ensemble(target, (24, 24), n=1, client="serial", store=tmp_path / "c",
                                               **SETTINGS).columns


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n must be"),
    ({}, "give the number of volumes"),
    ({"seeds": [1, 2, 1]}, "more than once"),
    ({"seeds": [-1]}, "at least 0"),
    ({"n": 2, "seeds": [0, 1, 2]}, "disagrees"),
    ({"n": 2, "shape": (16,)}, "shape=.* it must have 2 or 3"),
    ({"n": 2, "shape": (8, 8, 8)}, "limit_to=4 does not fit"),
    ({"n": 2, "optimizer": "sgd"}, "optimizer=.sgd. is unknown"),
    ({"n": 2, "max_iters": 3}, "unknown reconstruction setting"),
    ({"n": 2, "seed": 3}, "use seeds or n"),
    ({"n": 2, "threads": 2}, "threads_per_worker"),
    ({"n": 2, "threads_per_worker": 0}, "threads_per_worker must be"),
    ({"n": 2, "weights": {"s3": 1.0}}, "holds no"),
    ({"n": 2, "reference": np.zeros((32, 32), int)}, "check=True"),
])
def test_bad_input_fails_before_anything_runs(target, tmp_path, kwargs, message):
    kwargs = {"shape": (24, 24), **kwargs}
    with pytest.raises(InputError, match=message):
        reconstruct_ensemble(target, client="serial", store=tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_a_local_cluster_of_processes_is_started_and_closed(target, tmp_path):
    """... and leaves this process's environment as it was: the dask nanny writes its workers' thread limits
    (OMP_NUM_THREADS=1, ...) into the parent's os.environ, where every later subprocess would inherit them."""
    before = dict(os.environ)
    table = reconstruct_ensemble(target, (24, 24), n=2, store=tmp_path / "p", **SETTINGS)
    assert (table["status"] == "done").all() and table["worker"].str.startswith("tcp://").all()
    assert (tmp_path / "p" / MANIFEST).is_file()
    assert dict(os.environ) == before


def test_keep_freed_memory_undoes_the_dask_worker_malloc_setting(tmp_path):
    """Dask workers run with MALLOC_TRIM_THRESHOLD_=65536, which freezes glibc's mmap threshold at 128 KB; the
    allocator setting of the tasks must lift it: a freed 1 MB block is then reused, not unmapped and mapped again
    (counted as minor page faults of a fresh allocation loop)."""
    import subprocess
    import sys

    code = """
import resource, sys
import numpy as np
from napari_microfingerprint.core.memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
for _ in range(200):
    a = np.ones(1 << 17)  # 1 MB
    del a
print(faults() - before)
"""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    counts = {}
    for mode in ("plain", "tuned"):
        run = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        counts[mode] = int(run.stdout.strip().splitlines()[-1])
    # 200 x 256 pages faulted in again without the setting; a handful once the block is reused
    assert counts["plain"] > 20_000 and counts["tuned"] < counts["plain"] / 20


def test_batched_tasks_write_one_volume_per_seed(tmp_path):
    target = characterize(make_two_phase((32, 32), 0.4, 2.0, seed=0), limit_to=4)
    table = reconstruct_ensemble(target, (16, 16, 16), n=3, client="serial", store=tmp_path / "b", batch=2,
                                 max_iter=30, device="cpu")
    assert sorted(table["seed"]) == [0, 1, 2] and (table["status"] == "done").all()
    vols = [np.load(tmp_path / "b" / f"volume_{k:05d}.npy") for k in range(3)]
    assert all(v.shape == (16, 16, 16) and set(np.unique(v)) == {0, 1} for v in vols)
    assert (vols[0] != vols[1]).mean() > 0.2
    with pytest.raises(InputError, match="batch"):
        reconstruct_ensemble(target, (16, 16, 16), n=2, client="serial", store=tmp_path / "c", batch=0)


def test_auto_batch_fills_half_the_free_gpu_memory():
    from napari_microfingerprint.core.ensemble import MAX_AUTO_BATCH, auto_batch

    gb = 2**30
    assert auto_batch(gb, None, 50) == 1  # no GPU: one seed per optimisation
    assert auto_batch(10 * gb, 80 * gb, 50) == 4  # 40 GB of 80 GB free
    assert auto_batch(gb, 80 * gb, 50) == MAX_AUTO_BATCH
    assert auto_batch(gb, 80 * gb, 3) == 3  # never more than the seeds left
    assert auto_batch(100 * gb, 80 * gb, 50) == 1  # too large for a batch: one at a time


def test_the_manifest_returned_holds_the_seeds_asked_for(tmp_path):
    target = characterize(make_two_phase((32, 32), 0.4, 2.0, seed=0), limit_to=4)
    run = {"client": "serial", "store": tmp_path / "s", "max_iter": 20, "device": "cpu"}
    assert len(reconstruct_ensemble(target, (16, 16), n=3, **run)) == 3
    again = reconstruct_ensemble(target, (16, 16), seeds=[1], **run)
    assert list(again["seed"]) == [1]  # the store keeps all three
    assert len(pd.read_csv(tmp_path / "s" / "manifest.csv")) == 3
