"""load_examples on the real benchmark files and on small local files; prompt templates."""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reasonrl import InvalidInputError
from reasonrl.data import (
    R1_ZERO_TEMPLATE,
    Example,
    PromptTemplate,
    format_choices,
    get_template,
    gsm8k_answer,
    load_examples,
)

# --------------------------------------------------------------------------------------------
# Presets on the real files (row counts from ../shared/data/README.md)


def test_gsm8k_splits(data_dir: Path) -> None:
    train = load_examples(data_dir / "gsm8k", split="train", format="gsm8k")
    test = load_examples(data_dir / "gsm8k", split="test", format="gsm8k")
    assert (len(train), len(test)) == (7473, 1319)
    assert test[0].answer == "18" and test[0].prompt.startswith("Janet")
    assert test[0].id == "gsm8k/test/0" and "<<" in test[0].meta["solution"]
    for example in train + test:
        assert re.fullmatch(r"-?\d+(\.\d+)?", example.answer or ""), example
        assert example.kind == "math"
    assert len({e.id for e in train}) == len(train)


def test_gsm8k_answer_takes_the_last_marker_and_drops_commas() -> None:
    assert gsm8k_answer("a #### 3\nthen #### 1,234,567") == "1234567"
    assert gsm8k_answer("no marker") == ""


@pytest.mark.parametrize("name", ["math500", "math"])
def test_math_presets(data_dir: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    path = data_dir / ("math500/test.jsonl" if name == "math500" else "math/train.jsonl")
    with caplog.at_level(logging.WARNING, logger="reasonrl.data"):
        examples = load_examples(path, format=name)
    if name == "math500":
        assert len(examples) == 500
        assert examples[0].id == "test/precalculus/807.json"
        assert not caplog.records
    else:
        # 12,000 rows, of which 2 have an empty \boxed{} answer: skipped and reported.
        assert len(examples) == 11998
        assert "skipped 2 row(s)" in caplog.text
    subjects = Counter(e.meta["subject"] for e in examples)
    assert len(subjects) == 7
    for example in examples:
        assert example.answer and example.answer.strip() == example.answer
        assert example.prompt and "problem" not in example.meta and "solution" in example.meta
        assert example.meta["level"] in (1, 2, 3, 4, 5, None)


@pytest.mark.parametrize("year", [2024, 2025])
def test_aime(data_dir: Path, year: int) -> None:
    examples = load_examples(data_dir / f"aime{year}" / "test.jsonl", format="aime")
    assert len(examples) == 30
    assert examples[0].id == f"{year}-I-1" and examples[-1].id == f"{year}-II-15"
    for example in examples:
        assert example.answer is not None and 0 <= int(example.answer) <= 999
        assert example.answer == str(int(example.answer))


def test_humaneval(data_dir: Path) -> None:
    examples = load_examples(data_dir / "humaneval" / "test.jsonl", format="humaneval")
    assert len(examples) == 164
    assert [e.id for e in examples[:2]] == ["HumanEval/0", "HumanEval/1"]
    for example in examples:
        assert example.kind == "code" and isinstance(example.tests, str)
        assert example.tests.rstrip().endswith(f"check({example.entry_point})")
        assert "def check(candidate)" in example.tests
        assert f"def {example.entry_point}(" in example.prompt
        assert "canonical_solution" in example.meta


def test_mbpp_and_its_standard_splits(data_dir: Path) -> None:
    path = data_dir / "mbpp" / "mbpp.jsonl"
    examples = load_examples(path, format="mbpp")
    assert len(examples) == 974
    for example in examples:
        assert isinstance(example.tests, tuple) and len(example.tests) == 3
        assert all(t.lstrip().startswith("assert") for t in example.tests)
        assert example.entry_point and example.entry_point in example.tests[0]
        assert example.tests[0] in example.prompt  # the prompt shows the tests
    sizes = {split: len(load_examples(path, format="mbpp", split=split))
             for split in ("prompt", "test", "validation", "train")}
    assert sizes == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    test = load_examples(path, format="mbpp", split="test")
    assert (test[0].id, test[-1].id) == ("mbpp/11", "mbpp/510")


def test_mmlu_stem(data_dir: Path) -> None:
    examples = load_examples(data_dir / "mmlu_stem" / "test.jsonl", format="mmlu")
    assert len(examples) == 3018
    subjects = Counter(e.meta["subject"] for e in examples)
    assert len(subjects) == 18 and subjects["elementary_mathematics"] == 378
    for example in examples:
        assert example.kind == "choice" and example.choices is not None
        assert len(example.choices) == 4 and example.gold_choice in (0, 1, 2, 3)
        assert example.answer is None


def test_limit_and_shuffle_are_reproducible(data_dir: Path) -> None:
    path = data_dir / "gsm8k"
    first = load_examples(path, split="test", format="gsm8k", limit=5)
    assert [e.id for e in first] == [f"gsm8k/test/{i}" for i in range(5)]
    a = load_examples(path, split="test", format="gsm8k", limit=20, shuffle_seed=7)
    b = load_examples(path, split="test", format="gsm8k", limit=20, shuffle_seed=7)
    c = load_examples(path, split="test", format="gsm8k", limit=20, shuffle_seed=8)
    assert a == b and a != c and len(a) == 20
    assert a != load_examples(path, split="test", format="gsm8k", limit=20)


# --------------------------------------------------------------------------------------------
# The generic path on small local files


ROWS: list[dict[str, Any]] = [
    {"question": "1 + 1?", "final": 2, "level": "easy"},
    {"question": "Half of 1?", "final": "1/2", "level": "easy"},
    {"question": "No answer yet", "final": "", "level": "hard"},
    {"question": "3 * 3?", "final": "9", "level": "easy"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_field_mapping_on_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "toy.jsonl", ROWS)
    examples = load_examples(path, fields={"prompt": "question", "answer": "final"})
    assert [e.answer for e in examples] == ["2", "1/2", "9"]  # the empty answer is skipped
    assert examples[0] == Example(f"{tmp_path.name}/toy/0", "1 + 1?", answer="2", meta={"level": "easy"})
    assert [e.id.rsplit("/", 1)[1] for e in examples] == ["0", "1", "3"]  # ids keep row numbers


def test_a_file_named_from_its_own_folder_gets_the_folder_in_its_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "toy.jsonl", ROWS)
    monkeypatch.chdir(tmp_path)
    examples = load_examples("toy.jsonl", fields={"prompt": "question", "answer": "final"})
    assert examples[0].id == f"{tmp_path.name}/toy/0"  # not "/toy/0"


def test_default_fields_are_prompt_and_answer(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "answer": "a", "id": "x"}])
    (example,) = load_examples(path)
    assert (example.prompt, example.answer, example.meta) == ("p", "a", {"id": "x"})


def test_json_array_and_json_lines_named_json(tmp_path: Path) -> None:
    array = tmp_path / "array.json"
    array.write_text(json.dumps(ROWS), encoding="utf-8")
    lines = write_jsonl(tmp_path / "lines.json", ROWS)
    fields = {"prompt": "question", "answer": "final"}
    assert [e.answer for e in load_examples(array, fields=fields)] == ["2", "1/2", "9"]
    assert [e.answer for e in load_examples(lines, fields=fields)] == ["2", "1/2", "9"]


def test_csv_with_choices_tests_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "mc.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["qid", "q", "options", "gold", "extra"])
        writer.writeheader()
        writer.writerow({"qid": "q1", "q": "Pick B", "options": json.dumps(["a", "b"]), "gold": "B", "extra": "x"})
        writer.writerow({"qid": "q2", "q": "Pick A", "options": json.dumps(["a", "b"]), "gold": "0", "extra": "y"})
    examples = load_examples(
        path, fields={"id": "qid", "prompt": "q", "choices": "options", "gold_choice": "gold"}
    )
    assert [(e.id, e.choices, e.gold_choice, e.kind) for e in examples] == [
        ("q1", ("a", "b"), 1, "choice"),
        ("q2", ("a", "b"), 0, "choice"),
    ]
    assert examples[0].meta == {"extra": "x"} and examples[0].gold_letter == "B"


def test_code_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "code.jsonl", [
        {"p": "write f", "t": ["assert f() == 1", "assert f() != 2"], "ep": "f"},
        {"p": "write g", "t": "assert g() == 1", "ep": "g"},
    ])
    examples = load_examples(path, fields={"prompt": "p", "tests": "t", "entry_point": "ep"})
    assert examples[0].tests == ("assert f() == 1", "assert f() != 2")
    assert examples[1].tests == "assert g() == 1" and examples[1].entry_point == "g"
    assert all(e.kind == "code" for e in examples)


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: Parquet cannot be tested")
    import pyarrow.parquet as pq

    path = tmp_path / "toy.parquet"
    pq.write_table(pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in ROWS]), path)
    examples = load_examples(path, fields={"prompt": "question", "answer": "final"}, limit=2)
    assert [(e.prompt, e.answer) for e in examples] == [("1 + 1?", "2"), ("Half of 1?", "1/2")]


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "toy.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_examples(path)


def test_folder_with_split(tmp_path: Path) -> None:
    folder = tmp_path / "toyset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS[:2])
    examples = load_examples(folder, split="train", fields={"prompt": "question", "answer": "final"})
    assert [e.id for e in examples] == ["toyset/train/0", "toyset/train/1"]


def test_hub_name_without_datasets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_examples("openai/gsm8k:main", format="gsm8k", split="test")


def test_hub_name_goes_to_datasets_with_config_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(name: str, config: str | None, split: str) -> list[dict[str, Any]]:
        calls.append((name, config, split))
        return [{"question": "q", "answer": "work #### 1,000"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    (example,) = load_examples("openai/gsm8k:main", format="gsm8k", split="test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert (example.id, example.answer) == ("openai/gsm8k:main/test/0", "1000")
    load_examples("someone/data", fields={"prompt": "question"})
    assert calls[-1] == ("someone/data", None, "train")


def test_a_name_that_is_neither_a_file_nor_a_loadable_data_set_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(name: str, config: str | None, split: str) -> list[dict[str, Any]]:
        raise ConnectionError("Couldn't reach 'nope' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(InvalidInputError, match=r"'nope' is not a local file \(\.jsonl.*ConnectionError: Couldn't reach"):
        load_examples("nope")


def test_cli_reports_a_missing_optional_package_without_a_traceback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from reasonrl.cli import main

    monkeypatch.setitem(sys.modules, "datasets", None)
    assert main(["eval", "--model", "m", "--data", "someone/data", "--split", "test"]) == 1
    assert "pip install datasets" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Errors, each before any data is used


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "gsm9k"}, "unknown format 'gsm9k'"),
        ({"format": "gsm8k", "fields": {"prompt": "q"}}, "not both"),
        ({"fields": {"answer": "final"}}, "needs a 'prompt' column"),
        ({"fields": {"prompt": "question", "solution": "x"}}, r"unknown field\(s\) \['solution'\]"),
        ({"fields": {"prompt": ""}}, "must name a column"),
        ({"fields": {"prompt": "q", "gold_choice": "g"}}, "needs a 'choices' column"),
        ({"fields": {"prompt": "question"}, "limit": 0}, "invalid `limit`"),
        ({"fields": {"prompt": "question"}, "shuffle_seed": "x"}, "invalid `shuffle_seed`"),
        ({"format": "mbpp", "split": "dev"}, "MBPP's splits"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    path = write_jsonl(tmp_path / "toy.jsonl", ROWS)
    with pytest.raises(InvalidInputError, match=message):
        load_examples(path, **kwargs)


def test_argument_errors_come_before_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown format"):
        load_examples(tmp_path / "missing.jsonl", format="nope")


@pytest.mark.parametrize("source", ["missing.jsonl", "sub/missing.csv", "./missing"])
def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="file not found"):
        load_examples(source)
    with pytest.raises(InvalidInputError, match="file not found"):
        load_examples(tmp_path / source)


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n")
    with pytest.raises(InvalidInputError, match="unknown file type '.txt'"):
        load_examples(path)


def test_missing_column_names_the_column_and_the_row(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"question": "a", "final": "1"}, {"question": "b", "final": "2"}, {"q": "c", "final": "3"}]
    path = write_jsonl(tmp_path / "toy.jsonl", rows)
    with pytest.raises(InvalidInputError, match=r"row 3 has no column 'question'"):
        load_examples(path, fields={"prompt": "question", "answer": "final"})
    with pytest.raises(InvalidInputError, match=r"row 1 has no column 'answer'"):
        load_examples(path, format="math")
    # Under the default mapping, the error names the file and says how to map its columns.
    with pytest.raises(InvalidInputError, match=r"invalid data: .*toy.jsonl: row 1 has no column 'prompt'.*give its format.*`fields`"):
        load_examples(path)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(InvalidInputError, match="broken.parquet is not a readable Parquet file"):
        load_examples(path)


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b", "answer": \n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="line 3 is not valid JSON"):
        load_examples(path)
    path.write_text('["not", "an", "object"]\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="line 1 is a JSON list, expected a JSON object"):
        load_examples(path)


def test_wrong_value_types(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"q": 5, "c": "not a list", "g": "?"}])
    with pytest.raises(InvalidInputError, match="row 1, column 'q': expected text"):
        load_examples(path, fields={"prompt": "q"})
    path = write_jsonl(tmp_path / "t.jsonl", [{"q": "x", "c": "not a list", "g": "1"}])
    with pytest.raises(InvalidInputError, match="row 1, column 'c': expected a list of strings"):
        load_examples(path, fields={"prompt": "q", "choices": "c", "gold_choice": "g"})
    path = write_jsonl(tmp_path / "t.jsonl", [{"q": "x", "c": ["a", "b"], "g": "?"}])
    with pytest.raises(InvalidInputError, match="neither an option index nor a letter"):
        load_examples(path, fields={"prompt": "q", "choices": "c", "gold_choice": "g"})
    path = write_jsonl(tmp_path / "t.jsonl", [{"q": "x", "c": ["a", "b"], "g": 2}])
    with pytest.raises(InvalidInputError, match="not an index into its 2 choices"):
        load_examples(path, fields={"prompt": "q", "choices": "c", "gold_choice": "g"})


def test_split_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "toy.jsonl", ROWS)
    with pytest.raises(InvalidInputError, match="is a single file"):
        load_examples(path, split="train", fields={"prompt": "question"})
    with pytest.raises(InvalidInputError, match="is a folder; give `split`"):
        load_examples(tmp_path, fields={"prompt": "question"})
    with pytest.raises(InvalidInputError, match="no file for split 'dev'"):
        load_examples(tmp_path, split="dev", fields={"prompt": "question"})


def test_example_checks_and_hashing() -> None:
    example = Example("a", "q", choices=["x", "y"], gold_choice=1, meta={"s": 1})  # type: ignore[arg-type]
    assert example.choices == ("x", "y") and example.kind == "choice"
    same = Example("a", "q", choices=("x", "y"), gold_choice=1, meta={"s": 1})
    assert len({example, same}) == 1  # hashable although meta is a dict
    with pytest.raises(InvalidInputError, match="no `choices`"):
        Example("a", "q", gold_choice=0)
    assert Example("a", "q").kind == "none"


# --------------------------------------------------------------------------------------------
# Prompt templates

MATH = Example("m", "What is 1 + 1?", answer="2")
CHOICE = Example("c", "Which is even?", choices=("3", "4"), gold_choice=1)


def test_r1_zero_template() -> None:
    template = get_template("r1_zero")
    text = template.render(MATH)
    assert text == R1_ZERO_TEMPLATE.replace("{prompt}", "What is 1 + 1?")
    assert text.startswith("A conversation between User and Assistant. The user asks a question")
    assert text.endswith("User: What is 1 + 1?. Assistant: <think>")
    assert template.think_in_prompt and not get_template("plain").think_in_prompt


def test_plain_and_format_string_templates() -> None:
    assert get_template("plain").render(MATH) == "What is 1 + 1?"
    boxed = get_template("Solve: {prompt}\nPut the answer in \\boxed{}.")
    assert boxed.render(MATH) == "Solve: What is 1 + 1?\nPut the answer in \\boxed{}."
    tricky = Example("t", "Is {choices} a placeholder? {x}", answer="no")
    assert get_template("Q: {prompt}").render(tricky) == "Q: Is {choices} a placeholder? {x}"


def test_choices_are_rendered_as_lettered_lines() -> None:
    assert format_choices(("3", "4")) == "A. 3\nB. 4"
    explicit = get_template("{prompt}\nOptions:\n{choices}\nAnswer:")
    assert explicit.render(CHOICE) == "Which is even?\nOptions:\nA. 3\nB. 4\nAnswer:"
    # A template without {choices} still shows the options after the question.
    assert get_template("plain").render(CHOICE) == "Which is even?\n\nA. 3\nB. 4"


def test_template_errors() -> None:
    with pytest.raises(InvalidInputError, match="neither a built-in template"):
        get_template("r1-zero")
    with pytest.raises(InvalidInputError, match="must contain"):
        PromptTemplate("no placeholder")
    with pytest.raises(InvalidInputError, match="only a chat template"):
        get_template("plain", system_prompt="Be brief.")


def tiny_tokenizer(chat_template: str | None):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "what": 1}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    tokenizer.chat_template = chat_template
    return tokenizer


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_uses_the_tokenizer() -> None:
    tokenizer = tiny_tokenizer(CHAT_TEMPLATE)
    assert get_template("chat").render(MATH, tokenizer) == "<|user|>What is 1 + 1?\n<|assistant|>"
    with_system = get_template("chat", system_prompt="Think step by step.")
    assert with_system.render(CHOICE, tokenizer) == (
        "<|system|>Think step by step.\n<|user|>Which is even?\n\nA. 3\nB. 4\n<|assistant|>"
    )


def test_chat_template_errors() -> None:
    with pytest.raises(InvalidInputError, match="needs the tokenizer"):
        get_template("chat").render(MATH)
    with pytest.raises(InvalidInputError, match="has no chat template"):
        get_template("chat").render(MATH, tiny_tokenizer(None))


def test_a_stage_reads_the_splits_its_config_names(tmp_path: Path) -> None:
    from reasonrl.config import stage_from_dict
    from reasonrl.pipeline import load_stage_data

    folder = tmp_path / "toyset"
    folder.mkdir()
    for split, n in (("train", 3), ("test", 2)):
        rows = (json.dumps({"prompt": f"{split} {i}", "answer": "1"}) for i in range(n))
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    data = {"train": str(folder), "split": "train", "eval": str(folder), "eval_split": "test"}
    config = stage_from_dict({"model": {"name_or_path": "m"}, "data": data, "reward": {"a": {"kind": "format"}}})
    train, heldout = load_stage_data(config)
    assert sorted(e.prompt for e in train) == ["train 0", "train 1", "train 2"]  # (shuffled)
    assert sorted(e.prompt for e in heldout) == ["test 0", "test 1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # A quote left open swallows the lines after it: an error, not fewer rows.
        (b'prompt,answer\n"a, b",1\n"unterminated,2\nc,3\nd,4\n', r"bad\.csv line 5: .*quote opened and never closed"),
        (b"prompt,answer\na,1\nb\n", r"bad\.csv line 3: 1 cells, the header has 2"),
        (b"prompt,answer\na,1,extra\n", r"bad\.csv line 2: 3 cells, the header has 2"),
        (b"prompt,answer,prompt\na,1,b\n", r"bad\.csv: the header repeats column\(s\) \['prompt'\]"),
        (b"prompt,answer\na,\xff\n", r"bad\.csv is not UTF-8 text"),
    ],
)
def test_a_malformed_csv_is_an_error_naming_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        load_examples(path)


def test_a_csv_with_a_byte_order_mark_and_blank_lines_loads(tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    path.write_bytes(b'\xef\xbb\xbfprompt,answer\n"a, b",1\n\nc,3\n')
    assert [(e.prompt, e.answer) for e in load_examples(path)] == [("a, b", "1"), ("c", "3")]


def test_a_jsonl_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"prompt": "caf\xe9", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"latin1\.jsonl is not UTF-8 text"):
        load_examples(path)


@pytest.mark.parametrize(
    ("line", "reason"),
    [('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": "1"}', "RecursionError"),
     ('{"prompt": "a", "answer": ' + "9" * 5000 + "}", "ValueError: Exceeds the limit")],
)
def test_a_jsonl_line_json_cannot_read_is_named(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n' + line + "\n")
    with pytest.raises(InvalidInputError, match=rf"odd\.jsonl line 2 cannot be read \({reason}"):
        load_examples(path)


def test_mbpp_split_with_a_task_id_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mbpp.jsonl"
    row = {"task_id": "abc", "text": "Write f.", "code": "def f(): pass", "test_list": ["assert f() is None"]}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(InvalidInputError, match=r"row 1: `task_id` must be an integer, got 'abc'"):
        load_examples(path, format="mbpp", split="test")
    with pytest.raises(InvalidInputError, match=r"invalid `format`: unknown format \['gsm8k'\]"):
        load_examples(path, format=["gsm8k"])  # type: ignore[arg-type]


def test_a_nan_answer_is_a_missing_answer_not_the_text_nan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "with_nan.jsonl"
    path.write_text('{"prompt": "a", "answer": NaN}\n{"prompt": "b", "answer": "2"}\n')
    assert [(e.prompt, e.answer) for e in load_examples(path)] == [("b", "2")]
    assert "skipped 1 row(s) with an empty gold answer" in caplog.text
