"""The compute thread: one thread runs every job, in order, and hands back results."""

from __future__ import annotations

import threading

import pytest

from qa import compute


def test_jobs_run_on_one_thread_that_is_not_the_callers() -> None:
    ids = {compute.run(threading.get_ident) for _ in range(5)}
    assert len(ids) == 1 and threading.get_ident() not in ids
    assert compute.run(compute.on_compute_thread) and not compute.on_compute_thread()


def test_a_job_may_run_a_job_without_waiting_for_itself() -> None:
    def outer() -> tuple[int, int]:
        return threading.get_ident(), compute.run(threading.get_ident)

    first, nested = compute.run(outer)
    assert first == nested


def test_exceptions_reach_the_caller() -> None:
    def fail() -> None:
        raise ValueError("broken job")

    with pytest.raises(ValueError, match="broken job"):
        compute.run(fail)
    assert compute.run(sum, [1, 2, 3]) == 6  # the thread lives on


def test_callers_on_many_threads_each_get_their_own_result() -> None:
    results: dict[int, int] = {}

    def call(n: int) -> None:
        results[n] = compute.run(lambda: n * n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: n * n for n in range(16)}
