"""The demo's synthetic task: adding two-digit numbers, with verbose chains of thought.

Three kinds of text come out of it, one per stage of the R1 story in miniature:

- ``pretraining_corpus``: bare equations, digit facts and worked sums without any template
  (``47+38=85``, ``7+8=15``, ``47+38: 7+8=15 4+3+1=8 so 85``) — what a base model has read;
- ``cold_start_examples``: a few long, verbose chains of thought in the R1 template, each with
  a random number of redundant re-checks of its answer — the cold-start SFT data;
- ``problems``: train and held-out questions with gold answers, for GRPO and evaluation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from reasonrl.data import Example

DETOUR = " check {answer}."
PROMPT_TEMPLATE = "{prompt}=?<think>"


@dataclass(frozen=True)
class AdditionTask:
    seed: int = 0
    low: int = 10
    high: int = 99
    min_detours: int = 0
    max_detours: int = 4

    def _pairs(self, rng: random.Random, n: int) -> list[tuple[int, int]]:
        return [(rng.randint(self.low, self.high), rng.randint(self.low, self.high)) for _ in range(n)]

    def problems(self, n_train: int, n_heldout: int) -> tuple[list[Example], list[Example]]:
        """Disjoint train and held-out problems (held-out pairs never appear in training)."""
        rng = random.Random(self.seed)
        all_pairs = [(a, b) for a in range(self.low, self.high + 1) for b in range(self.low, self.high + 1)]
        rng.shuffle(all_pairs)
        heldout, train = all_pairs[:n_heldout], all_pairs[n_heldout : n_heldout + n_train]
        make = lambda split, pairs: [  # noqa: E731
            Example(id=f"{split}-{i}", prompt=f"{a}+{b}", answer=str(a + b)) for i, (a, b) in enumerate(pairs)
        ]
        return make("train", train), make("heldout", heldout)

    @staticmethod
    def steps(a: int, b: int) -> str:
        """Digit by digit with the carry: ``7+5=12 2+4+1=7 so 72``."""
        ones = a % 10 + b % 10
        carry = ones // 10
        tens = a // 10 + b // 10 + carry
        return f"{a % 10}+{b % 10}={ones} {a // 10}+{b // 10}" + (f"+{carry}" if carry else "") + f"={tens} so {a + b}"

    def reasoning(self, a: int, b: int, rng: random.Random, detours: int | None = None) -> str:
        """A verbose chain of thought and answer for a + b, in the R1 template (after ``<think>``):
        the worked sum, then min_detours..max_detours redundant re-checks of the answer — the
        verbosity the length-penalty stage should remove
        (``7+5=12 2+4+1=7 so 72. check 72. check 72.</think><answer>72</answer>``)."""
        n_detours = rng.randint(self.min_detours, self.max_detours) if detours is None else detours
        checks = DETOUR.format(answer=a + b) * n_detours
        return f"{self.steps(a, b)}.{checks}</think><answer>{a + b}</answer>"

    def cold_start_examples(self, n: int, exclude: list[Example]) -> list[tuple[str, str]]:
        """(prompt, completion) pairs for SFT, none of them a held-out problem."""
        rng = random.Random(self.seed + 1)
        banned = {e.prompt for e in exclude}
        out: list[tuple[str, str]] = []
        while len(out) < n:
            a, b = self._pairs(rng, 1)[0]
            if f"{a}+{b}" in banned:
                continue
            out.append((PROMPT_TEMPLATE.format(prompt=f"{a}+{b}"), self.reasoning(a, b, rng)))
        return out

    def pretraining_corpus(self, n: int, exclude: list[Example]) -> list[str]:
        """Digit facts, bare equations and worked sums; no held-out problem appears."""
        rng = random.Random(self.seed + 2)
        banned = {e.prompt for e in exclude}
        lines: list[str] = []
        while len(lines) < n:
            kind = rng.random()
            if kind < 0.2:
                x, y = rng.randint(0, 9), rng.randint(0, 9)
                lines.append(f"{x}+{y}={x + y}")
                continue
            a, b = self._pairs(rng, 1)[0]
            if f"{a}+{b}" in banned:
                continue
            lines.append(f"{a}+{b}={a + b}" if kind < 0.5 else f"{a}+{b}: {self.steps(a, b)}")
        return lines
