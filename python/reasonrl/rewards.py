"""Rule-based rewards for reasoning RL, scored for a whole batch in one GIL-free Rust call.

A :class:`RewardSpec` is a list of named, weighted components. ``spec.score(completions, ...)``
returns every component's values and their weighted total, so a trainer can log each one.

Component kinds and their parameters (defaults in brackets):

=================  ==========================================================================
kind               value per completion
=================  ==========================================================================
math_accuracy      1 if the final answer equals the gold answer (``reasonrl.math.verify``).
                   ``timeout_s`` [1.0]; ``answer_tag`` [False]: grade only the inside of a
                   closed ``<answer>…</answer>`` block (no block → 0), so the template cannot
                   be dropped without losing accuracy. Needs ``answers``.
choice_accuracy    1 if the chosen option is the gold one. Needs ``choices`` and
                   ``gold_choices`` (index or letter).
format             the R1 template ``<think>…</think><answer>…</answer>``: ``strict`` [True]
                   (nothing else around or between) or lenient; ``think_in_prompt`` [False]
                   when the prompt already opened ``<think>``.
tag_count          0.25 per template tag present exactly once (``think_in_prompt``).
language           share of the chain of thought's words in ``target`` [``"latin"``] script
                   (``"en"``, ``"zh"``, ``"cjk"``, ``"ru"``, …); math spans are skipped.
kimi_length        Kimi k1.5, per prompt group: λ = 0.5 − (len − min)/(max − min); right
                   answers get λ, wrong ones min(0, λ); all lengths equal → 0. Needs
                   ``group_ids`` and an accuracy component.
cosine_length      right answers: ``correct_short`` [1.0] at length 0 down to ``correct_long``
                   [0.5] at ``max_len`` [1000]; wrong: ``wrong_short`` [-1.0] up to
                   ``wrong_long`` [-0.5]; half a cosine in between. Needs an accuracy component.
overlong           DAPO soft overlong punishment: 0 up to ``max_len`` [4096] − ``cache``
                   [512], a linear ramp to −1 at ``max_len``, −1 beyond.
repetition         ``max_penalty`` [−1.0] × share of repeated word ``n``-grams [3].
code_accuracy      share of the test cases the submitted program passes, run in the sandbox
                   (``reasonrl.code``): the last fenced block (in the ``<answer>`` block if
                   any), else the text; the problem's prompt goes first when the code
                   continues it (HumanEval), ``test_setup_code`` after it (as evaluation reads
                   it, ``reasonrl.code.submitted_program``); ``timeout_s`` [5], ``memory_mb``
                   [512]. Needs ``tests``; ``prompts``, ``entry_point`` and ``test_setup_code``
                   (columns) when the data set has them.
python             a Python function with TRL's reward signature,
                   ``fn(completions, **kwargs) -> list[float | None]`` (``is_accuracy``):
                   ``Component(..., fn=f)``, or in a config ``function: module:name`` or
                   ``function: path/to/file.py:name``.
=================  ==========================================================================

Lengths are token counts when ``lengths`` is given, else characters. The accuracy component
(the first ``*_accuracy`` one, or a ``python`` one marked ``is_accuracy``) decides which answers
are right for the length components; an answer is right when its accuracy is 1.

A ``None`` from a Python reward becomes NaN; a NaN component makes the total NaN, and
``reasonrl.compute_advantages`` leaves NaN rewards out. Everything else that is wrong with the
input (missing columns, mismatched lengths, ``None`` completions, unknown kinds or parameters)
raises :class:`reasonrl.InvalidInputError` before any work is done.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from reasonrl import _core
from reasonrl.errors import InvalidInputError

__all__ = ["Component", "RewardScores", "RewardSpec", "chosen_options", "completion_text"]

RUST_KINDS = frozenset(
    {
        "math_accuracy",
        "choice_accuracy",
        "format",
        "tag_count",
        "language",
        "kimi_length",
        "cosine_length",
        "overlong",
        "repetition",
    }
)

RewardFunction = Callable[..., Sequence[float | None]]
# Kinds computed in Python before the Rust call, and the parameters each accepts.
PYTHON_KINDS = {"python": {"is_accuracy"}, "code_accuracy": {"timeout_s", "memory_mb"}}


@dataclass(frozen=True)
class Component:
    """One term of a reward: ``weight`` × the value of ``kind`` (see the module docs)."""

    name: str
    kind: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)
    fn: RewardFunction | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.kind, str):
            raise InvalidInputError(
                f"invalid `components`: a component's name and kind must be strings, got {self.name!r} and {self.kind!r}"
            )
        if isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real) or not math.isfinite(self.weight):
            raise InvalidInputError(
                f"invalid `components`: component {self.name!r}: weight must be a finite number, got {self.weight!r}"
            )
        if not isinstance(self.params, Mapping):
            raise InvalidInputError(
                f"invalid `components`: component {self.name!r}: params must be a mapping, got {type(self.params).__name__}"
            )
        if self.kind == "python" and not callable(self.fn):
            raise InvalidInputError(
                f"invalid `components`: component {self.name!r}: kind 'python' needs a callable `fn` "
                "(in a config: `function: module:name`)"
            )
        if self.kind in PYTHON_KINDS:
            unknown = set(self.params) - PYTHON_KINDS[self.kind]
            if unknown:
                raise InvalidInputError(
                    f"invalid `components`: component {self.name!r}: unknown parameter(s) {sorted(unknown)}"
                )
        elif self.kind not in RUST_KINDS:
            raise InvalidInputError(
                f"invalid `components`: component {self.name!r}: unknown kind {self.kind!r}; "
                f"expected one of {sorted(RUST_KINDS | set(PYTHON_KINDS))}"
            )
        if self.kind != "python" and self.fn is not None:
            raise InvalidInputError(
                f"invalid `components`: component {self.name!r}: only kind 'python' takes `fn`"
            )


@dataclass(frozen=True)
class RewardScores:
    """Rewards of one batch: ``total`` (N,) and each component's (N,) values, by name."""

    total: np.ndarray[Any, np.dtype[np.float64]]
    components: dict[str, np.ndarray[Any, np.dtype[np.float64]]]

    def metrics(self, prefix: str = "reward/") -> dict[str, float]:
        """Batch means for logging, NaN values (rewards that could not be computed) left out: NaN
        only where no row has a value. `missing`: the share of rows whose total is NaN."""
        out = {f"{prefix}total": _mean_of_computed(self.total)}
        for name, values in self.components.items():
            out[f"{prefix}{name}"] = _mean_of_computed(values)
        out[f"{prefix}missing"] = float(np.isnan(self.total).mean()) if self.total.size else 0.0
        return out

    @staticmethod
    def concat(parts: list[RewardScores]) -> RewardScores:
        """The scores of several batches, rows in order (every part has the same components)."""
        return RewardScores(
            total=np.concatenate([p.total for p in parts]),
            components={name: np.concatenate([p.components[name] for p in parts]) for name in parts[0].components},
        )


def _mean_of_computed(values: np.ndarray) -> float:
    """The mean of the non-NaN values; NaN when there are none (0.0 for an empty batch)."""
    if not values.size:
        return 0.0
    computed = values[~np.isnan(values)]
    return float(computed.mean()) if computed.size else float("nan")


def _integer_ids(group_ids: Any) -> list[int]:
    """Group ids as ints; a fractional, non-finite or non-numeric id is an error, never truncated."""
    ids = np.asarray(group_ids)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or np.issubdtype(ids.dtype, np.floating)):
        raise InvalidInputError(f"invalid `group_ids`: expected a 1-D sequence of integers, got dtype {ids.dtype} and shape {ids.shape}")
    if np.issubdtype(ids.dtype, np.floating) and not (np.isfinite(ids).all() and (ids == np.round(ids)).all()):
        raise InvalidInputError("invalid `group_ids`: expected integers, got fractional or non-finite values")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int64).max // 2):
        raise InvalidInputError(f"invalid `group_ids`: expected ids in [0, 2**62], got {ids.min()}..{ids.max()}")
    return [int(g) for g in ids.tolist()]


def _function_named(component: str, reference: Any) -> RewardFunction:
    """The function a config names as ``module:name`` (importable) or ``path/to/file.py:name``
    (a relative path is from the current folder)."""
    where = f"invalid `config`: component {component!r}: function"
    if not isinstance(reference, str) or reference.count(":") != 1 or not all(reference.split(":")):
        raise InvalidInputError(f"{where}: expected `module:name` or `path/to/file.py:name`, got {reference!r}")
    source, attribute = reference.split(":")
    try:
        if source.endswith(".py"):
            path = Path(source).expanduser().resolve()
            if not path.is_file():
                raise InvalidInputError(f"{where}: file not found: {path}")
            module = _module_from_file(path)
        else:
            module = importlib.import_module(source)
    except InvalidInputError:
        raise
    except ModuleNotFoundError as error:
        raise InvalidInputError(
            f"{where}: cannot import {source!r} ({error}); a file is named `path/to/file.py:{attribute}`"
        ) from None
    except Exception as error:  # the user's module failed while loading: say which and why
        raise InvalidInputError(f"{where}: loading {source!r} failed: {type(error).__name__}: {error}") from None
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise InvalidInputError(f"{where}: {source!r} has no function {attribute!r}")
    return cast(RewardFunction, fn)


def _module_from_file(path: Path) -> Any:
    """The module of a reward file, loaded once per process (the config is checked, then the
    trainer builds its rewards: the file's top level runs once). It is registered in
    `sys.modules` under a name of its own, as an imported module is, so that dataclasses and
    pickling (worker processes) find it."""
    name = f"reasonrl_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def chosen_options(
    completions: Sequence[Any], choices: Sequence[Sequence[str]], *, threads: int | None = None
) -> list[int | None]:
    """The 0-based option each completion chose among its own `choices`, or None where none can
    be read off: the reading ``choice_accuracy`` scores (one GIL-free Rust call), and what a
    majority vote over multiple-choice samples counts."""
    if isinstance(completions, (str, bytes)):
        raise InvalidInputError("invalid `completions`: expected a list of completions, got a single string")
    if isinstance(choices, (str, bytes)) or any(isinstance(c, (str, bytes)) for c in choices):
        raise InvalidInputError("invalid `choices`: each entry must be a list of options, not a string")
    texts = [completion_text(c, i) for i, c in enumerate(completions)]
    return _core.chosen_options(texts, [list(c) for c in choices], threads=threads)


def completion_text(completion: Any, index: int = 0) -> str:
    """The text of a completion given as a string or as a chat-message list.

    For a message list (``[{"role": "assistant", "content": "..."}]``, as TRL passes
    conversational completions) the assistant messages' contents are joined.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        parts = [m.get("content") for m in completion if m.get("role", "assistant") == "assistant"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    raise InvalidInputError(
        f"invalid `completions`: completions[{index}] is {type(completion).__name__}; expected a "
        "string or a list of chat messages with string 'content'"
    )


def _choice_index(gold: Any, index: int) -> int:
    if isinstance(gold, (int, np.integer)) and not isinstance(gold, bool):
        return int(gold)
    if isinstance(gold, str) and len(gold.strip().strip("()")) == 1 and gold.strip().strip("()").isalpha():
        return ord(gold.strip().strip("()").upper()) - ord("A")
    raise InvalidInputError(
        f"invalid `gold_choices`: gold_choices[{index}] = {gold!r}; expected an option index or a letter"
    )


class RewardSpec:
    """A weighted sum of reward components, scored in one parallel, GIL-free call.

    >>> spec = RewardSpec([
    ...     Component("accuracy", "math_accuracy"),
    ...     Component("format", "format", 0.5, {"strict": False}),
    ... ])
    >>> scores = spec.score(["<think>2+2</think><answer>4</answer>"], answers=["4"])
    >>> scores.total.tolist(), scores.components["accuracy"].tolist()
    ([1.5], [1.0])
    """

    def __init__(self, components: Sequence[Component | Mapping[str, Any]]) -> None:
        built = [c if isinstance(c, Component) else Component(**c) for c in components]
        if not built:
            raise InvalidInputError("invalid `components`: a reward needs at least one component")
        names = [c.name for c in built]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(f"invalid `components`: duplicate component names {duplicates}")
        self.components: tuple[Component, ...] = tuple(built)
        self.__name__ = "reasonrl_reward"  # TRL logs reward functions by __name__
        # Validate the Rust side now (unknown parameters, missing accuracy, ...) rather than on
        # the first batch: scoring an empty batch runs every check and no work.
        _core.score_rewards(
            self._rust_components(), [], answers=[], choices=[], gold_choices=[], group_ids=[],
            lengths=[], external=[(c.name, []) for c in self._python()],
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, Any]]) -> RewardSpec:
        """From ``{name: {"kind": ..., "weight": ..., other params}}`` (the YAML form)."""
        if not isinstance(config, Mapping):
            raise InvalidInputError(f"invalid `config`: expected a mapping of components, got {type(config).__name__}")
        components = []
        for name, entry in config.items():
            if not isinstance(entry, Mapping):
                raise InvalidInputError(
                    f"invalid `config`: component {name!r}: expected a mapping such as {{kind: math_accuracy}}, got {entry!r}"
                )
            entry = dict(entry)
            kind = entry.pop("kind", name)
            weight = entry.pop("weight", 1.0)
            try:
                weight = float(weight)  # YAML reads 1e-1 (no dot) as a string
            except (TypeError, ValueError):
                raise InvalidInputError(f"invalid `config`: component {name!r}: weight must be a number, got {weight!r}") from None
            fn = None
            if kind == "python":
                if "function" not in entry:
                    raise InvalidInputError(
                        f"invalid `config`: component {name!r}: kind 'python' needs `function`, the reward "
                        "function as `module:name` or `path/to/file.py:name`"
                    )
                fn = _function_named(name, entry.pop("function"))
            components.append(Component(name, kind, weight, entry, fn=fn))
        return cls(components)

    @classmethod
    def r1_zero(cls, *, think_in_prompt: bool = True) -> RewardSpec:
        """DeepSeek-R1-Zero: answer accuracy plus the strict template format."""
        return cls([
            Component("accuracy", "math_accuracy"),
            Component("format", "format", 1.0, {"think_in_prompt": think_in_prompt}),
        ])

    @classmethod
    def r1(cls, *, language: str = "en", think_in_prompt: bool = True) -> RewardSpec:
        """DeepSeek-R1's reasoning RL: accuracy, format and language consistency of the CoT."""
        return cls([
            Component("accuracy", "math_accuracy"),
            Component("format", "format", 1.0, {"think_in_prompt": think_in_prompt}),
            Component("language", "language", 0.2, {"target": language}),
        ])

    @classmethod
    def kimi_long2short(cls, *, think_in_prompt: bool = True, length_weight: float = 1.0) -> RewardSpec:
        """Kimi k1.5's long→short stage: accuracy and format plus the group length penalty."""
        return cls([
            Component("accuracy", "math_accuracy"),
            Component("format", "format", 1.0, {"think_in_prompt": think_in_prompt}),
            Component("length", "kimi_length", length_weight),
        ])

    def _python(self) -> list[Component]:
        return [c for c in self.components if c.kind in PYTHON_KINDS]

    def _rust_components(self) -> list[tuple[str, str, float, dict[str, Any]]]:
        out = []
        for c in self.components:
            if c.kind in PYTHON_KINDS:
                is_accuracy = c.kind == "code_accuracy" or bool(c.params.get("is_accuracy", False))
                out.append((c.name, "external", c.weight, {"is_accuracy": is_accuracy}))
            else:
                out.append((c.name, c.kind, float(c.weight), dict(c.params)))
        return out

    def score(
        self,
        completions: Sequence[Any],
        *,
        prompts: Sequence[Any] | None = None,
        answers: Sequence[str] | None = None,
        choices: Sequence[Sequence[str]] | None = None,
        gold_choices: Sequence[int | str] | None = None,
        group_ids: Sequence[int] | np.ndarray[Any, Any] | None = None,
        lengths: Sequence[float] | np.ndarray[Any, Any] | None = None,
        tests: Sequence[Any] | None = None,
        threads: int | None = None,
        **columns: Any,
    ) -> RewardScores:
        """Scores a batch.

        Args:
            completions: N strings, or N chat-message lists.
            prompts: passed on to Python reward functions only.
            answers: N gold answers (``math_accuracy``).
            choices, gold_choices: N option lists and the right option (index or letter).
            group_ids: N prompt-group ids (``kimi_length``).
            lengths: N completion lengths in tokens (characters are counted otherwise).
            tests: N test suites (``code_accuracy``; the forms ``reasonrl.code.run_tests`` takes).
            threads: worker threads for this call.
            **columns: extra data-set columns, passed on to Python reward functions.
        """
        if isinstance(completions, (str, bytes)):
            raise InvalidInputError("invalid `completions`: expected a list of completions, got a single string")
        texts = [completion_text(c, i) for i, c in enumerate(completions)]
        # Cheap shape checks first, so a bad batch fails before any Python reward runs.
        given = {"prompts": prompts, "answers": answers, "choices": choices,
                 "gold_choices": gold_choices, "group_ids": group_ids, "lengths": lengths, "tests": tests}
        for argument, values in given.items():
            if values is None:
                continue
            if isinstance(values, (str, bytes, Mapping)):  # would be read one character / key per completion
                raise InvalidInputError(
                    f"invalid `{argument}`: expected a sequence with one entry per completion, got a {type(values).__name__}"
                )
            if len(values) != len(texts):
                raise InvalidInputError(
                    f"invalid `{argument}`: length {len(values)} does not match {len(texts)} completions"
                )
        if choices is not None and any(isinstance(c, (str, bytes)) for c in choices):
            raise InvalidInputError("invalid `choices`: each entry must be a list of options, not a string")
        external = []
        for c in self._python():
            if c.kind == "code_accuracy":
                if tests is None:
                    raise InvalidInputError(f"invalid `tests`: component {c.name!r} needs `tests`")
                from reasonrl.code import code_reward  # the sandbox; one GIL-free batch call

                # The problem's prompt, entry point and setup code complete the program (see
                # `submitted_program`), as evaluation does.
                values = code_reward(
                    texts, list(tests), prompts=prompts, entry_point=columns.get("entry_point"),
                    test_setup_code=columns.get("test_setup_code"), threads=threads, **dict(c.params),
                )
            else:
                assert c.fn is not None
                kwargs = dict(columns)
                if answers is not None:
                    kwargs.setdefault("answer", answers)
                values = c.fn(completions=list(completions), prompts=prompts, **kwargs)
            external.append((c.name, self._python_values(c.name, values, len(texts))))
        matrix, total = _core.score_rewards(
            self._rust_components(),
            texts,
            answers=None if answers is None else list(answers),
            choices=None if choices is None else [list(c) for c in choices],
            gold_choices=None if gold_choices is None else [_choice_index(g, i) for i, g in enumerate(gold_choices)],
            group_ids=None if group_ids is None else _integer_ids(group_ids),
            lengths=None if lengths is None else [float(x) for x in np.asarray(lengths).tolist()],
            external=external,
            threads=threads,
        )
        return RewardScores(total=total, components={c.name: matrix[k] for k, c in enumerate(self.components)})

    @staticmethod
    def _python_values(name: str, values: Any, n: int) -> list[float]:
        if isinstance(values, (str, bytes)):
            raise InvalidInputError(f"invalid reward function: {name!r} returned a string, not a list of numbers")
        try:
            out = [float("nan") if v is None else float(v) for v in values]
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidInputError(
                f"invalid reward function: {name!r} returned a non-number ({error})"
            ) from None
        if any(math.isinf(v) for v in out):  # None / NaN is "no reward"; ±inf would poison the group
            raise InvalidInputError(f"invalid reward function: {name!r} returned an infinite reward")
        if len(out) != n:
            raise InvalidInputError(
                f"invalid reward function: {name!r} returned {len(out)} values for {n} completions"
            )
        return out

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        """TRL reward-function form: the totals as a list, so a spec can be passed to TRL.

        TRL passes data-set columns as keyword arguments; an ``answer`` or ``solution`` column
        serves as ``answers`` when that is not given. TRL also passes ``prompts``: without
        ``group_ids``, completions of the same prompt form a group (for ``kimi_length``); and
        ``completion_ids``: without ``lengths``, the length components count those tokens, as in
        training, not characters.
        """
        if kwargs.get("lengths") is None and kwargs.get("completion_ids") is not None:
            kwargs["lengths"] = [len(ids) for ids in kwargs["completion_ids"]]
        if "answers" not in kwargs:
            for column in ("answer", "solution"):
                if column in kwargs:
                    kwargs["answers"] = kwargs[column]
                    break
        if kwargs.get("group_ids") is None and kwargs.get("prompts") is not None:
            # A chat prompt is a list of messages: its repr is the key (equal prompts, equal reprs).
            group_of: dict[str, int] = {}
            kwargs["group_ids"] = [group_of.setdefault(repr(p), len(group_of)) for p in kwargs["prompts"]]
        try:
            return self.score(completions, **kwargs).total.tolist()
        except InvalidInputError as error:
            if "needs `group_ids`" in str(error):
                raise InvalidInputError(f"{error}: pass `prompts` (TRL does) or `group_ids`") from None
            raise

    def __repr__(self) -> str:
        terms = " + ".join(f"{c.weight:g}·{c.name}[{c.kind}]" for c in self.components)
        return f"RewardSpec({terms})"
