"""``Example``: one problem of a data set, in the one shape every stage of reasonrl reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reasonrl.errors import InvalidInputError

__all__ = ["Example", "ExampleKind", "choice_letter", "format_choices"]

ExampleKind = Literal["choice", "math", "code", "none"]


def choice_letter(index: int) -> str:
    """``0 → "A"``, ``1 → "B"``, … (at most 26 options)."""
    if not 0 <= index < 26:
        raise InvalidInputError(f"invalid `index`: option {index} has no letter (0..25 allowed)")
    return chr(ord("A") + index)


def format_choices(choices: Sequence[str]) -> str:
    """The options as the lines ``A. …``, ``B. …``, the form multiple-choice prompts use."""
    return "\n".join(f"{choice_letter(i)}. {text}" for i, text in enumerate(choices))


@dataclass(frozen=True)
class Example:
    """One problem. ``prompt`` is the bare problem text; a ``PromptTemplate`` wraps it.

    Which gold fields are set says how a response is checked (see ``kind``):

    - math: ``answer``, the final answer (``"18"``, ``"\\frac{1}{2}"``);
    - multiple choice: ``choices`` and ``gold_choice``, the index of the right option;
    - code: ``tests`` (assertion code as one string, or several test snippets) and optionally
      ``entry_point``, the function the tests call.

    ``meta`` holds everything else the source had (subject, level, reference solution, ...).
    It is left out of the hash, so examples can be set members while ``meta`` stays a dict.
    """

    id: str
    prompt: str
    answer: str | None = None
    choices: tuple[str, ...] | None = None
    gold_choice: int | None = None
    tests: str | tuple[str, ...] | None = None
    entry_point: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidInputError(
                f"invalid `prompt`: example {self.id!r}: expected str, got {type(self.prompt).__name__}"
            )
        # Lists are accepted for convenience and stored as tuples, so examples stay hashable.
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.tests is not None and not isinstance(self.tests, (str, tuple)):
            object.__setattr__(self, "tests", tuple(self.tests))
        if self.gold_choice is not None:
            if self.choices is None:
                raise InvalidInputError(
                    f"invalid `gold_choice`: example {self.id!r} has a gold choice but no `choices`"
                )
            if not 0 <= self.gold_choice < len(self.choices):
                raise InvalidInputError(
                    f"invalid `gold_choice`: example {self.id!r}: {self.gold_choice} is not an index "
                    f"into its {len(self.choices)} choices"
                )

    @property
    def kind(self) -> ExampleKind:
        """How a response is checked: ``"choice"``, ``"math"``, ``"code"``, or ``"none"``."""
        if self.choices is not None and self.gold_choice is not None:
            return "choice"
        if self.answer is not None:
            return "math"
        if self.tests is not None:
            return "code"
        return "none"

    @property
    def gold_letter(self) -> str | None:
        """The right option as a letter (``"C"``), for multiple-choice examples."""
        return None if self.gold_choice is None else choice_letter(self.gold_choice)
