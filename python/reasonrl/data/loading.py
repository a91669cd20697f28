"""``load_examples``: a local file, a folder of split files or a Hugging Face data set → examples.

Every argument is checked, and the file looked up, before a byte of data is read, so a typo in
a config fails at once rather than after a model has been loaded.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reasonrl.data.examples import Example
from reasonrl.data.formats import FORMATS, MBPP_SPLITS, RowConverter, mapped_converter
from reasonrl.errors import InvalidInputError

__all__ = ["FILE_SUFFIXES", "load_examples"]

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")

DEFAULT_FIELDS = {"prompt": "prompt", "answer": "answer"}


def load_examples(
    source: str | os.PathLike[str],
    *,
    format: str | None = None,
    fields: Mapping[str, str] | None = None,
    split: str | None = None,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> list[Example]:
    """Loads a data set as a list of :class:`Example`.

    Args:
        source: one of
            - a local ``.jsonl`` / ``.json`` (an array of objects, or JSON lines) / ``.parquet``
              (needs ``pyarrow``) / ``.csv`` file;
            - a folder holding one file per split (``train.jsonl``, ``test.jsonl``): give ``split``;
            - a Hugging Face data set name, ``"openai/gsm8k"``, or with a configuration,
              ``"openai/gsm8k:main"`` (needs ``datasets``; ``split`` defaults to ``"train"``).
        format: a ready preset for a known benchmark (the files in ``../shared/data``):
            ``"gsm8k"`` (gold = the text after the last ``####``, commas removed),
            ``"math"`` / ``"math500"`` (``problem``, ``answer``; rows with an empty answer are
            skipped and counted), ``"aime"``, ``"humaneval"`` (``prompt``; tests = ``test`` +
            ``check(entry_point)``), ``"mbpp"`` (``text`` and the tests it must pass;
            ``split`` picks the standard task-id split: ``train``, ``validation``, ``test``,
            ``prompt``), ``"mmlu"`` (``question``, ``choices``, ``answer`` index).
        fields: for any other table, ``{Example field: column}``, e.g.
            ``{"prompt": "question", "answer": "final"}``; the fields are ``id``, ``prompt``,
            ``answer``, ``choices``, ``gold_choice``, ``tests``, ``entry_point``. Unmapped columns
            go into ``meta``. Without ``format`` and ``fields``: ``{"prompt": "prompt",
            "answer": "answer"}``.
        split: see ``source`` and ``format="mbpp"``.
        limit: keep at most this many examples (after shuffling).
        shuffle_seed: shuffle with this seed (the same seed gives the same order).

    Returns:
        The examples, in file order unless shuffled. Rows without a gold answer (an empty
        ``answer`` where one is expected) are skipped; their number is logged as a warning.

    Raises:
        InvalidInputError: an unknown format, ``format`` and ``fields`` both given, a bad field
            mapping, a missing file, an unknown file type, a row that lacks a mapped column (the
            message names the column and the row number) or that is not valid JSON (line number).
        ImportError: a Parquet file without ``pyarrow``, or a hub name without ``datasets``.
    """
    convert = _converter(format, fields)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"invalid `limit`: expected a positive integer or None, got {limit!r}")
    if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int)):
        raise InvalidInputError(f"invalid `shuffle_seed`: expected an integer or None, got {shuffle_seed!r}")
    if split is not None and not isinstance(split, str):
        raise InvalidInputError(f"invalid `split`: expected a string or None, got {split!r}")
    task_ids: range | None = None
    if format == "mbpp" and split is not None:
        if split not in MBPP_SPLITS:
            raise InvalidInputError(
                f"invalid `split`: MBPP's splits are {sorted(MBPP_SPLITS)}, got {split!r}"
            )
        task_ids = MBPP_SPLITS[split]

    rows, id_prefix = _open_source(source, split, mbpp_split=task_ids is not None)

    examples: list[Example] = []
    skipped = 0
    # Without shuffling, reading can stop as soon as `limit` examples are in.
    stop_at = limit if shuffle_seed is None else None
    for number, row in enumerate(rows, start=1):
        try:
            example = convert(row, number, id_prefix)
        except InvalidInputError as error:
            raise InvalidInputError(_with_source(str(error), source, format, fields)) from None
        if example is None:
            skipped += 1
            continue
        if task_ids is not None and _task_id(row, number, source) not in task_ids:
            continue
        examples.append(example)
        if stop_at is not None and len(examples) >= stop_at:
            break
    if skipped:
        logger.warning("%s: skipped %d row(s) with an empty gold answer", source, skipped)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(examples)
    return examples if limit is None else examples[:limit]


def _with_source(message: str, source: Any, format: str | None, fields: Mapping[str, str] | None) -> str:
    """A row's error, with the data it came from and, for a missing column under the default
    mapping, how to map the data's own columns."""
    message = message.replace("invalid data: ", f"invalid data: {source}: ", 1)
    if "has no column" in message and format is None and fields is None:
        message += (
            f"; for a known data set give its format (one of {sorted(FORMATS)}), "
            "else map its columns with `fields` (e.g. {'prompt': 'question', 'answer': 'solution'})"
        )
    return message


def _task_id(row: dict[str, Any], number: int, source: Any) -> int:
    """An MBPP row's integer `task_id`, or an error naming the row."""
    value = row.get("task_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise InvalidInputError(f"invalid data: {source} row {number}: `task_id` must be an integer, got {value!r}")


def _converter(format: str | None, fields: Mapping[str, str] | None) -> RowConverter:
    if format is not None and fields is not None:
        raise InvalidInputError(
            "invalid `fields`: give either `format` (a preset) or `fields` (a column mapping), not both"
        )
    if format is not None:
        if not isinstance(format, str) or format not in FORMATS:
            raise InvalidInputError(
                f"invalid `format`: unknown format {format!r}; expected one of {sorted(FORMATS)} "
                "or None with a `fields` mapping"
            )
        return FORMATS[format]
    return mapped_converter(DEFAULT_FIELDS if fields is None else fields)


def _open_source(
    source: str | os.PathLike[str], split: str | None, *, mbpp_split: bool
) -> tuple[Iterator[dict[str, Any]], str]:
    """Finds the data and returns (rows, id prefix); rows are read lazily."""
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidInputError(
            f"invalid `source`: expected a path or a data set name, got {type(source).__name__}"
        )
    path = Path(source).expanduser()
    if path.is_dir():
        if split is None:
            raise InvalidInputError(
                f"invalid `split`: {path} is a folder; give `split` to pick its '<split>.jsonl' "
                "(or .json/.parquet/.csv) file"
            )
        candidates = [path / f"{split}{suffix}" for suffix in FILE_SUFFIXES]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InvalidInputError(
                f"invalid `split`: no file for split {split!r} in {path} "
                f"(looked for {', '.join(c.name for c in candidates)})"
            )
        return _read_file(found), f"{path.name}/{split}"
    if path.is_file():
        if split is not None and not mbpp_split:
            raise InvalidInputError(
                f"invalid `split`: {path} is a single file; `split` applies to a folder of split "
                "files, a Hugging Face data set, or format='mbpp'"
            )
        return _read_file(path), f"{path.resolve().parent.name}/{path.stem}"  # resolved: "cold.jsonl" has a folder too
    looks_local = (
        isinstance(source, os.PathLike)
        or path.suffix.lower() in FILE_SUFFIXES
        or str(source).startswith(("/", ".", "~"))
    )
    if looks_local:
        raise InvalidInputError(f"invalid `source`: file not found: {path}")
    return _read_hub(str(source), split), f"{source}/{split or 'train'}"


def _read_file(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InvalidInputError(
            f"invalid `source`: {path.name}: unknown file type {suffix!r}; expected one of {list(FILE_SUFFIXES)}"
        )
    if suffix == ".parquet":
        # Checked now, not when the generator first runs, so the error comes before any work.
        _import_pyarrow()
    return _decoded(path, _READERS[suffix](path))


def _decoded(path: Path, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`rows`, with a file that is not UTF-8 text reported by name rather than as a bare
    UnicodeDecodeError."""
    try:
        yield from rows
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"invalid data: {path.name} is not UTF-8 text (byte {error.start} of a chunk: {error.reason})"
        ) from None


def read_jsonl(path: Path, what: str = "data") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of a JSON-lines file; blank lines are skipped. A line
    that is not a JSON object is an InvalidInputError naming `what`, the file and the line."""
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InvalidInputError(
                    f"invalid {what}: {path.name} line {line_number} is not valid JSON ({error.msg})"
                ) from None
            except (RecursionError, ValueError) as error:  # nested too deep; an integer of > 4300 digits
                raise InvalidInputError(
                    f"invalid {what}: {path.name} line {line_number} cannot be read ({type(error).__name__}: {error})"
                ) from None
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f"invalid {what}: {path.name} line {line_number} is a JSON {type(row).__name__}, "
                    "expected a JSON object"
                )
            yield line_number, row


def _read_jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    return (row for _, row in read_jsonl(path))


def _read_json(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # one object per line under a .json name
            yield from _read_jsonl_rows(path)
            return
        raise InvalidInputError(
            f"invalid data: {path.name} is not valid JSON (line {error.lineno}: {error.msg})"
        ) from None
    if not isinstance(data, list):
        raise InvalidInputError(f"invalid data: {path.name}: expected a JSON array of objects")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise InvalidInputError(
                f"invalid data: {path.name} row {number}: expected a JSON object, got {type(row).__name__}"
            )
        yield row


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file with a header line. A row whose cell count differs from the header's
    (a missing or extra comma, or a quote left open that swallowed the lines after it) is an
    error naming its line, never a silently merged or shortened row."""
    import csv

    # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the first name.
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise InvalidInputError(f"invalid data: {path.name}: the header repeats column(s) {repeated}")
            for row in reader:
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    raise InvalidInputError(
                        f"invalid data: {path.name} line {reader.line_num}: {len(row)} cells, the header has "
                        f"{len(header)} (a missing or extra comma, or an unclosed quote?)"
                    )
                yield dict(zip(header, row))
        except csv.Error as error:
            hint = " (a quote opened and never closed?)" if "end of data" in str(error) else ""
            raise InvalidInputError(f"invalid data: {path.name} line {reader.line_num}: {error}{hint}") from None


def _import_pyarrow() -> Any:
    try:
        import pyarrow.parquet  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise ImportError(
            "reading Parquet files needs pyarrow: `pip install pyarrow`"
        ) from None
    return pyarrow.parquet


def _read_parquet(path: Path) -> Iterator[dict[str, Any]]:
    parquet = _import_pyarrow()
    import pyarrow  # type: ignore[import-untyped, unused-ignore]

    try:
        for batch in parquet.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    except (pyarrow.ArrowException, OSError) as error:
        raise InvalidInputError(f"invalid data: {path.name} is not a readable Parquet file ({error})") from None


_READERS = {".jsonl": _read_jsonl_rows, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def _read_hub(name: str, split: str | None) -> Iterator[dict[str, Any]]:
    try:
        import datasets  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise ImportError(
            f"{name!r} is not a local file, so it is taken as a Hugging Face data set name, and "
            "loading those needs the `datasets` package: `pip install datasets`"
        ) from None
    repo, _, config = name.partition(":")
    try:
        dataset = datasets.load_dataset(repo, config or None, split=split or "train")
    except Exception as error:  # offline, no such data set, no such split: one message that says which
        raise InvalidInputError(
            f"invalid `source`: {name!r} is not a local file ({', '.join(FILE_SUFFIXES)}) or folder, and "
            f"loading it as a Hugging Face data set failed: {type(error).__name__}: {error}"
        ) from error
    return (dict(row) for row in dataset)
