"""Prompt templates: how an ``Example``'s bare problem text becomes the text the model continues.

Built-ins (``get_template(name)``):

- ``"r1_zero"``: the DeepSeek-R1-Zero template (Guo et al. 2025, table 1). It ends with an open
  ``<think>``, so score its completions with ``think_in_prompt=True``.
- ``"chat"``: the tokenizer's own chat template, with an optional system prompt and the
  generation prompt (the assistant turn's opening) appended.
- ``"plain"``: the problem text alone.

Any other string containing ``{prompt}`` is a format string; it may also contain ``{choices}``,
the options as ``A. …`` lines. Only these two placeholders are replaced, so other braces
(``\\boxed{}``, JSON) are left as they are. A multiple-choice example rendered with a template
that has no ``{choices}`` gets its options after the problem text, so the model always sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reasonrl.data.examples import Example, format_choices
from reasonrl.errors import InvalidInputError

__all__ = ["BUILTIN_TEMPLATES", "PromptTemplate", "R1_ZERO_TEMPLATE", "get_template"]

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {prompt}. Assistant: <think>"
)

_PLACEHOLDER = re.compile(r"\{(prompt|choices)\}")


@dataclass(frozen=True)
class PromptTemplate:
    """Renders examples as prompts.

    Attributes:
        format: the text with ``{prompt}`` (and optionally ``{choices}``) placeholders. With
            ``chat=True`` it is the content of the user message.
        chat: wrap the text in the tokenizer's chat template (``render`` then needs a tokenizer).
        system_prompt: the system message of a chat template; ``None`` for none.
        name: a built-in's name, for logs.
    """

    format: str
    chat: bool = False
    system_prompt: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.format, str) or "{prompt}" not in self.format:
            raise InvalidInputError(
                f"invalid `format`: a prompt template must contain '{{prompt}}', got {self.format!r}"
            )
        if self.system_prompt is not None and not self.chat:
            raise InvalidInputError(
                "invalid `system_prompt`: only a chat template has a system message (template 'chat', "
                "which applies the tokenizer's own); or put the text into the format string"
            )

    @property
    def think_in_prompt(self) -> bool:
        """Whether the prompt itself opens ``<think>`` (the format reward must know)."""
        return self.format.rstrip().endswith("<think>")

    def render(self, example: Example, tokenizer: Any = None) -> str:
        """The prompt text for ``example``.

        Args:
            example: the problem.
            tokenizer: a ``transformers`` tokenizer; needed (with a ``chat_template``) when this
                is a chat template, ignored otherwise.

        Raises:
            InvalidInputError: a chat template without a tokenizer, or whose tokenizer has no
                chat template.
        """
        text = self._fill(example)
        if not self.chat:
            return text
        if tokenizer is None:
            raise InvalidInputError(
                "invalid `tokenizer`: the 'chat' template renders with the tokenizer's chat "
                "template, so `render` needs the tokenizer"
            )
        if not getattr(tokenizer, "chat_template", None):
            raise InvalidInputError(
                f"invalid `tokenizer`: {type(tokenizer).__name__} has no chat template (base "
                "models usually have none); use the 'r1_zero' or 'plain' template or a format "
                "string, or set `tokenizer.chat_template`"
            )
        messages = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
        messages.append({"role": "user", "content": text})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(rendered)

    def _fill(self, example: Example) -> str:
        choices = format_choices(example.choices) if example.choices else ""
        prompt = example.prompt
        if choices and "{choices}" not in self.format:
            prompt = f"{prompt.rstrip()}\n\n{choices}"
        values = {"prompt": prompt, "choices": choices}
        # One pass over the template, so placeholder-like text inside the problem stays literal.
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.format)


BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {
    "r1_zero": PromptTemplate(R1_ZERO_TEMPLATE, name="r1_zero"),
    "chat": PromptTemplate("{prompt}", chat=True, name="chat"),
    "plain": PromptTemplate("{prompt}", name="plain"),
}


def get_template(name_or_format: str | PromptTemplate, *, system_prompt: str | None = None) -> PromptTemplate:
    """A built-in template by name (``"r1_zero"``, ``"chat"``, ``"plain"``) or a format string.

    Args:
        name_or_format: a built-in name, a string containing ``{prompt}``, or a template
            (returned as it is).
        system_prompt: the system message for the ``"chat"`` template.

    Raises:
        InvalidInputError: neither a built-in name nor a format string with ``{prompt}``, or a
            ``system_prompt`` for a template that is not a chat template.
    """
    if isinstance(name_or_format, PromptTemplate):
        template = name_or_format
    elif isinstance(name_or_format, str) and name_or_format in BUILTIN_TEMPLATES:
        template = BUILTIN_TEMPLATES[name_or_format]
    elif isinstance(name_or_format, str) and "{prompt}" in name_or_format:
        template = PromptTemplate(name_or_format)
    else:
        raise InvalidInputError(
            f"invalid `name_or_format`: {name_or_format!r} is neither a built-in template "
            f"({', '.join(sorted(BUILTIN_TEMPLATES))}) nor a format string containing '{{prompt}}'"
        )
    if system_prompt is not None:
        template = PromptTemplate(template.format, chat=template.chat, system_prompt=system_prompt, name=template.name)
    return template
