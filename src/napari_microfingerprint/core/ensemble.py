"""Ensembles of statistically equivalent volumes (SVEs) from one descriptor target, run on dask.distributed
(paper 004's workflows: dozens to hundreds of reconstructions with different seeds, on a laptop or a cluster).

Every seed (or every ``batch`` of seeds, optimised together by :func:`~.reconstruction.reconstruct_batch_iter`)
is one task: a module-level function (:func:`reconstruct_volumes`) reconstructs the volumes with
``threads_per_worker`` torch threads, saves each atomically as ``<store>/volume_<seed:05d>.npy`` and returns
their manifest rows. The client collects the rows as the tasks finish and rewrites ``<store>/manifest.csv`` (atomically)
after each one, so a crash or a cancel loses only the volumes that were still running. ``<store>/ensemble.json``
records the target, the shape and the settings; a rerun with the same store skips the seeds already done and
retries the failed ones, and refuses a different target, shape or setting rather than mixing two ensembles.

Tasks write into ``store`` themselves, so on a cluster the store must lie on a file system every worker sees.
A ``LocalCluster`` of processes (``client=None``) starts worker processes by spawning: a script that calls
:func:`reconstruct_ensemble` must do so under ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .descriptors.sets import DescriptorSet, check_target, phase_map
from .device import resolve_device
from .memory import available_bytes, keep_freed_memory
from .progress import Progress, run_to_end
from .reconstruction import (
    ReconstructionSettings,
    _weights,
    check_output_shape,
    memory_per_structure,
    reconstruct_batch_iter,
    reconstruct_iter,
    tortuosity_targets,
)
from .threads import cpu_count
from .validation import InputError

if TYPE_CHECKING:
    from distributed import Client

MANIFEST = "manifest.csv"
META = "ensemble.json"
FORMAT = "napari-microfingerprint ensemble"
#: Settings that do not change the statistics of a volume: a resumed ensemble may differ in these.
RUNTIME_SETTINGS = ("device", "threads", "preview_every")
#: Columns before the per-descriptor errors, and after them.
HEAD_COLUMNS = ("seed", "shape", "status", "error", "file")
TAIL_COLUMNS = ("undecided", "evaluations", "seconds", "worker", "threads", "batch")
CHECK_COLUMNS = ("outside_2sd", "check")
TEXT_COLUMNS = ("shape", "status", "error", "file", "worker", "check")
#: Seconds between two looks at the cancel flag while waiting for tasks (client) or optimising (worker).
POLL = 0.1
WORKER_POLL = 0.5


# ---------------------------------------------------------------------------------------------------- validation

#: Most volumes one call makes (its seeds are listed in memory and its manifest grows by one row each).
MAX_VOLUMES = 1_000_000


def _check_client(client) -> None:
    """:class:`InputError` unless ``client`` is None, ``"serial"``, a scheduler address or a dask Client (checked
    before anything runs, also when every volume is already in the store)."""
    if client is None or isinstance(client, str):
        return
    from distributed import Client

    if not isinstance(client, Client):
        raise InputError(f"client must be a distributed.Client, a scheduler address, 'serial' or None; "
                         f"got {type(client).__name__}.")


def _check_seeds(n: int | None, seeds: Sequence[int] | None) -> list[int]:
    """The seeds to run: ``seeds`` as given, or ``range(n)``; :class:`InputError` when neither or a bad one."""
    if seeds is None:
        if n is None:
            raise InputError("give the number of volumes n (seeds 0..n-1) or an explicit list of seeds.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_VOLUMES:
            raise InputError(f"n must be a whole number from 1 to {MAX_VOLUMES}, got {n!r}; split larger ensembles "
                             "into several stores.")
        return list(range(int(n)))
    out = list(seeds)
    if not out:
        raise InputError("seeds is empty; give at least one seed, or n instead.")
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise InputError(f"seeds must be whole numbers of at least 0; {bad[:5]} are not.")
    out = [int(s) for s in out]
    dupes = sorted({s for s in out if out.count(s) > 1})
    if dupes:
        raise InputError(f"seeds {dupes[:10]} appear more than once; each seed gives one volume, list it once.")
    if n is not None and n != len(out):
        raise InputError(f"n={n} disagrees with the {len(out)} seeds given; give one of the two.")
    return out


def _check_settings(target: DescriptorSet, shape: tuple[int, ...], threads_per_worker: int | None,
                    settings: dict[str, Any]) -> ReconstructionSettings:
    """Build the :class:`ReconstructionSettings` once, so that a bad setting fails before any task starts."""
    if threads_per_worker is not None and (isinstance(threads_per_worker, bool)
                                           or not isinstance(threads_per_worker, (int, np.integer))
                                           or threads_per_worker < 1):
        raise InputError(f"threads_per_worker must be a whole number of at least 1 (torch threads per task), got "
                         f"{threads_per_worker!r}.")
    for key, use in (("seed", "seeds or n"), ("threads", "threads_per_worker")):
        if key in settings:
            raise InputError(f"the setting {key!r} is chosen per volume by the ensemble; use {use} instead.")
    try:
        s = ReconstructionSettings(**settings, threads=None if threads_per_worker is None else int(threads_per_worker))
    except TypeError as err:
        raise InputError(f"unknown reconstruction setting ({err}); the settings are the fields of "
                         "ReconstructionSettings.") from err
    _weights(target, s.weights)
    tortuosity_targets(s.tortuosity, len(shape))
    return s


def _check_reference(reference, shape: tuple[int, ...], check: bool) -> np.ndarray | None:
    """The reference phase map of the physics check, validated against the output shape."""
    if reference is None:
        return None
    if not check:
        raise InputError("a reference is only used by the physics check; pass check=True or leave reference out.")
    from .morphometry import WINDOW_SHARE, _check_window

    ref, _ = phase_map(reference, "reference")
    if ref.ndim > len(shape):
        raise InputError(f"the reference is {ref.ndim}D but the volumes are {len(shape)}D; give a 2D reference.")
    if ref.ndim == len(shape):
        window = tuple(min(a, int(WINDOW_SHARE * b)) for a, b in zip(shape, ref.shape))
    else:
        side = min(min(shape), int(WINDOW_SHARE * min(ref.shape)))
        window = (side, side)
    _check_window(window, ref.shape)
    return ref


def _target_digest(target: DescriptorSet) -> str:
    """A SHA-256 of the target's descriptor values (every axis, name and multigrid level)."""
    h = hashlib.sha256()
    for level, ds in [(0, target), *sorted(target.coarse.items())]:
        for axis in sorted(ds.values):
            for name in sorted(ds.values[axis]):
                h.update(f"{level}/{axis}/{name}".encode())
                h.update(np.ascontiguousarray(ds.values[axis][name], dtype=np.float64).tobytes())
    return h.hexdigest()


def _metadata(target: DescriptorSet, shape: tuple[int, ...], s: ReconstructionSettings) -> dict:
    """The content of ``ensemble.json``."""
    settings = {k: v for k, v in asdict(s).items() if k != "seed"}
    meta = {
        "format": FORMAT,
        "version": 1,
        "shape": list(shape),
        "target": {"n_phases": target.n_phases, "limit_to": target.limit_to, "names": target.names,
                   "axes": target.axes, "params": target.params, "source_shape": list(target.source_shape),
                   "levels": sorted(target.coarse), "sha256": _target_digest(target)},
        "settings": settings,
    }
    return json.loads(json.dumps(meta, default=str))  # as it reads back from the file: lists, string keys


def _compare_metadata(old: dict, new: dict, store: Path) -> None:
    """:class:`InputError` when the store's ensemble differs from the one asked for."""
    hint = f"choose a new store (folder) for this ensemble, or delete {store}"
    if old.get("format") != FORMAT:
        raise InputError(f"{store / META} is not a napari-microfingerprint ensemble file; {hint}.")
    if old.get("shape") != new["shape"]:
        raise InputError(f"the store {store} holds volumes of shape {'x'.join(map(str, old.get('shape', [])))}, "
                         f"not {'x'.join(map(str, new['shape']))}; {hint}.")
    if old.get("target") != new["target"]:
        raise InputError(f"the store {store} holds volumes of another descriptor target; {hint}.")
    keys = set(old.get("settings", {})) | set(new["settings"])
    differ = sorted(k for k in keys - set(RUNTIME_SETTINGS)
                    if old.get("settings", {}).get(k) != new["settings"].get(k))
    if differ:
        raise InputError(f"the store {store} was made with other settings ({', '.join(differ)}); use the same "
                         f"settings to resume, or {hint}.")


# ----------------------------------------------------------------------------------------------------- the store

def _atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then move it onto ``path``."""
    # a unique name opened with "xb" (not mkstemp, whose files are private to the user): the file gets the
    # permissions the umask gives, as any other file in the store
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def volume_name(seed: int) -> str:
    """The file name of the volume of ``seed`` inside the store."""
    return f"volume_{seed:05d}.npy"


def _open_store(store: str | Path, meta: dict) -> Path:
    """Create the store (folder) and its ``ensemble.json``, or check that an existing one matches ``meta``."""
    root = Path(store).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InputError(f"the store {root} is a file; give a folder for the volumes and the manifest.")
    root.mkdir(parents=True, exist_ok=True)
    path = root / META
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"{path} could not be read ({err}); choose a new store or delete the file.") from err
        _compare_metadata(old, meta, root)
    else:
        _atomic_write(path, lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    return root


def columns(names: Sequence[str], check: bool) -> list[str]:
    """Manifest columns for a target with descriptors ``names``."""
    return [*HEAD_COLUMNS, *(f"error_{n}" for n in names), *TAIL_COLUMNS, *(CHECK_COLUMNS if check else ())]


def read_manifest(store: str | Path) -> pd.DataFrame:
    """The manifest of a store (an empty table when there is none yet)."""
    path = Path(store) / MANIFEST
    if not path.exists():
        return pd.DataFrame()
    try:
        table = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (OSError, ValueError) as err:
        raise InputError(f"the manifest {path} could not be read ({err}); choose a new store.") from err
    if "seed" not in table or "status" not in table:
        raise InputError(f"{path} is not an ensemble manifest (no seed / status columns); choose a new store.")
    for col in TEXT_COLUMNS:
        if col in table:
            table[col] = table[col].fillna("").astype(str)
    return table


def _write_manifest(root: Path, rows: dict[int, dict], cols: list[str]) -> pd.DataFrame:
    """Rewrite ``manifest.csv`` atomically from ``rows`` (by seed); returns the table."""
    table = _table(rows, cols)
    _atomic_write(root / MANIFEST, lambda fh: fh.write(table.to_csv(index=False).encode()))
    return table


def _table(rows: dict[int, dict], cols: list[str]) -> pd.DataFrame:
    """The rows as a table sorted by seed, with the manifest's columns first."""
    table = pd.DataFrame([rows[s] for s in sorted(rows)])
    extra = [c for c in table.columns if c not in cols]
    return table.reindex(columns=cols + extra)


def _finished(root: Path, table: pd.DataFrame) -> set[int]:
    """Seeds whose row says done and whose volume file exists."""
    if table.empty:
        return set()
    done = table[table["status"] == "done"]
    return {int(r.seed) for r in done.itertuples() if r.file and (root / str(r.file)).is_file()}


# ------------------------------------------------------------------------------------------------------ the task

def _worker_address() -> str:
    """The address of the dask worker running this task, or ``"local"`` outside dask."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def _physics_check(labels: np.ndarray, reference: np.ndarray | None) -> dict:
    """The cheap physics check (no transport solves): metrics outside 2 sd of the reference, or, without one,
    the cluster and percolation summary of each phase."""
    from .morphometry import SECTION_SUFFIX, structure_report

    report = structure_report(labels, reference, transport=False, n_windows=4)
    if reference is not None:
        out = report.outside
        phases: dict[str, list[str]] = {}
        for r in out.itertuples():
            phases.setdefault(str(r.metric).replace(SECTION_SUFFIX, ""), []).append(str(r.phase))
        names = ", ".join(f"{m}[{','.join(p)}]" for m, p in phases.items())
        text = f"{len(out)} of {len(report.comparison)} outside 2 sd" + (f": {names}" if names else "")
        return {"outside_2sd": len(out), "check": text}
    parts = [f"phase {p}: {int(m.values['clusters'])} clusters, percolates {int(m.values['percolating_axes'])}/"
             f"{labels.ndim}" for p, m in report.phases.items()]
    return {"outside_2sd": math.nan, "check": "; ".join(parts)}


@contextmanager
def _cancel_watch(cancel: threading.Event | None, event_name: str | None) -> Iterator[threading.Event | None]:
    """The cancel flag of a task: ``cancel`` itself in-process, or a local flag that a thread sets when the
    ensemble's :class:`distributed.Event` ``event_name`` is set (looked at every :data:`WORKER_POLL` s)."""
    if event_name is None:
        yield cancel
        return
    flag, stop = threading.Event(), threading.Event()
    try:
        from distributed import Event

        remote = Event(event_name)  # made here, in the task's thread, where the worker's client is found
    except Exception:  # noqa: BLE001 - without a scheduler connection the task simply runs to its end
        yield flag
        return

    def watch() -> None:
        try:
            while not stop.wait(WORKER_POLL):
                if remote.is_set():
                    flag.set()
                    return
        except Exception:  # noqa: BLE001 - a lost scheduler connection only ends the watching
            return

    watcher = threading.Thread(target=watch, name=f"cancel-watch-{event_name}", daemon=True)
    watcher.start()
    try:
        yield flag
    finally:
        stop.set()


def _failed_row(seed: int, shape: Sequence[int], err: BaseException, worker: str, threads: int) -> dict:
    return {"seed": seed, "shape": "x".join(map(str, shape)), "status": "failed",
            "error": f"{type(err).__name__}: {err}", "file": "", "worker": worker, "threads": threads}


def _done_row(seed: int, shape: Sequence[int], result, worker: str, threads: int) -> dict:
    used = result.settings.get("threads_used") or [threads]
    row = {"seed": seed, "shape": "x".join(map(str, shape)), "status": "done", "error": "",
           "file": volume_name(seed), "undecided": result.undecided, "evaluations": result.evaluations,
           "seconds": result.seconds, "worker": worker, "threads": max(used)}
    names = {n for per_axis in result.errors.values() for n in per_axis}
    for name in sorted(names):
        row[f"error_{name}"] = max(per_axis[name] for per_axis in result.errors.values() if name in per_axis)
    return row


def reconstruct_volumes(target: DescriptorSet, shape: Sequence[int], seeds: Sequence[int], store: str,
                        settings: dict[str, Any], threads: int | None = 1, check: bool = False,
                        reference: np.ndarray | None = None, cancel: threading.Event | None = None,
                        cancel_event: str | None = None) -> list[dict]:
    """One task of an ensemble: reconstruct the volumes of ``seeds`` (one seed alone, or several in one batched
    optimisation) with ``threads`` torch threads (None: the cores other work leaves free), save each as
    ``<store>/volume_<seed:05d>.npy`` (atomically) and return their manifest rows. An error becomes rows with
    status ``"failed"``; a cancelled run saves nothing and returns rows with status ``"cancelled"``. ``cancel``
    is a flag in this process, ``cancel_event`` the name of a :class:`distributed.Event` of the ensemble."""
    worker = _worker_address()
    if worker != "local":
        keep_freed_memory()  # Dask workers' malloc settings would make every evaluation 2.5x slower
    seeds = list(seeds)
    try:
        with _cancel_watch(cancel, cancel_event) as flag:
            if len(seeds) == 1:
                results = [run_to_end(reconstruct_iter(target, shape, cancel=flag, seed=seeds[0], threads=threads,
                                                       **settings))]
            else:
                results = run_to_end(reconstruct_batch_iter(target, shape, seeds, cancel=flag, threads=threads,
                                                            **settings))
    except Exception as err:  # noqa: BLE001 - any failure is recorded, the other tasks go on
        return [_failed_row(seed, shape, err, worker, threads) for seed in seeds]
    rows = [_saved_row(seed, shape, result, store, worker, threads, check, reference)
            for seed, result in zip(seeds, results)]
    for row in rows:
        row["batch"] = len(seeds)  # seconds and evaluations are then those of the whole batch
    return rows


def _saved_row(seed: int, shape: Sequence[int], result, store: str, worker: str, threads: int | None, check: bool,
               reference: np.ndarray | None) -> dict:
    """Save one finished volume and return its row (with the physics check when asked)."""
    if result.cancelled:
        return {"seed": seed, "status": "cancelled"}
    try:
        path = Path(store) / volume_name(seed)
        _atomic_write(path, lambda fh: np.save(fh, result.labels, allow_pickle=False))
        row = _done_row(seed, shape, result, worker, threads)
    except Exception as err:  # noqa: BLE001 - a volume that cannot be saved is recorded as failed
        return _failed_row(seed, shape, err, worker, threads)
    if check:
        try:
            row.update(_physics_check(result.labels, reference))
        except Exception as err:  # noqa: BLE001 - the volume is fine; only its check could not be made
            row.update({"outside_2sd": math.nan, "check": f"check failed: {type(err).__name__}: {err}"})
    return row


# ---------------------------------------------------------------------------------------------------- execution

@contextmanager
def dask_client(client: Client | str | None, n_workers: int = 1) -> Iterator[Client]:
    """A dask client for ``client``: a :class:`distributed.Client` is used as it is (and left open); a string
    is a scheduler address, connected to and closed at the end; ``None`` starts a ``LocalCluster`` of
    ``n_workers`` single-threaded worker processes, closed (with its client) at the end, also on errors."""
    from distributed import Client, LocalCluster

    _check_client(client)
    if isinstance(client, Client):
        yield client
        return
    if isinstance(client, str):
        try:
            own = Client(client, timeout="20s")
        except OSError as err:
            raise InputError(f"no dask scheduler answered at {client!r} ({err}); check the address, or pass "
                             "client=None for a local cluster.") from err
        try:
            yield own
        finally:
            own.close()
        return
    # dashboard_address=None leaves the scheduler's small HTTP server (health, metrics) on port 8787, with a
    # warning when another cluster holds it: a free port instead
    with _environment_kept():
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": ":0"})
        try:
            own = Client(cluster)
            try:
                yield own
            finally:
                own.close()
        finally:
            cluster.close()


@contextmanager
def _environment_kept() -> Iterator[None]:
    """Give this process's environment back as it was on entry. A dask nanny sets its workers' variables
    (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``, ...)
    in the *parent's* ``os.environ`` before it spawns them, and leaves them there: every process napari or the
    user started after an ensemble would run with one thread."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in before]:
            del os.environ[key]
        os.environ.update(before)


def _serial(jobs: list[list[int]], task: dict, cancel: threading.Event | None) -> Generator[dict, None, None]:
    """Run the tasks (lists of seeds) one after another in this process; yields each row."""
    for seeds in jobs:
        if cancel is not None and cancel.is_set():
            return
        rows = reconstruct_volumes(seeds=seeds, cancel=cancel, **task)
        if any(row["status"] == "cancelled" for row in rows):
            return
        yield from rows


def _distributed(client: Client, jobs: list[list[int]], task: dict,
                 cancel: threading.Event | None) -> Generator[dict, None, None]:
    """Submit one task per seed and yield the rows as the tasks finish; on cancel (or an interrupt) the
    pending tasks are cancelled and the running ones told to stop."""
    from distributed import Event, as_completed

    name = f"microfingerprint-ensemble-cancel-{uuid.uuid4().hex}"
    stop = Event(name, client=client)
    task = dict(task)
    if task.get("reference") is not None:
        task["reference"] = client.scatter(task["reference"], broadcast=True, hash=False)
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(reconstruct_volumes, seeds=seeds, cancel_event=name,
                             key=f"volumes-{seeds[0]:05d}-{len(seeds)}-{run}", **task): seeds for seeds in jobs}
    pending = set(futures)
    try:
        ac = as_completed(list(futures))
        while not ac.is_empty():
            if cancel is not None and cancel.is_set():
                return
            if not ac.has_ready():
                time.sleep(POLL)
                continue
            for fut in ac.next_batch(block=False):
                pending.discard(fut)
                yield from _rows_of(fut, futures[fut], task)
    finally:
        if pending:
            stop.set()
            client.cancel(list(pending))


def _rows_of(fut, seeds: list[int], task: dict) -> list[dict]:
    """The rows a finished future returned, or failed rows when the task itself raised (a worker died)."""
    try:
        return fut.result()
    except Exception as err:  # noqa: BLE001 - KilledWorker, CancelledError, ...
        return [_failed_row(seed, task["shape"], err, "unknown", task["threads"]) for seed in seeds]


def reconstruct_ensemble_iter(
    target: DescriptorSet,
    shape: Sequence[int],
    n: int | None = None,
    seeds: Sequence[int] | None = None,
    client: Client | str | None = None,
    store: str | Path = "ensemble",
    check: bool = False,
    reference=None,
    threads_per_worker: int | None = None,
    cancel: threading.Event | None = None,
    batch: int | str = "auto",
    **settings,
) -> Generator[Progress, None, pd.DataFrame]:
    """Generator form of :func:`reconstruct_ensemble`: yields :class:`Progress` as each volume finishes and
    returns the manifest. Setting ``cancel`` stops waiting, cancels the pending tasks and returns the manifest
    of the volumes finished so far (they stay in the store); an interrupt does the same and re-raises."""
    check_target(target)
    _check_client(client)
    seeds = _check_seeds(n, seeds)
    shape = check_output_shape(shape, target)
    s = _check_settings(target, shape, threads_per_worker, settings)
    if batch != "auto" and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
        raise InputError(f"batch must be 'auto' or a whole number of at least 1 (seeds optimised together), got "
                         f"{batch!r}.")
    if batch != "auto" and batch > 1 and s.optimizer == "annealing":
        raise InputError("the annealing baseline reconstructs one volume at a time; use batch=1 or 'lbfgs'.")
    ref = _check_reference(reference, shape, check)
    root = _open_store(store, _metadata(target, shape, s))
    cols = columns(target.names, check)
    old = read_manifest(root)
    rows = {int(r["seed"]): r for r in old.to_dict("records")} if not old.empty else {}
    done = _finished(root, old)
    jobs = [seed for seed in seeds if seed not in done]
    total, step = len(seeds), len(seeds) - len(jobs)
    yield Progress(step, total, f"{step} of {total} volumes already in {root}; {len(jobs)} to reconstruct")
    if not jobs:
        return _requested(rows, seeds, cols)
    # torch threads per volume: as asked; else one per Dask worker, and in serial mode the cores other work
    # leaves free (the thread governor, threads=None)
    serial = isinstance(client, str) and client == "serial"
    threads = s.threads if s.threads is not None else (None if serial else 1)
    task = {"target": target, "shape": shape, "store": str(root), "settings": settings, "threads": threads,
            "check": check, "reference": ref}
    if batch == "auto":
        batch = 1 if s.optimizer == "annealing" else _auto_batch(target, shape, s, len(jobs))
    chunks = [jobs[k:k + batch] for k in range(0, len(jobs), batch)]
    gpu = resolve_device(s.device).type != "cpu"
    with _runner(client, chunks, task, cancel, threads or 1, gpu) as results:
        for row in results:
            if row["status"] == "cancelled":
                continue
            rows[row["seed"]] = row
            _write_manifest(root, rows, cols)
            step += 1
            yield Progress(step, total, _message(row))
    return _requested(rows, seeds, cols)


def _requested(rows: dict[int, dict], seeds: list[int], cols: list[str]) -> pd.DataFrame:
    """The rows of the seeds asked for this time (the store's manifest may hold more from earlier runs)."""
    wanted = {seed: rows[seed] for seed in seeds if seed in rows}
    return _table(wanted, cols) if wanted else pd.DataFrame(columns=cols)


@contextmanager
def _runner(client: Client | str | None, jobs: list[list[int]], task: dict, cancel: threading.Event | None,
            threads: int, gpu: bool) -> Iterator[Iterator[dict]]:
    """The rows of the tasks, from the serial loop or from a dask client (closed at the end when it is ours).
    A local cluster for a GPU run has one worker: workers on one GPU would share (and overfill) its memory."""
    if isinstance(client, str) and client == "serial":
        yield _serial(jobs, task, cancel)
        return
    workers = 1 if gpu else max(1, min(len(jobs), cpu_count() // max(1, threads)))
    with dask_client(client, workers) as dask:
        rows = _distributed(dask, jobs, task, cancel)
        try:
            yield rows
        finally:
            rows.close()


#: ``batch="auto"`` fills at most this share of the free GPU memory, with at most :data:`MAX_AUTO_BATCH` seeds.
GPU_MEMORY_SHARE = 0.5
MAX_AUTO_BATCH = 16


def auto_batch(per_volume: int, free_gpu: int | None, n_jobs: int) -> int:
    """Seeds per optimisation for ``batch="auto"``: with a GPU of ``free_gpu`` free bytes, as many volumes of
    ``per_volume`` bytes as fit in :data:`GPU_MEMORY_SHARE` of it (at most :data:`MAX_AUTO_BATCH` and the seeds
    left); without one (``None``), 1: on the CPU batching gains 1.1-1.4x at most and Dask workers do better."""
    if free_gpu is None:
        return 1
    return int(max(1, min(n_jobs, MAX_AUTO_BATCH, GPU_MEMORY_SHARE * free_gpu // max(1, per_volume))))


def _auto_batch(target: DescriptorSet, shape: tuple[int, ...], s: ReconstructionSettings, n_jobs: int) -> int:
    device = resolve_device(s.device)
    free = available_bytes(device) if device.type == "cuda" else None
    return auto_batch(memory_per_structure(target, shape, s), free, n_jobs)


def _message(row: dict) -> str:
    if row["status"] == "done":
        return f"volume {row['seed']} done in {row['seconds']:.1f} s on {row['worker']}"
    return f"volume {row['seed']} failed: {row['error']}"


def reconstruct_ensemble(target: DescriptorSet, shape: Sequence[int], n: int | None = None,
                         seeds: Sequence[int] | None = None, client: Client | str | None = None,
                         store: str | Path = "ensemble",
                         check: bool = False, reference=None, threads_per_worker: int | None = None,
                         cancel: threading.Event | None = None, batch: int | str = "auto",
                         **settings) -> pd.DataFrame:
    """Reconstruct ``n`` volumes of ``shape`` (seeds ``0..n-1``, or ``seeds``) that all match ``target``, in
    parallel on dask.distributed, into the folder ``store``; returns the manifest (one row per seed: status,
    file, maximum relative error over the axes per descriptor, undecided share, evaluations, seconds, worker,
    torch threads and, with ``check``, the physics check against ``reference``).

    ``client``: ``None`` starts a local cluster of worker processes (one per ``threads_per_worker`` cores,
    default one per core; a single worker when the device is a GPU) and closes it at the end; a scheduler
    address or a :class:`distributed.Client` runs on that cluster (the store must be visible to its workers);
    ``"serial"`` runs in this process, one volume after another. ``threads_per_worker`` (torch threads per
    volume) defaults to 1 on Dask and, in serial mode, to the cores other work leaves free
    (:class:`~.threads.ThreadGovernor`). ``batch`` seeds go into one task and
    one batched optimisation (:func:`~.reconstruction.reconstruct_batch_iter`; worth it on a GPU and, for small
    volumes, on the CPU too: see BENCHMARKS.md); ``"auto"`` batches as many as fit in half of this machine's
    free GPU memory (:func:`auto_batch`) and one at a time without a GPU. On a cluster whose workers have GPUs
    that this machine lacks, give the number. Rerunning with the same store resumes: volumes already done
    are kept, failed ones are retried. Other keyword arguments are the fields of
    :class:`~.reconstruction.ReconstructionSettings` (not ``seed`` or ``threads``)."""
    return run_to_end(reconstruct_ensemble_iter(target, shape, n, seeds, client, store, check, reference,
                                                threads_per_worker, cancel, batch, **settings))
