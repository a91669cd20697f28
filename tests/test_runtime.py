"""The guarantees every batch call into Rust makes: panics become exceptions, the GIL is
released, the thread count is configurable, and parallelism keeps working after fork()."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import reasonrl
from reasonrl import InvalidInputError, RustPanicError
from reasonrl.math import verify_batch


def test_panic_on_a_worker_thread_becomes_an_exception():
    with pytest.raises(RustPanicError, match="deliberate test panic"):
        reasonrl._core._panic_for_test("deliberate test panic")
    assert issubclass(RustPanicError, reasonrl.ReasonRLError)
    # The pool and the interpreter are still usable afterwards.
    np.testing.assert_allclose(reasonrl.compute_advantages([0.0, 2.0], [1, 1], "dr_grpo"), [-1.0, 1.0])


def test_thread_count_is_settable_and_results_do_not_depend_on_it():
    default = reasonrl.get_num_threads()
    assert default >= 1
    rng = np.random.default_rng(1)
    rewards = rng.random(100_000)
    group_ids = rng.integers(0, 5000, size=rewards.size)
    try:
        reasonrl.set_num_threads(1)
        assert reasonrl.get_num_threads() == 1
        single = reasonrl.compute_advantages(rewards, group_ids)
        reasonrl.set_num_threads(3)
        assert reasonrl.get_num_threads() == 3
        np.testing.assert_array_equal(reasonrl.compute_advantages(rewards, group_ids), single)
        np.testing.assert_array_equal(reasonrl.compute_advantages(rewards, group_ids, threads=2), single)
    finally:
        reasonrl.set_num_threads(0)
    assert reasonrl.get_num_threads() == default


def test_absurd_thread_counts_are_refused_and_pools_do_not_pile_up():
    with pytest.raises(InvalidInputError, match=r"`threads`: must be at most 1024, got 5000"):
        reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=5000)
    for call in (
        lambda: reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=-1),
        lambda: verify_batch(["1"], ["1"], threads=-1),
        lambda: reasonrl.set_num_threads(-1),
    ):
        with pytest.raises(InvalidInputError, match=r"`threads`: must be >= 1 \(or None"):
            call()
    with pytest.raises(InvalidInputError, match=r"`threads`: must be at most 1024"):
        reasonrl.set_num_threads(5000)
    # Beyond 64 bits, and not an int at all: named errors, not a bare OverflowError.
    for call in (
        lambda: reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=2**70),
        lambda: verify_batch(["1"], ["1"], threads=2**70),
        lambda: reasonrl.set_num_threads(2**70),
    ):
        with pytest.raises(InvalidInputError, match=rf"`threads`: must be at most 1024, got {2**70}\b"):
            call()
    with pytest.raises(InvalidInputError, match=rf"`threads`: must be >= 1 .*got {-(2**70)}\b"):
        reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=-(2**70))
    with pytest.raises(InvalidInputError, match=rf"`threads`: must be at most 1024, got {2**64 - 1}\b"):
        reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=np.uint64(2**64 - 1))
    for bad, kind in ((2.5, "float"), ("3", "str"), (True, "bool")):
        with pytest.raises(TypeError, match=rf"threads must be an int or None, got {kind}"):
            reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=bad)
    # numpy integers count as ints.
    np.testing.assert_array_equal(
        reasonrl.compute_advantages(np.ones(4), [0, 0, 1, 1], threads=np.int64(2)), np.zeros(4, np.float32)
    )
    assert reasonrl.get_num_threads() >= 1  # unchanged by the refused calls
    # Many different counts: only a few pools (and their threads) stay alive.
    def os_threads() -> int:
        return len(os.listdir(f"/proc/{os.getpid()}/task"))

    before = os_threads()
    for threads in range(3, 40):  # 20,000 pairs: enough to run on a pool, not inline
        verify_batch(["1"] * 20_000, ["1"] * 20_000, threads=threads)
    time.sleep(0.5)  # a dropped pool's workers exit on their own
    # At most 4 pools of at most 39 threads: well under the ~740 that one pool per count kept.
    assert os_threads() - before <= 4 * 39, (before, os_threads())


def test_default_thread_count_comes_from_environment():
    code = "import reasonrl; print(reasonrl.get_num_threads())"
    env = dict(os.environ, REASONRL_NUM_THREADS="5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


def test_gil_is_released_during_a_batch_call():
    """While Rust works on a large batch, another Python thread must keep running.

    The worker records the start and end of each Rust call; the main thread records timestamps
    as fast as it can. If the GIL were held, no main-thread timestamp could fall strictly inside
    a call window.
    """
    rewards = np.random.default_rng(2).random(4_000_000)
    group_ids = np.random.default_rng(3).integers(0, 200_000, size=rewards.size)
    windows: list[tuple[float, float]] = []
    done = threading.Event()

    def worker() -> None:
        for _ in range(4):
            start = time.perf_counter()
            reasonrl.compute_advantages(rewards, group_ids, threads=1)
            windows.append((start, time.perf_counter()))
        done.set()

    thread = threading.Thread(target=worker)
    ticks: list[float] = []
    thread.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    thread.join()
    inside = [t for t in ticks for start, end in windows if start + 1e-3 < t < end - 1e-3]
    assert len(inside) > 100, f"main thread made no progress during Rust calls: windows={windows}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
def test_parallel_calls_work_in_a_forked_child():
    rewards = np.random.default_rng(4).random(200_000)
    group_ids = np.repeat(np.arange(12_500), 16)
    expected = reasonrl.compute_advantages(rewards, group_ids, threads=2)  # the parent's pool exists now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a deadlock here would hang, so the parent enforces a deadline
        os.close(read_end)
        try:
            got = reasonrl.compute_advantages(rewards, group_ids, threads=2)
            os.write(write_end, b"ok" if np.array_equal(got, expected) else b"mismatch")
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("compute_advantages deadlocked in a forked child")
    assert os.read(read_end, 16) == b"ok"
    os.close(read_end)
