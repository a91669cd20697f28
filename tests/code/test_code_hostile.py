"""Hostile programs, all in one batch with well-behaved ones: each must end with the right
status, the well-behaved programs must pass, and the host must be untouched: still alive, no
leftover process, zombie, descriptor or directory, no secret leaked, no file written outside."""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reasonrl.code import CodeResult, run_tests, sandbox_capabilities

SECRET = "reasonrl-test-secret-5be1c0de"
DAEMON_MARKER = "reasonrl-hostile-daemon-3f9a"
SANDBOX_ID_BASE = 0x7400_0000  # the per-run uids of rust/reasonrl-core/src/sandbox/mod.rs

GOOD = ("def square(x):\n    return x * x\n", ["assert square(3) == 9", "assert square(-2) == 4"])


def hostile_programs(escape_dir: str, port: int) -> dict[str, tuple[str, list[str] | str]]:
    """name -> (program, tests). The tests of the "probe" programs assert that an attack failed."""
    return {
        "fork_bomb": (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            "pass",
        ),
        "memory_bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 26))\n", "pass"),
        "huge_allocation": ("x = bytearray(1 << 40)\n", "pass"),
        "infinite_loop": ("while True:\n    pass\n", "pass"),
        "ten_gb_stdout": (
            "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(10 * 1024):\n    sys.stdout.write(chunk)\n",
            "pass",
        ),
        "ten_gb_stderr": (
            "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(10 * 1024):\n    os.write(2, chunk)\n",
            "pass",
        ),
        "write_outside": (
            f"open({escape_dir!r} + '/escaped.txt', 'w').write('pwned')\n",
            "pass",
        ),
        "read_environment": (
            # Everything a program could read the host's environment from.
            "import os, glob\nseen = repr(dict(os.environ))\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n        seen += open(path, 'rb').read().decode('latin-1')\n"
            "    except OSError:\n        pass\n",
            f"assert {SECRET!r} not in seen",
        ),
        "open_socket": (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
            "    connected = True\nexcept OSError:\n    connected = False\n",
            "assert not connected",
        ),
        "kill_parent": (
            "import os, signal\n"
            f"for pid in (os.getppid(), {os.getpid()}, -1):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n",
            "pass",
        ),
        "daemon": (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        os.execv('/bin/sleep', [{DAEMON_MARKER!r}, '60'])\n"
            "    os._exit(0)\n"
            "time.sleep(0.3)\n",
            "pass",
        ),
        # Recursion through a C slot (repr) grows the C stack: 10**6 levels overflow it.
        "deep_recursion": (
            "import sys\nsys.setrecursionlimit(10 ** 6)\n"
            "class Node:\n    def __repr__(self):\n        return repr(self)\nrepr(Node())\n",
            "pass",
        ),
        # Pure Python recursion: frames live on the heap (3.11+), so 10**6 levels end in
        # RecursionError (or MemoryError), never in a hung or crashed host.
        "deep_python_recursion": (
            "import sys\nsys.setrecursionlimit(10 ** 6)\ndef down(n):\n    return down(n + 1) + 1\ndown(0)\n",
            "pass",
        ),
    }


EXPECTED = {
    "fork_bomb": "timeout",
    "memory_bomb": "memory",
    "huge_allocation": "memory",
    "infinite_loop": "timeout",
    "ten_gb_stdout": "output_limit",
    "ten_gb_stderr": "output_limit",
    "write_outside": "failed",  # PermissionError
    "read_environment": "passed",  # its test asserts the secret was not seen
    "open_socket": "passed",  # its test asserts the connection failed
    "kill_parent": "passed",  # the kills have no effect; the program carries on
    "daemon": "passed",  # the program itself is fine; its daemon must not survive
    # SIGSEGV from the C stack overflow; Python >= 3.12 guards the C stack and raises instead.
    "deep_recursion": "crashed" if sys.version_info < (3, 12) else "failed",
    # RecursionError at depth 10**6 (seconds of work), or MemoryError first.
    "deep_python_recursion": ("failed", "memory", "timeout"),
}


def sandbox_processes() -> list[str]:
    """Live processes owned by a sandbox uid or carrying the daemon's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if uid >= SANDBOX_ID_BASE or DAEMON_MARKER in cmdline:
            found.append(f"{entry.name}: {cmdline!r}")
    return found


def zombie_children() -> list[str]:
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                zombies.append(entry.name)
    return zombies


@pytest.fixture(scope="module")
def batch():
    """Runs every hostile program once, interleaved with good ones, and records the host's state."""
    os.environ["REASONRL_TEST_SECRET"] = SECRET
    listener = socket.create_server(("127.0.0.1", 0))
    escape_dir = tempfile.mkdtemp(prefix="reasonrl-escape-")
    os.chmod(escape_dir, 0o777)  # only the sandbox itself may stop the write
    # One good run first: process-wide resources made once (as root, the shared empty network
    # namespace every run joins) must not count as leaks of this batch.
    assert run_tests(["x = 1"], [["assert x == 1"]])[0].passed
    fds_before = len(os.listdir("/proc/self/fd"))
    dirs_before = set(Path("/tmp").glob("reasonrl-run-*"))
    hostile = hostile_programs(escape_dir, listener.getsockname()[1])
    names, programs, tests = [], [], []
    for name, (program, test) in hostile.items():
        names += [name, "good"]
        programs += [program, GOOD[0]]
        tests += [test, GOOD[1]]
    started = time.monotonic()
    try:
        results = run_tests(programs, tests, timeout_s=3.0, memory_mb=512, max_output_mb=4, threads=2)
        elapsed = time.monotonic() - started
        time.sleep(0.2)
        state = {
            "elapsed": elapsed,
            "escaped": os.path.exists(os.path.join(escape_dir, "escaped.txt")),
            "listener_accepted": _accepted(listener),
            "processes": sandbox_processes(),
            "zombies": zombie_children(),
            "fds_leaked": len(os.listdir("/proc/self/fd")) - fds_before,
            "dirs_left": set(Path("/tmp").glob("reasonrl-run-*")) - dirs_before,
        }
    finally:
        listener.close()
        for leftover in Path(escape_dir).iterdir():
            leftover.unlink()
        os.rmdir(escape_dir)
        del os.environ["REASONRL_TEST_SECRET"]
    return dict(zip(range(len(names)), zip(names, results))), state


def _accepted(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        listener.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def result_of(batch, name: str) -> CodeResult:
    results, _ = batch
    return next(result for n, result in results.values() if n == name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_program_ends_with_the_right_status(batch, name):
    caps = sandbox_capabilities()
    if name == "open_socket" and not caps.network_namespace:
        pytest.skip(f"no network namespace on this machine: {caps.missing}")
    if name == "write_outside" and not caps.landlock:
        pytest.skip(f"no Landlock on this machine: {caps.missing}")
    if name == "read_environment" and not caps.unprivileged:
        pytest.skip(f"no privilege drop on this machine: {caps.missing}")
    result = result_of(batch, name)
    expected = EXPECTED[name]
    assert result.status in (expected if isinstance(expected, tuple) else (expected,)), result
    assert result.wall_time_s < 10


def test_good_programs_in_the_same_batch_are_unaffected(batch):
    results, _ = batch
    good = [result for name, result in results.values() if name == "good"]
    assert len(good) == len(EXPECTED)
    assert all(r.status == "passed" and r.fraction == 1.0 for r in good), good


def test_host_is_left_clean(batch):
    _, state = batch
    # Deadlines are 3 s; 26 programs on 2 workers, a handful of which run into the deadline.
    assert state["elapsed"] < 30, state
    assert state["processes"] == [], "processes outlived their run"
    assert state["zombies"] == []
    assert state["fds_leaked"] <= 0
    assert state["dirs_left"] == set()


def test_nothing_escaped_the_sandbox(batch):
    caps = sandbox_capabilities()
    _, state = batch
    if not caps.landlock:
        pytest.skip(f"no Landlock: writes outside are stopped by permissions only ({caps.missing})")
    assert not state["escaped"]
    if not caps.network_namespace:
        pytest.skip(f"no network namespace on this machine: {caps.missing}")
    assert not state["listener_accepted"]


def test_the_host_survived_its_kill_attempt():
    # Reaching this line means the pytest process was not killed; its parent is alive too.
    os.kill(os.getppid(), 0)
    assert signal.getsignal(signal.SIGINT) is not None


@pytest.mark.parametrize("patch", [
    "builtins.exec = lambda *args, **kwargs: None",
    "real = builtins.compile\nbuiltins.compile = lambda *args, **kwargs: real('pass', 'test.py', 'exec')",
])
def test_a_program_that_replaces_exec_or_compile_passes_no_test(patch):
    """The harness runs the tests with the exec and compile it held before the program ran: a
    program that swaps in ones that run nothing does not turn failing tests into passes."""
    [result] = run_tests([f"import builtins\n{patch}\n"], [["assert 1 == 2", "assert False"]])
    assert (result.tests_passed, result.tests_total) == (0, 2) and not result.passed, result
