"""Independent tasks (umbrella windows, labelling jobs, replicas) on a pool of workers.

Every parallel workflow in qmml goes through one `concurrent.futures.Executor`:

* ``make_executor("process")`` (the default): a local pool of worker processes started with
  ``spawn`` (torch and OpenMP do not survive ``fork`` reliably);
* ``make_executor("dask")``: Dask distributed, a local cluster or any scheduler, e.g. a SLURM
  cluster from ``dask_jobqueue.SLURMCluster`` (``pip install 'qmml[dask]'``, see docs/parallel.md);
* ``make_executor("serial")``: one task after another in the calling process, for debugging.

`map_tasks` submits ``function(task)`` for every task, shows a progress bar and returns the results
in task order.  When tasks fail, the others still finish; then one `TaskError` names every failed
task (index and a summary of its argument) and carries the finished results (``errors="return"``
puts the exceptions in the list instead).

**Threads.**  Each task runs with ``threads_per_task`` threads (default 1) for OpenMP (PySCF,
tblite), BLAS and torch, whatever the executor, so ``workers x threads_per_task`` never exceeds
the cores and a task computes the same numbers bit for bit in every executor.

**What can be a task.**  Functions and task arguments travel to other processes by pickle: use
module-level functions (or `functools.partial` of one) from an importable module, and arguments
made of plain data (numbers, arrays, dataclasses).  Build heavy objects (a `Hamiltonian` holding
PySCF objects, a torch model) inside the task from a recipe, as `qmml.umbrella` does.  Scripts that
start a process pool need the usual ``if __name__ == "__main__":`` guard (``spawn`` re-imports them).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
import multiprocessing
import os
import pickle

import numpy as np

from ._deprecation import moved_names
from .errors import InputError, QmmlError

log = logging.getLogger(__name__)

#: Environment variables that set the thread count of OpenMP, MKL, OpenBLAS, Accelerate and numexpr.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")
KINDS = ("process", "dask", "serial")


class TaskError(QmmlError):
    """One or more tasks of `map_tasks` failed; the other tasks finished.

    Attributes
    ----------
    failures : dict of int to Exception
        Task index -> the exception it raised.
    results : list
        One entry per task, in task order: the result, or the exception of a failed task.
    """

    def __init__(self, message: str, failures: dict, results: list):
        super().__init__(message)
        self.failures, self.results = failures, results


def available_cores() -> int:
    """Cores this process may use (the CPU affinity mask, which SLURM and containers restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def thread_limits(threads: int):
    """Run the enclosed code with ``threads`` threads for OpenMP, BLAS and torch; restore afterwards.

    Environment variables cover libraries loaded later and child processes; threadpoolctl (when
    installed) and ``torch.set_num_threads`` cover the libraries already loaded.
    """
    import torch

    threads = _positive_int(threads, "threads_per_task")
    saved_env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    saved_torch = torch.get_num_threads()
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    torch.set_num_threads(threads)
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads)
    except ImportError:
        log.debug("threadpoolctl is not installed: OpenMP and BLAS threads follow the environment variables only")
    try:
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        torch.set_num_threads(saved_torch)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_threads(task=None) -> dict:
    """Thread counts where this runs, as a task: ``map_tasks(worker_threads, range(n))`` checks a cluster.

    Returns
    -------
    dict
        ``torch`` (intra-op threads), ``openmp`` and ``blas`` (largest count over the loaded
        libraries, threadpoolctl; None without it or when none is loaded), ``pyscf``
        (``pyscf.lib.num_threads()``), ``environment`` (``OMP_NUM_THREADS``) and ``pid``.
    """
    import torch
    from pyscf import lib

    out = {"torch": torch.get_num_threads(), "pyscf": lib.num_threads(), "openmp": None, "blas": None,
           "environment": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return out
    for info in threadpool_info():
        api = "openmp" if info["user_api"] == "openmp" else "blas"
        out[api] = max(out[api] or 0, int(info["num_threads"]))
    return out


def _run_task(function, threads, task):
    """What a worker runs: ``function(task)`` under the executor's thread limit."""
    if threads is None:
        return function(task)
    with thread_limits(threads):
        return function(task)


# -- executors ------------------------------------------------------------------------------------
class SerialExecutor(cf.Executor):
    """Runs each task at submission, in the calling process (same interface as the pools)."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            result = fn(*args, **kwargs)
        except Exception as err:  # KeyboardInterrupt and SystemExit still stop the caller
            future.set_exception(err)
        else:
            future.set_result(result)
        return future


class TaskExecutor(cf.Executor):
    """A `concurrent.futures.Executor` made by `make_executor`: the pool plus its settings.

    Attributes
    ----------
    kind : str
        "process", "dask" or "serial".
    workers : int or None
        Tasks that run at once (None: whatever the Dask cluster has).
    threads_per_task : int
        OpenMP/BLAS/torch threads of each task (`map_tasks` applies it).
    client : distributed.Client or None
        The Dask client (kind "dask").
    """

    def __init__(self, inner, kind: str, workers, threads_per_task: int, *, client=None, closers=()):
        self._inner, self.kind, self.workers, self.threads_per_task = inner, kind, workers, threads_per_task
        self.client = client
        self._closers = list(closers)

    def __repr__(self) -> str:
        where = f", {self.client.scheduler.address}" if self.client is not None else ""
        return (f"TaskExecutor({self.kind!r}, workers={self.workers}, threads_per_task={self.threads_per_task}"
                f"{where})")

    def submit(self, fn, /, *args, **kwargs):
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if isinstance(self._inner, cf.ProcessPoolExecutor):
            self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)
        else:  # Dask's executor has no cancel_futures: wait=False cancels what is pending
            self._inner.shutdown(wait=wait and not cancel_futures)
        while self._closers:  # a client and cluster this executor started, newest first
            self._closers.pop()()


def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _environment_setter(threads: int):
    """Initializer of a spawned worker that sets the thread variables before anything imports numpy
    or torch: ``exec`` is pickled by reference, so unpickling it imports nothing, whereas any qmml
    function would import torch (and start OpenMP with all cores) first."""
    values = {name: str(threads) for name in THREAD_VARIABLES}
    return exec, (f"import os; os.environ.update({values!r})",)


def make_executor(kind: str = "process", *, workers: int | None = None, address=None,
                  threads_per_task: int = 1) -> TaskExecutor:
    """An executor for `map_tasks`: a local process pool, a Dask cluster, or serial.

    Parameters
    ----------
    kind : {"process", "dask", "serial"}
    workers : int, optional
        Tasks at once.  Default: the available cores divided by ``threads_per_task``.  For "dask"
        it sizes a new local cluster; with ``address`` the cluster's own size applies (scale it).
    address : str, dask cluster or distributed.Client, optional
        Kind "dask" only: a scheduler address (``"tcp://host:8786"``), a cluster object such as
        ``dask_jobqueue.SLURMCluster(...)`` or ``distributed.LocalCluster(...)``, or a client.  An
        executor made from a cluster or address closes its client on shutdown, never the cluster.
        Default: a new local cluster of ``workers`` single-threaded worker processes, closed on shutdown.
    threads_per_task : int
        OpenMP, BLAS and torch threads of each task.

    Returns
    -------
    TaskExecutor
        A `concurrent.futures.Executor`; use it in a ``with`` block (or call ``shutdown()``).

    Examples
    --------
    >>> with make_executor("process", workers=4) as pool:          # doctest: +SKIP
    ...     results = map_tasks(run_umbrella_window, windows, executor=pool)
    """
    if kind not in KINDS:
        raise InputError(f"make_executor: kind={kind!r} is not known; use 'process' (local worker processes), "
                         "'dask' (a Dask cluster) or 'serial' (one task after another, here)")
    threads = _positive_int(threads_per_task, "threads_per_task")
    if workers is not None:
        workers = _positive_int(workers, "workers")
    if address is not None and kind != "dask":
        raise InputError(f"make_executor: address= is for kind='dask' (a scheduler or cluster), not {kind!r}")
    if kind == "serial":
        if workers not in (None, 1):
            raise InputError(f"make_executor: kind='serial' runs one task at a time, workers={workers}; "
                             "use kind='process' for more")
        return TaskExecutor(SerialExecutor(), "serial", 1, threads)
    default_workers = max(1, available_cores() // threads)
    if kind == "process":
        initializer, initargs = _environment_setter(threads)
        pool = cf.ProcessPoolExecutor(max_workers=workers or default_workers,
                                      mp_context=multiprocessing.get_context("spawn"),
                                      initializer=initializer, initargs=initargs)
        return TaskExecutor(pool, "process", workers or default_workers, threads)
    return _dask_executor(address, workers, default_workers, threads)


def _dask_executor(address, workers, default_workers: int, threads: int) -> TaskExecutor:
    try:
        import distributed
    except ImportError:
        raise InputError("make_executor('dask') needs Dask distributed: pip install 'qmml[dask]'") from None
    closers = []
    if address is None:
        # one task per worker process; the nanny sets the thread variables before the worker starts
        cluster = distributed.LocalCluster(n_workers=workers or default_workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           env={name: str(threads) for name in THREAD_VARIABLES})
        client = distributed.Client(cluster)
        closers += [cluster.close, client.close]
        workers = workers or default_workers
    else:
        if workers is not None:
            raise InputError(f"make_executor: workers={workers} cannot resize the cluster at {address!r}; "
                             "scale the cluster itself (cluster.scale(jobs=N) for dask-jobqueue) and leave "
                             "workers out")
        if isinstance(address, distributed.Client):
            client = address
        else:  # a scheduler address or a cluster object (LocalCluster, SLURMCluster, ...)
            if not isinstance(address, str) and not hasattr(address, "scheduler_address"):
                raise InputError(f"make_executor: address={address!r} is neither a scheduler address "
                                 "('tcp://host:8786'), a Dask cluster nor a distributed.Client")
            client = distributed.Client(address)
            closers.append(client.close)
    # pure=False: two equal tasks (same spec twice) must both run, as they would in a process pool
    return TaskExecutor(client.get_executor(pure=False), "dask", workers, threads, client=client, closers=closers)


# -- running tasks ---------------------------------------------------------------------------------
def _summary(task, limit: int = 160) -> str:
    """A one-line description of a task argument for error messages."""
    if isinstance(task, np.ndarray):
        return f"array(shape={task.shape}, dtype={task.dtype})"
    with np.printoptions(threshold=8, edgeitems=2, precision=4):
        text = " ".join(repr(task).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _name(function) -> str:
    if isinstance(function, functools.partial):
        return _name(function.func)
    return getattr(function, "__qualname__", None) or type(function).__name__


def _check_picklable(function, executor) -> None:
    inner = getattr(executor, "_inner", executor)
    if not isinstance(inner, cf.ProcessPoolExecutor):
        return
    try:
        pickle.dumps(function)
    except Exception as err:
        raise InputError(f"map_tasks: {_name(function)} cannot be sent to worker processes ({err}); a task "
                         "function must be a module-level function (or functools.partial of one) in an importable "
                         "module, not a lambda or a function defined in a notebook; use executor='serial' or a "
                         "Dask executor (cloudpickle) for those") from None


def map_tasks(function, tasks, *, executor=None, progress: bool = True, errors: str = "raise",
              threads_per_task: int | None = None, description: str | None = None) -> list:
    """``[function(task) for task in tasks]``, run by ``executor``, results in task order.

    Parameters
    ----------
    function : callable
        Called as ``function(task)`` in a worker; a module-level function, a picklable object with
        ``__call__``, or `functools.partial` of one (see the module notes).
    tasks : iterable
        One argument per task.
    executor : concurrent.futures.Executor or str, optional
        A `make_executor` result, any other Executor (e.g. ``distributed.Client(...).get_executor()``),
        or a kind ("process", "dask", "serial") for a new executor closed afterwards.  Default: a
        new local process pool of ``min(len(tasks), cores)`` workers.
    progress : bool
        A tqdm bar over finished tasks.
    errors : {"raise", "return"}
        "raise": wait for every task, then raise `TaskError` naming each failed task (index and
        argument) with all results attached.  "return": put the exception in the failed task's
        place in the returned list.
    threads_per_task : int, optional
        OpenMP/BLAS/torch threads of each task; default the executor's ``threads_per_task`` (1 for
        `make_executor` executors), and untouched for other executors.
    description : str, optional
        Label of the progress bar (default: the function's name).

    Returns
    -------
    list
        ``function(task)`` for each task, in the order of ``tasks``.

    Raises
    ------
    TaskError
        With ``errors="raise"``, when one or more tasks raised.
    """
    from tqdm.auto import tqdm

    if not callable(function):
        raise InputError(f"map_tasks: function={function!r} is not callable; give the function each task runs")
    if errors not in ("raise", "return"):
        raise InputError(f"map_tasks: errors={errors!r}; use 'raise' (TaskError after all tasks) or 'return' "
                         "(exceptions in the result list)")
    tasks = list(tasks)
    if not tasks:
        return []
    owned = executor is None or isinstance(executor, str)
    if executor is None:
        executor = make_executor("process", workers=min(len(tasks), available_cores()))
    elif isinstance(executor, str):
        workers = min(len(tasks), available_cores()) if executor == "process" else None
        executor = make_executor(executor, workers=workers)
    elif not isinstance(executor, cf.Executor):
        raise InputError(f"map_tasks: executor={executor!r} is not a concurrent.futures.Executor; give "
                         "qmml.parallel.make_executor(...), 'process', 'dask', 'serial' or None")
    threads = threads_per_task if threads_per_task is not None else getattr(executor, "threads_per_task", None)
    if threads is not None:
        threads = _positive_int(threads, "threads_per_task")
    call = functools.partial(_run_task, function, threads)
    failures: dict[int, BaseException] = {}
    bar = tqdm(total=len(tasks), unit="task", desc=description or _name(function), disable=not progress,
               dynamic_ncols=True)
    futures = []
    try:
        _check_picklable(function, executor)
        futures = [executor.submit(call, task) for task in tasks]
        index = {future: k for k, future in enumerate(futures)}
        for future in cf.as_completed(futures):
            bar.update(1)
            if future.exception() is not None:
                failures[index[future]] = future.exception()
                bar.set_postfix(failed=len(failures))
    except BaseException:  # Ctrl-C or a broken pool: stop what has not started
        for future in futures:
            future.cancel()
        if owned:
            executor.shutdown(wait=False, cancel_futures=True)
            owned = False
        raise
    finally:
        bar.close()
        if owned:
            executor.shutdown()
    results = [failures.get(k) if k in failures else future.result() for k, future in enumerate(futures)]
    if failures and errors == "raise":
        raise _task_error(function, tasks, failures, results)
    return results


def _task_error(function, tasks, failures: dict, results: list) -> TaskError:
    shown = sorted(failures)[:10]
    lines = [f"{len(failures)} of {len(tasks)} tasks of {_name(function)} failed (the others finished; every "
             "result is in this error's .results, the exceptions in .failures):"]
    for k in shown:
        err = failures[k]
        lines.append(f"  task {k} ({_summary(tasks[k])}): {type(err).__name__}: {err}")
    if len(failures) > len(shown):
        lines.append(f"  ... and {len(failures) - len(shown)} more")
    error = TaskError("\n".join(lines), failures, results)
    error.__cause__ = failures[shown[0]]  # the first failure's traceback (a worker's, for process pools)
    return error


# label_structures lives in qmml.ml.labelling now; the old name works for one release
__getattr__ = moved_names(__name__, {"label_structures": "qmml.ml.labelling"})
