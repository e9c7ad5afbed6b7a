"""One thread runs all torch work (embedding, model loading, every generation step).

torch's OpenMP runtime (libgomp) keeps a team of helper threads for each thread that runs
parallel code. Once there are more of them than cores, helpers stop spinning between parallel
regions and sleep, and every one of the ~200 small regions of a decode step pays for waking
them: measured here, a decode step took 62 ms from a second thread against 50 ms from one
thread alone. So requests hand their torch work to this one thread, in arrival order; jobs are
short (one batch, one prompt chunk, one token), so answers and searches interleave.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_start_lock = threading.Lock()
_local = threading.local()


def _mark() -> None:
    _local.compute = True


def on_compute_thread() -> bool:
    """Whether the caller is the compute thread."""
    return getattr(_local, "compute", False)


def submit(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue fn(*args, **kwargs) on the compute thread; its Future holds the result."""
    global _executor
    if on_compute_thread():  # a job that queues a job would wait for itself
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the Future
            future.set_exception(exc)
        return future
    with _start_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="qa-compute",
                                           initializer=_mark)
    return _executor.submit(fn, *args, **kwargs)


def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """fn(*args, **kwargs) run on the compute thread; its result or its exception."""
    return submit(fn, *args, **kwargs).result()
