"""The bars on real data: every HumanEval and MBPP reference solution passes its tests in the
sandbox, and the same programs with their function bodies replaced by ``return None`` fail."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import pytest

from reasonrl.code import run_tests


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def humaneval(data_dir: Path) -> list[dict]:
    path = data_dir / "humaneval" / "test.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return read_jsonl(path)


def mbpp(data_dir: Path) -> list[dict]:
    path = data_dir / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return read_jsonl(path)


def humaneval_test(row: dict) -> str:
    return row["test"] + f"\ncheck({row['entry_point']})\n"


def mbpp_program(code: str, row: dict) -> str:
    # The setup code (two problems) builds inputs from classes the solution defines.
    return code + "\n" + row["test_setup_code"] + "\n"


def with_bodies_returning_none(code: str) -> str:
    """Every top-level function of ``code`` reduced to ``return None``."""
    with warnings.catch_warnings():  # some solutions have invalid escapes like "\d"
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(code)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [ast.Return(value=ast.Constant(value=None))]
    return ast.unparse(tree)


def failures(results, rows, key) -> list[str]:
    return [f"{row[key]}: {r.status} {r.stderr_tail[-300:]}" for r, row in zip(results, rows)]


def test_humaneval_canonical_solutions_all_pass(data_dir):
    rows = humaneval(data_dir)
    assert len(rows) == 164
    programs = [row["prompt"] + row["canonical_solution"] for row in rows]
    results = run_tests(programs, [humaneval_test(row) for row in rows], timeout_s=20.0)
    bad = [f for f, r in zip(failures(results, rows, "task_id"), results) if not r.passed]
    assert bad == [], bad


def test_humaneval_with_return_none_all_fail(data_dir):
    rows = humaneval(data_dir)
    # The prompt ends with the signature and docstring of the entry point.
    programs = [row["prompt"] + "    return None\n" for row in rows]
    results = run_tests(programs, [humaneval_test(row) for row in rows], timeout_s=20.0)
    wrong = [f for f, r in zip(failures(results, rows, "task_id"), results) if r.status != "failed"]
    assert wrong == [], wrong
    assert all(r.fraction == 0.0 for r in results)


@pytest.mark.slow
def test_mbpp_reference_solutions_all_pass(data_dir):
    rows = mbpp(data_dir)
    assert len(rows) == 974
    programs = [mbpp_program(row["code"], row) for row in rows]
    results = run_tests(programs, [row["test_list"] for row in rows], timeout_s=20.0)
    bad = [f for f, r in zip(failures(results, rows, "task_id"), results) if not r.passed]
    assert bad == [], bad
    assert all(r.tests_total == len(row["test_list"]) for r, row in zip(results, rows))


@pytest.mark.slow
def test_mbpp_with_return_none_all_fail(data_dir):
    rows = mbpp(data_dir)
    programs = [mbpp_program(with_bodies_returning_none(row["code"]), row) for row in rows]
    results = run_tests(programs, [row["test_list"] for row in rows], timeout_s=20.0)
    wrong = [f for f, r in zip(failures(results, rows, "task_id"), results) if r.passed]
    assert wrong == [], wrong
