"""Data sets and prompt templates.

``load_examples`` reads a local file (JSONL, JSON, Parquet, CSV), a folder of split files or a
Hugging Face data set into :class:`Example` objects, through a ready preset for a known
benchmark (``format="gsm8k"``, ``"math"``, ``"math500"``, ``"aime"``, ``"humaneval"``,
``"mbpp"``, ``"mmlu"``) or a column mapping (``fields={"prompt": "question", "answer": "final"}``).
A :class:`PromptTemplate` (``get_template("r1_zero")``, ``"chat"``, ``"plain"`` or a format
string) turns an example into the prompt the model continues.

>>> examples = load_examples("../shared/data/gsm8k", split="test", format="gsm8k", limit=2)  # doctest: +SKIP
>>> get_template("r1_zero").render(examples[0])  # doctest: +SKIP
'A conversation between User and Assistant. ... User: Janet’s ducks lay 16 eggs ... Assistant: <think>'
"""

from __future__ import annotations

from reasonrl.data.examples import Example, ExampleKind, choice_letter, format_choices
from reasonrl.data.formats import FIELD_NAMES, FORMATS, check_fields, gsm8k_answer
from reasonrl.data.loading import FILE_SUFFIXES, load_examples
from reasonrl.data.templates import BUILTIN_TEMPLATES, R1_ZERO_TEMPLATE, PromptTemplate, get_template

__all__ = [
    "BUILTIN_TEMPLATES",
    "Example",
    "ExampleKind",
    "FIELD_NAMES",
    "FILE_SUFFIXES",
    "FORMATS",
    "PromptTemplate",
    "R1_ZERO_TEMPLATE",
    "check_fields",
    "choice_letter",
    "format_choices",
    "get_template",
    "gsm8k_answer",
    "load_examples",
]
