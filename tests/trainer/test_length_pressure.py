"""`length_advantage_corr`: whether a step's longer completions got higher or lower advantages
than the rest of their group — the pressure GRPO puts on response length."""

from __future__ import annotations

import numpy as np
import pytest
from fixed_rollout import FixedRollout

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.trainer.grpo import GRPOTrainer, length_advantage_sums


def correlation(sums: tuple[float, float, float]) -> float:
    cross, length_square, advantage_square = sums
    return cross / np.sqrt(length_square * advantage_square)


def test_lengths_and_advantages_are_compared_within_their_group():
    # Within each group the longer completion has the higher advantage; across groups the long
    # group has the low advantages (RLOO / REINFORCE++ advantages need not be centred per
    # group). Pooled, the correlation would come out strongly negative.
    lengths = np.array([10.0, 12.0, 50.0, 52.0])
    advantages = np.array([1.0, 1.2, -1.0, -0.8])
    groups = np.array([7, 7, 3, 3])
    assert np.corrcoef(lengths, advantages)[0, 1] < -0.9
    assert correlation(length_advantage_sums(lengths, advantages, groups)) == pytest.approx(1.0)
    # Longer is worse in both groups: −1, whatever the groups' own levels.
    assert correlation(length_advantage_sums(lengths, -advantages, groups)) == pytest.approx(-1.0)


def test_sums_are_those_of_group_centred_values():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 5, 60)
    lengths = rng.integers(5, 80, 60).astype(float)
    advantages = rng.normal(size=60) + 0.02 * lengths
    centred = [values - np.array([values[groups == g].mean() for g in groups]) for values in (lengths, advantages)]
    cross, length_square, advantage_square = length_advantage_sums(lengths, advantages, groups)
    assert cross == pytest.approx(centred[0] @ centred[1])
    assert length_square == pytest.approx(centred[0] @ centred[0])
    assert advantage_square == pytest.approx(centred[1] @ centred[1])
    assert correlation((cross, length_square, advantage_square)) == pytest.approx(np.corrcoef(*centred)[0, 1])


def test_a_group_of_one_or_no_rows_adds_nothing():
    assert length_advantage_sums(np.array([5.0]), np.array([0.3]), np.array([0])) == (0.0, 0.0, 0.0)
    assert length_advantage_sums(np.array([]), np.array([]), np.array([], dtype=int)) == (0.0, 0.0, 0.0)


def grpo_trainer(make_stage, tmp_path, model, tokenizer, train, rollout):
    # 32 new tokens: FixedRollout's long completions ("n so n.</think><answer>n</answer>")
    # finish, and only they earn the format reward.
    config = make_stage(tmp_path, rollout={"prompts_per_step": 4, "group_size": 6, "max_new_tokens": 32})
    return GRPOTrainer(config, model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), rollout=rollout)


def test_the_step_logs_it_over_the_rows_in_the_loss(tmp_path, tiny_model, tokenizer, problems, make_stage):
    train, _ = problems
    trainer = grpo_trainer(make_stage, tmp_path, tiny_model, tokenizer, train, FixedRollout(tokenizer))
    seen = {}
    rollout_step, advantages_of = trainer.rollout_step, trainer.advantages

    def keep_rollouts(examples):
        seen["rollouts"] = rollout_step(examples)
        return seen["rollouts"]

    def keep_advantages(scores, rollouts):
        seen["advantages"], seen["keep"] = advantages_of(scores, rollouts)
        return seen["advantages"], seen["keep"]

    trainer.rollout_step, trainer.advantages = keep_rollouts, keep_advantages
    metrics = trainer.train_step()
    rollouts, keep = seen["rollouts"], seen["keep"]
    lengths = rollouts.lengths.numpy().astype(float)[keep]
    groups = rollouts.prompt_index.numpy()[keep]
    centred = [values - np.array([values[groups == g].mean() for g in groups]) for values in (lengths, seen["advantages"][keep])]
    assert metrics["length_advantage_corr"] == pytest.approx(np.corrcoef(*centred)[0, 1])
    # The long completions carry the template, and with it the format reward.
    assert metrics["length_advantage_corr"] > 0.3


def test_absent_when_no_group_varies(tmp_path, tiny_model, tokenizer, problems, make_stage):
    train, _ = problems
    # Every group's G completions are the same text: equal lengths, advantages all 0.
    uniform = [PROMPT_TEMPLATE.format(prompt=e.prompt) for e in train]
    trainer = grpo_trainer(make_stage, tmp_path, tiny_model, tokenizer, train, FixedRollout(tokenizer, uniform=uniform))
    metrics = trainer.train_step()
    assert "length_advantage_corr" not in metrics
    assert metrics["zero_advantage_rows"] == 24  # the step did run: every row was left out
