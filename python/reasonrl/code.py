"""Sandboxed execution of model-written code, and the code-correctness reward.

Every program runs in its own sandbox (see :func:`sandbox_capabilities` for what this machine
provides): a fresh private directory, an empty environment, limits on CPU time, memory, file
size, open files and processes, no network, no writes outside its directory, an unprivileged
identity, and a kill of everything it started when it ends or reaches its deadline. A batch runs
on a bounded pool of workers (``threads``), with the GIL released.

Example::

    from reasonrl.code import code_reward, run_tests

    results = run_tests(["def add(a, b):\\n    return a + b\\n"], [["assert add(1, 2) == 3"]])
    results[0].status, results[0].fraction          # ('passed', 1.0)
    run_tests(["print(sum(map(int, input().split())))"], [[("1 2", "3"), ("5 5", "10")]])
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Sequence, Union, cast

from reasonrl import _core
from reasonrl.errors import InvalidInputError
from reasonrl.rewards import completion_text

__all__ = [
    "CodeResult",
    "SandboxCapabilities",
    "Status",
    "code_reward",
    "extract_code",
    "run_tests",
    "submitted_program",
    "sandbox_capabilities",
]

Status = Literal[
    "passed",
    "failed",
    "timeout",
    "memory",
    "crashed",
    "syntax_error",
    "output_limit",
    "sandbox_error",
]

#: The test cases of one program: one Python snippet, a list of snippets (one test case each,
#: run after the program in its namespace), or a list of ``(stdin, expected_stdout)`` pairs
#: (dicts with ``"input"`` and ``"output"`` keys are accepted too).
TestCases = Union[str, Sequence[str], Sequence[tuple[str, str]], Sequence[dict[str, str]]]


@dataclass(frozen=True)
class CodeResult:
    """The verdict on one program.

    Attributes:
        status: ``"passed"`` (every case passed), ``"failed"`` (an assertion, exception, wrong
            output or an exit before the tests ran), ``"timeout"`` (wall-clock deadline or CPU
            limit), ``"memory"`` (memory limit), ``"crashed"`` (killed by a signal, e.g. a
            segfault), ``"syntax_error"``, ``"output_limit"`` (wrote more than ``max_output_mb``)
            or ``"sandbox_error"`` (the sandbox could not run it: not the program's fault).
        tests_passed: test cases passed (assert snippets or stdin/stdout pairs).
        tests_total: test cases in the suite.
        wall_time_s: wall time of the program's process(es), including sandbox set-up.
        stderr_tail: the last 4 KiB of stderr (tracebacks), or the sandbox's error message.
    """

    status: Status
    tests_passed: int
    tests_total: int
    wall_time_s: float
    stderr_tail: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def fraction(self) -> float:
        """Fraction of test cases passed, in [0, 1]."""
        return self.tests_passed / self.tests_total if self.tests_total else 0.0


@dataclass(frozen=True)
class SandboxCapabilities:
    """Which protections the sandbox has on this machine (probed once per process).

    Attributes:
        root: the host runs as root (programs then get a per-run unprivileged uid).
        user_namespace: a user namespace could be created (only tried when not root).
        network_namespace: programs have no network at all (not even 127.0.0.1).
        mount_namespace: programs have their own mount table (private tmpfs and /proc).
        pid_namespace: a program's processes all die with it, daemons included.
        private_tmpfs: the working directory is a size-limited tmpfs nobody else sees.
        private_proc: /proc shows only the program's own processes.
        landlock_abi: the kernel's Landlock ABI version (0: none).
        landlock: writes outside the working directory are forbidden (and, ABI >= 4, TCP;
            ABI >= 6, signals to processes outside the sandbox).
        unprivileged: programs run without the host user's privileges.
        orphan_reaping: without a PID namespace, leftover processes can still be found.
        missing: one sentence per missing protection (empty when all are active).
    """

    root: bool
    user_namespace: bool
    network_namespace: bool
    mount_namespace: bool
    pid_namespace: bool
    private_tmpfs: bool
    private_proc: bool
    landlock_abi: int
    landlock: bool
    unprivileged: bool
    orphan_reaping: bool
    missing: tuple[str, ...]


_capabilities: SandboxCapabilities | None = None


def sandbox_capabilities() -> SandboxCapabilities:
    """The protections the sandbox applies on this machine (the first call probes the kernel).

    When any is missing, the first :func:`run_tests` call says so in a ``RuntimeWarning``.
    """
    global _capabilities
    if _capabilities is None:
        found = _core.sandbox_capabilities()
        found["missing"] = tuple(found["missing"])
        _capabilities = SandboxCapabilities(**found)
    return _capabilities


_warned = False


def _warn_once_about_missing_protections() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    missing = sandbox_capabilities().missing
    if missing:
        warnings.warn(
            "reasonrl's code sandbox runs with reduced isolation on this machine: "
            + "; ".join(missing)
            + ". See reasonrl.code.sandbox_capabilities().",
            RuntimeWarning,
            stacklevel=3,
        )


def _interpreter_paths(interpreter: str | None) -> tuple[str, list[str]]:
    """The interpreter to run and the directories it needs to read.

    The default is this Python. Its prefixes are passed so that the sandbox can make them
    readable when they sit under a directory private to the host user (a Python under /root).
    """
    path = os.path.abspath(interpreter or sys.executable)
    expose = {os.path.dirname(os.path.realpath(path))}
    if interpreter is None:
        expose |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return path, sorted(expose)


def _normalize_tests(index: int, tests: Any) -> Any:
    """``{"input", "output"}`` dicts become pairs; everything else is checked in Rust."""
    if isinstance(tests, (list, tuple)) and tests and isinstance(tests[0], dict):
        try:
            return [(case["input"], case["output"]) for case in tests]
        except (KeyError, TypeError):
            raise InvalidInputError(
                f"invalid `tests`: tests[{index}] mixes dicts without 'input'/'output' keys"
            ) from None
    if isinstance(tests, tuple):
        return list(tests)
    return tests


def run_tests(
    programs: Sequence[str],
    tests: Sequence[TestCases],
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_output_mb: int = 16,
    threads: int | None = None,
    interpreter: str | None = None,
) -> list[CodeResult]:
    """Runs each program against its test cases in the sandbox; one :class:`CodeResult` each.

    Args:
        programs: Python source code, one program each.
        tests: per program, one of
            * a str: Python code run after the program in its ``__main__`` namespace
              (HumanEval: ``test + "\\ncheck(" + entry_point + ")"``) — one test case;
            * a list of str: one test case each (MBPP's ``test_list``); each runs even if an
              earlier one failed, so ``fraction`` counts them;
            * a list of ``(stdin, expected_stdout)`` pairs (or ``{"input", "output"}`` dicts):
              the program runs once per pair; its stdout must equal the expected output token
              by token (whitespace layout, trailing spaces and newlines do not matter). After a
              syntax error or a timeout the remaining pairs are not run.
        timeout_s: wall-clock limit per process (the whole assert suite, or one stdin/stdout
            pair). The CPU-time limit is this rounded up, plus one second.
        memory_mb: address-space limit per process.
        max_output_mb: stdout (and stderr) beyond this ends the run with ``"output_limit"``.
        threads: programs run at once (default: ``reasonrl.get_num_threads()``).
        interpreter: the Python to run (default: this one, ``sys.executable``).

    Raises:
        InvalidInputError: mismatched lengths, an empty test list, a malformed test case,
            or a limit out of range — before anything runs.
    """
    if isinstance(programs, str) or isinstance(tests, str):
        raise InvalidInputError(
            "invalid `programs`/`tests`: expected sequences (one entry per program), got a str"
        )
    for index, program in enumerate(programs):
        if not isinstance(program, str):
            raise InvalidInputError(f"invalid `programs`: entry {index} is a {type(program).__name__}, expected a str")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise InvalidInputError(f"invalid `timeout_s`: expected a number, got {timeout_s!r}")
    if not 0 < timeout_s < float("inf"):
        raise InvalidInputError(f"invalid `timeout_s`: expected a number > 0, got {timeout_s!r}")
    for name, size in (("memory_mb", memory_mb), ("max_output_mb", max_output_mb)):
        if isinstance(size, bool) or not (isinstance(size, int) or (isinstance(size, float) and size.is_integer())):
            raise InvalidInputError(f"invalid `{name}`: expected a whole number, got {size!r}")
        if not 0 < size <= 2**40:  # 2**40 MB: no machine has more
            raise InvalidInputError(f"invalid `{name}`: expected a number > 0 (and at most 2**40 for sizes), got {size!r}")
    _warn_once_about_missing_protections()
    path, expose = _interpreter_paths(interpreter)
    raw = _core.run_code_tests(
        list(programs),
        [_normalize_tests(i, t) for i, t in enumerate(tests)],
        interpreter=path,
        expose=expose,
        timeout_s=float(timeout_s),
        memory_mb=int(memory_mb),
        max_output_mb=int(max_output_mb),
        threads=threads,
    )
    return [
        CodeResult(cast(Status, status), passed, total, wall_time_s, stderr_tail)
        for status, passed, total, wall_time_s, stderr_tail in raw
    ]


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The last fenced code block of ``text`` (```` ```python ```` or a bare ```` ``` ````).

    Blocks tagged with another language (```` ```text ````, ```` ```bash ````) are skipped when
    a Python or untagged block exists. Returns ``""`` when there is no fenced block.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"invalid `text`: expected a str, got {type(text).__name__}")
    blocks = _FENCE.findall(text)
    python = [code for tag, code in blocks if tag.lower() in ("", "python", "py", "python3")]
    chosen = python or [code for _, code in blocks]
    return chosen[-1] if chosen else ""


_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def submitted_program(
    completion: str, *, prompt: str | None = None, entry_point: str | None = None, setup_code: str | None = None
) -> str:
    """The program a code completion submits: the one rule of the training reward
    (`code_reward`, ``code_accuracy``) and of evaluation, so a policy is trained on what it is
    measured by.

    - The code is read inside the last ``<answer>`` block when there is one (a block cut off by
      the token limit too), else in the whole completion: its last fenced block (see
      `extract_code`), else that text as it is (a base model continuing a prompt writes bare
      code).
    - When `prompt` defines `entry_point` (HumanEval: the signature and docstring) and the code
      does not, the code is taken to continue the prompt, which goes first.
    - `setup_code` (MBPP's ``test_setup_code``) goes after the program, just before the tests:
      it may use what the program defines (MBPP 367 and 927 build trees of the solution's
      ``Node`` class).
    """
    answers = _ANSWER_BLOCK.findall(completion)
    text = answers[-1] if answers else completion
    code = extract_code(text) or text
    if entry_point and prompt:
        defines = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
        # Only a prompt that is code (HumanEval: the signature and docstring) is continued; an
        # MBPP prompt is prose, and code that defines its function otherwise (a lambda) stands.
        if defines.search(prompt) and not defines.search(code):
            code = prompt + code
    if setup_code and setup_code.strip():
        code = f"{code.rstrip()}\n\n{setup_code.strip()}\n"
    return code


def code_reward(
    completions: Sequence[Any], tests: Sequence[TestCases], **kwargs: Any
) -> list[float]:
    """Reward = fraction of test cases passed by the program each completion submits (see
    `submitted_program`: the last fenced block, inside the ``<answer>`` block when there is
    one, else the text as it is).

    The signature of a TRL / open-r1 reward function: ``completions`` are strings or chat
    message lists (``[{"role": "assistant", "content": ...}]``); ``tests`` comes from the
    dataset column of that name (see :func:`run_tests` for its forms). The optional per-row
    columns ``prompts``, ``entry_point`` and ``test_setup_code`` complete the program as
    `submitted_program` says (a prompt that is a chat message list is not prepended). Keyword
    arguments that :func:`run_tests` accepts (``timeout_s``, ``memory_mb``, ``threads``, ...)
    are passed on; the other dataset columns TRL passes are ignored. A completion with no code
    at all scores 0 without starting a process.
    """
    options = {
        name: kwargs[name]
        for name in ("timeout_s", "memory_mb", "max_output_mb", "threads", "interpreter")
        if name in kwargs
    }
    columns = {name: kwargs.get(name) for name in ("prompts", "entry_point", "test_setup_code")}
    for name, values in (("completions", completions), ("tests", tests), *columns.items()):
        if isinstance(values, (str, bytes)):  # would be read one character per completion
            raise InvalidInputError(f"invalid `{name}`: expected a list with one entry per completion, got a string")
        if values is not None and name in columns and len(values) != len(completions):
            raise InvalidInputError(
                f"invalid `{name}`: length {len(values)} does not match {len(completions)} completions"
            )

    def column(name: str, i: int) -> str | None:
        values = columns[name]
        value = None if values is None else values[i]
        return value if isinstance(value, str) else None

    programs = [
        submitted_program(
            completion_text(c, i), prompt=column("prompts", i), entry_point=column("entry_point", i),
            setup_code=column("test_setup_code", i),
        )
        for i, c in enumerate(completions)
    ]
    if len(programs) != len(tests):
        raise InvalidInputError(
            f"invalid `tests`: {len(tests)} test suites for {len(programs)} completions"
        )
    # Completions without code score 0 without starting a process.
    with_code = [i for i, program in enumerate(programs) if program.strip()]
    rewards = [0.0] * len(programs)
    if with_code:
        results = run_tests([programs[i] for i in with_code], [tests[i] for i in with_code], **options)
        for i, result in zip(with_code, results):
            rewards[i] = result.fraction
    return rewards
