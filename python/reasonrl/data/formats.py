"""How a row of a known benchmark, or of any table with a field mapping, becomes an ``Example``.

Each converter takes one row (a dict), its 1-based row number (for error messages) and the
prefix for ids the source has none of, and returns an ``Example`` — or ``None`` for a row that
cannot be used for training or evaluation (an empty gold answer), which the loader counts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reasonrl.data.examples import Example
from reasonrl.errors import InvalidInputError

__all__ = [
    "FIELD_NAMES", "FORMATS", "MBPP_SPLITS", "RowConverter", "check_fields", "gsm8k_answer", "mapped_converter",
]

RowConverter = Callable[[Mapping[str, Any], int, str], "Example | None"]

FIELD_NAMES = ("id", "prompt", "answer", "choices", "gold_choice", "tests", "entry_point")


def _column(row: Mapping[str, Any], name: str, number: int) -> Any:
    if name not in row:
        raise InvalidInputError(
            f"invalid data: row {number} has no column {name!r} (it has {sorted(row)})"
        )
    return row[name]


def _text(row: Mapping[str, Any], name: str, number: int) -> str:
    value = _column(row, name, number)
    if not isinstance(value, str):
        raise InvalidInputError(
            f"invalid data: row {number}, column {name!r}: expected text, got {type(value).__name__}"
        )
    return value


def _missing(answer: Any) -> bool:
    """No gold answer: None, blank text, or NaN (JSON's non-standard NaN, a spreadsheet's empty
    cell) — never the gold answer "nan"."""
    if isinstance(answer, float) and math.isnan(answer):
        return True
    return answer is None or not str(answer).strip()


def _rest(row: Mapping[str, Any], used: Sequence[str]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in used}


def gsm8k_answer(solution: str) -> str:
    """GSM8K's gold value: the text after the last ``####``, thousands commas removed."""
    _, marker, final = solution.rpartition("####")
    return final.replace(",", "").strip() if marker else ""


def _gsm8k(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
    solution = _text(row, "answer", number)
    answer = gsm8k_answer(solution)
    if not answer:
        return None
    meta = _rest(row, ("question", "answer"))
    meta["solution"] = solution
    return Example(f"{id_prefix}/{number - 1}", _text(row, "question", number), answer=answer, meta=meta)


def _problem_with_answer(id_column: str) -> RowConverter:
    """MATH / MATH-500 (`unique_id`) and AIME (`id`): a problem, a final answer, an id column."""

    def convert(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
        answer = _column(row, "answer", number)
        if _missing(answer):
            return None
        row_id = row.get(id_column) or f"{id_prefix}/{number - 1}"
        meta = _rest(row, ("problem", "answer", id_column))
        return Example(str(row_id), _text(row, "problem", number), answer=str(answer).strip(), meta=meta)

    return convert


def _humaneval(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
    entry_point = _text(row, "entry_point", number)
    # The test code only defines check(candidate); calling it is what runs the assertions.
    tests = f"{_text(row, 'test', number).rstrip()}\n\n\ncheck({entry_point})\n"
    meta = _rest(row, ("task_id", "prompt", "entry_point", "test"))
    return Example(
        str(_column(row, "task_id", number)),
        _text(row, "prompt", number),
        tests=tests,
        entry_point=entry_point,
        meta=meta,
    )


_DEF = re.compile(r"^def\s+(\w+)\s*\(", re.MULTILINE)


def _mbpp(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
    tests = _column(row, "test_list", number)
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise InvalidInputError(
            f"invalid data: row {number}, column 'test_list': expected a list of strings"
        )
    text = _text(row, "text", number)
    # As in the MBPP paper, the prompt shows the tests: they are the only place that names the
    # function the model must write.
    prompt = text.rstrip() + "\nYour code should pass these tests:\n" + "\n".join(tests)
    reference = str(row.get("code") or "")
    entry_point = next((name for name in _DEF.findall(reference) if tests and name in tests[0]), None)
    meta = _rest(row, ("task_id", "text", "test_list"))
    return Example(
        f"mbpp/{_column(row, 'task_id', number)}",
        prompt,
        tests=tuple(tests),
        entry_point=entry_point,
        meta=meta,
    )


def _mmlu(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
    choices = _column(row, "choices", number)
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise InvalidInputError(
            f"invalid data: row {number}, column 'choices': expected a list of strings"
        )
    gold = _gold_choice(_column(row, "answer", number), "answer", number)
    meta = _rest(row, ("question", "choices", "answer"))
    if "type" in meta:
        meta["subject"] = meta.pop("type")
    return Example(
        f"{id_prefix}/{number - 1}",
        _text(row, "question", number),
        choices=tuple(choices),
        gold_choice=gold,
        meta=meta,
    )


FORMATS: dict[str, RowConverter] = {
    "gsm8k": _gsm8k,
    "math": _problem_with_answer("unique_id"),
    "math500": _problem_with_answer("unique_id"),
    "aime": _problem_with_answer("id"),
    "humaneval": _humaneval,
    "mbpp": _mbpp,
    "mmlu": _mmlu,
}

# MBPP's standard split by task id (Austin et al. 2021).
MBPP_SPLITS: dict[str, range] = {
    "prompt": range(1, 11),
    "test": range(11, 511),
    "validation": range(511, 601),
    "train": range(601, 975),
}


def _gold_choice(value: Any, column: str, number: int) -> int:
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif isinstance(value, str):
        stripped = value.strip().strip("()")
        if stripped.isdigit():
            return int(stripped)
        if len(stripped) == 1 and "A" <= stripped.upper() <= "Z":
            return ord(stripped.upper()) - ord("A")
    raise InvalidInputError(
        f"invalid data: row {number}, column {column!r}: {value!r} is neither an option index nor a letter"
    )


def _choices(value: Any, column: str, number: int) -> tuple[str, ...]:
    if isinstance(value, str):
        # CSV cells hold lists as JSON text.
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
        return tuple(value)
    raise InvalidInputError(
        f"invalid data: row {number}, column {column!r}: expected a list of strings (a JSON list in CSV)"
    )


def _tests(value: Any, column: str, number: int) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if not value.lstrip().startswith("["):
            return value
        try:  # a CSV cell holding a JSON list of tests
            value = json.loads(value)
        except json.JSONDecodeError:
            return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return tuple(value)
    raise InvalidInputError(
        f"invalid data: row {number}, column {column!r}: expected test code or a list of test strings"
    )


def check_fields(fields: Mapping[str, str]) -> None:
    """Checks a field mapping ``{Example field: column}`` before any data is read."""
    if not isinstance(fields, Mapping):
        raise InvalidInputError(
            f"invalid `fields`: expected a mapping such as {{'prompt': 'question'}}, got {type(fields).__name__}"
        )
    unknown = sorted(set(fields) - set(FIELD_NAMES))
    if unknown:
        raise InvalidInputError(
            f"invalid `fields`: unknown field(s) {unknown}; expected some of {list(FIELD_NAMES)}"
        )
    if "prompt" not in fields:
        raise InvalidInputError("invalid `fields`: the mapping needs a 'prompt' column")
    for key, column in fields.items():
        if not isinstance(column, str) or not column:
            raise InvalidInputError(f"invalid `fields`: {key!r} must name a column, got {column!r}")
    if "gold_choice" in fields and "choices" not in fields:
        raise InvalidInputError("invalid `fields`: 'gold_choice' needs a 'choices' column too")


def mapped_converter(fields: Mapping[str, str]) -> RowConverter:
    """A converter for any table: ``fields`` maps ``Example`` field names to column names.

    Every mapped column must be present in every row. A row whose mapped ``answer`` is empty
    (``None`` or blank) is skipped and counted; the other columns go into ``meta``.
    """
    check_fields(fields)
    used = tuple(fields.values())

    def convert(row: Mapping[str, Any], number: int, id_prefix: str) -> Example | None:
        values = {key: _column(row, column, number) for key, column in fields.items()}
        answer = values.get("answer")
        if "answer" in fields:
            if _missing(answer):
                return None
            if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
                raise InvalidInputError(
                    f"invalid data: row {number}, column {fields['answer']!r}: expected text or a "
                    f"number, got {type(answer).__name__}"
                )
            answer = str(answer).strip()
        prompt = values["prompt"]
        if not isinstance(prompt, str):
            raise InvalidInputError(
                f"invalid data: row {number}, column {fields['prompt']!r}: expected text, got {type(prompt).__name__}"
            )
        row_id = values.get("id")
        entry_point = values.get("entry_point")
        return Example(
            id=f"{id_prefix}/{number - 1}" if row_id is None or row_id == "" else str(row_id),
            prompt=prompt,
            answer=answer,
            choices=_choices(values["choices"], fields["choices"], number) if "choices" in fields else None,
            gold_choice=(
                _gold_choice(values["gold_choice"], fields["gold_choice"], number)
                if "gold_choice" in fields else None
            ),
            tests=_tests(values["tests"], fields["tests"], number) if "tests" in fields else None,
            entry_point=None if entry_point is None else str(entry_point),
            meta=_rest(row, used),
        )

    return convert
