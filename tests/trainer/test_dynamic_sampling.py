"""DAPO's dynamic sampling (groups without signal leave the batch, and more prompts are sampled
until the step holds `prompts_per_step` groups with signal), the rollouts of several sampling
rounds joined into one batch, and rows whose reward could not be computed."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from fixed_rollout import FixedRollout

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.rewards import Component, RewardSpec
from reasonrl.rollout import Rollouts, SamplingParams
from reasonrl.trainer.grpo import GRPOTrainer, PromptSampler


def rendered(examples) -> list[str]:
    template = get_template(PROMPT_TEMPLATE)
    return [template.render(e, None) for e in examples]


def trainer_with(tmp_path, make_stage, model, tokenizer, train, *, uniform=(), reward_spec=None, **algorithm):
    config = make_stage(tmp_path, rollout={"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 24},
                        algorithm={"micro_batch_size": 8, **algorithm})
    rollout = FixedRollout(tokenizer, uniform=uniform)
    return GRPOTrainer(config, model, tokenizer, train, rollout=rollout, template=get_template(PROMPT_TEMPLATE),
                       reward_spec=reward_spec)


def sampler_rounds(train, count: int, per_step: int = 4) -> list[list[str]]:
    """The prompts of the sampler's first `count` draws (seed 0, as the test stages use)."""
    sampler = PromptSampler(train, per_step, seed=0)
    return [rendered(sampler.next_step()) for _ in range(count)]


def test_groups_without_signal_are_refilled_from_new_prompts(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems
    first, second, third = sampler_rounds(train, 3)
    # Round 1: 3 of 4 groups give equal rewards. Round 2: 1 of 4. 1 + 3 = 4 groups: enough.
    uniform = [first[0], first[1], first[2], second[0]]
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=uniform, dynamic_sampling=True)
    seen: list[tuple[int, int, int]] = []  # per step: rows, prompts, rows kept
    advantages = trainer.advantages

    def counting(scores, rollouts):
        adv, keep = advantages(scores, rollouts)
        seen.append((len(rollouts.texts), rollouts.prompts, int(keep.sum())))
        return adv, keep

    trainer.advantages = counting
    metrics = trainer.train_step()
    assert trainer.rollout.calls == [first, second]
    assert seen == [(32, 8, 16)]  # both rounds in one batch; the 4 groups with signal kept
    assert metrics["dynamic_sampling/rounds"] == 2 and metrics["dynamic_sampling/groups"] == 4
    assert metrics["dynamic_sampling/groups_kept"] == 4
    assert metrics["rows_in_loss"] == 16
    # The next step starts from the prompts after the refill's, and needs one round.
    metrics = trainer.train_step()
    assert trainer.rollout.calls[2:] == [third] and seen[1] == (16, 4, 16)
    assert metrics["dynamic_sampling/rounds"] == 1


def test_a_refill_that_brings_too_many_groups_keeps_the_first_in_sampling_order(
    tmp_path, make_stage, tiny_model, tokenizer, problems
):
    """DAPO fills the batch to exactly its size: round 1 finds 2 groups with signal, round 2
    all 4, and only round 2's first 2 join round 1's in the loss."""
    train, _ = problems
    first, second = sampler_rounds(train, 2)
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=first[1:3], dynamic_sampling=True)
    kept_rows: list[np.ndarray] = []
    advantages = trainer.advantages

    def recording(scores, rollouts):
        adv, keep = advantages(scores, rollouts)
        kept_rows.append(np.flatnonzero(keep))
        return adv, keep

    trainer.advantages = recording
    metrics = trainer.train_step()
    assert trainer.rollout.calls == [first, second]
    assert metrics["dynamic_sampling/groups"] == 6  # found; the loss takes prompts_per_step of them
    assert metrics["dynamic_sampling/groups_kept"] == 4
    assert metrics["rows_in_loss"] == 16
    # Rows 0-15: round 1 (groups 0 and 3 with signal); rows 16-31: round 2 (groups 4 and 5 kept).
    expected = [*range(0, 4), *range(12, 16), *range(16, 24)]
    assert kept_rows[0].tolist() == expected


def test_a_group_whose_rows_are_all_masked_out_leaves_its_place_to_the_next(
    tmp_path, make_stage, tiny_model, tokenizer, problems
):
    """With `mask_truncated`, a group with signal whose completions were all cut off has nothing
    to train on: the step takes the next group with signal instead."""
    from types import SimpleNamespace

    config = make_stage(tmp_path, rollout={"prompts_per_step": 4, "group_size": 4, "mask_truncated": True},
                        algorithm={"dynamic_sampling": True})
    trainer = GRPOTrainer(config, tiny_model, tokenizer, problems[0], rollout=FixedRollout(tokenizer),
                          template=get_template(PROMPT_TEMPLATE))
    groups = np.repeat(np.arange(8), 4)  # two rounds of 4 prompts, 4 completions each
    total = np.tile([0.0, 1.0, 0.0, 1.0], 8).astype(np.float32)  # every group has signal
    truncated = groups == 1  # group 1: every completion cut off
    rollouts = SimpleNamespace(prompt_index=torch.from_numpy(groups), truncated=torch.from_numpy(truncated))
    _, keep = trainer.advantages(SimpleNamespace(total=total), rollouts)
    assert sorted(set(groups[keep].tolist())) == [0, 2, 3, 4]


def test_refills_stop_after_max_sampling_rounds(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems
    rounds = sampler_rounds(train, 3)
    every = [prompt for round_ in rounds for prompt in round_]
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=every,
                           dynamic_sampling=True, max_sampling_rounds=3)
    metrics = trainer.train_step()  # nothing has signal: three rounds, then a step without rows
    assert trainer.rollout.calls == rounds
    assert metrics["dynamic_sampling/rounds"] == 3 and metrics["dynamic_sampling/groups"] == 0
    assert metrics["rows_in_loss"] == 0 and metrics["optimizer_steps"] == 0


def test_one_round_only_filters(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems
    (first,) = sampler_rounds(train, 1)
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=first[:3],
                           dynamic_sampling=True, max_sampling_rounds=1)
    metrics = trainer.train_step()
    assert trainer.rollout.calls == [first]
    assert metrics["dynamic_sampling/rounds"] == 1 and metrics["rows_in_loss"] == 4


def test_without_dynamic_sampling_groups_without_signal_stay(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems
    (first,) = sampler_rounds(train, 1)
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=first[:3])
    metrics = trainer.train_step()
    assert len(trainer.rollout.calls) == 1 and metrics["rows_in_loss"] == 16
    assert "dynamic_sampling/rounds" not in metrics


def test_joined_rounds_score_every_row_as_its_own_round_does(tmp_path, make_stage, tiny_model, tokenizer, problems):
    """Rounds pad their prompts and completions to different widths; joined, every row is
    re-padded, and its log-probs must be the ones its own round gives."""
    train, _ = problems
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train)
    short = [dataclasses.replace(train[0], prompt="5+7", answer="12"), dataclasses.replace(train[1], prompt="8+1", answer="9")]
    # Different token budgets, so that the completions are padded to different widths too.
    parts = [trainer.rollout.generate(rendered(short), 4, SamplingParams(max_new_tokens=8)),
             trainer.rollout.generate(rendered(train[:3]), 4, SamplingParams(max_new_tokens=24))]
    assert parts[0].prompt_ids.shape[1] < parts[1].prompt_ids.shape[1]  # "5+7" against "27+58"
    assert parts[0].completion_ids.shape[1] != parts[1].completion_ids.shape[1]
    joined = Rollouts.concat(parts, tokenizer.pad_token_id)
    assert joined.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert joined.texts == parts[0].texts + parts[1].texts
    assert torch.equal(joined.lengths, torch.cat([p.lengths for p in parts]))

    def logprobs(r: Rollouts) -> list[torch.Tensor]:
        batch = trainer.pack(r, np.ones(len(r.texts), dtype=np.float32), np.ones(len(r.texts), dtype=bool))
        logp = trainer.token_logprobs(trainer.model, batch).detach()
        return [row[mask.bool()] for row, mask in zip(logp, batch.completion_mask)]

    separate = logprobs(parts[0]) + logprobs(parts[1])
    together = logprobs(joined)
    assert len(separate) == len(together) == 20
    for a, b in zip(separate, together):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_rows_without_a_reward_leave_the_loss(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems

    def half_missing(completions, **_):
        # Even rows: no reward could be computed. Odd rows: their length, so groups vary.
        return [None if i % 2 == 0 else float(len(c)) for i, c in enumerate(completions)]

    spec = RewardSpec([Component("mine", "python", fn=half_missing)])
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, reward_spec=spec)
    metrics = trainer.train_step()
    assert metrics["reward/missing"] == 0.5
    assert np.isfinite(metrics["reward/total"])
    assert metrics["rows_in_loss"] == 8  # the 8 rows with a reward; the other 8 are not in the normaliser


def test_a_batch_without_any_reward_logs_nan_without_warnings(tmp_path, make_stage, tiny_model, tokenizer, problems):
    train, _ = problems
    spec = RewardSpec([Component("mine", "python", fn=lambda completions, **_: [None] * len(completions))])
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, reward_spec=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "Mean of empty slice"
        metrics = trainer.train_step()
    assert metrics["reward/missing"] == 1.0 and np.isnan(metrics["reward/total"])
    assert metrics["rows_in_loss"] == 0 and metrics["optimizer_steps"] == 0


def test_max_sampling_rounds_is_checked(tmp_path, make_stage):
    from reasonrl.config import ConfigError

    with pytest.raises(ConfigError, match=r"algorithm.max_sampling_rounds: must be >= 1, got 0"):
        make_stage(tmp_path, algorithm={"max_sampling_rounds": 0})


def test_concat_of_one_part_is_that_part():
    part = Rollouts(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.long),
                    torch.ones(2, 4, dtype=torch.long), ["a", "b"], torch.zeros(2, dtype=torch.bool), torch.tensor([0, 0]))
    assert Rollouts.concat([part], 0) is part


def test_reinforce_pp_whitens_over_the_groups_kept(tmp_path, make_stage, tiny_model, tokenizer, problems):
    """With DAPO's filter, REINFORCE++ normalises over the rows it trains on: the dropped
    groups' zeros do not shrink the batch's std."""
    from reasonrl import compute_advantages

    train, _ = problems
    (first,) = sampler_rounds(train, 1)
    trainer = trainer_with(tmp_path, make_stage, tiny_model, tokenizer, train, uniform=first[:2],
                           dynamic_sampling=True, max_sampling_rounds=1, estimator="reinforce_pp")
    examples = trainer.sampler.next_step()
    rollouts = trainer.rollout_step(examples)
    scores = trainer.score(examples, rollouts)
    advantages, keep = trainer.advantages(scores, rollouts)
    assert keep.sum() == 8 and not keep[:8].any()  # the two uniform groups are out
    kept_only = compute_advantages(scores.total[keep], rollouts.prompt_index.numpy()[keep], "reinforce_pp")
    np.testing.assert_allclose(advantages[keep], kept_only, rtol=1e-5, atol=1e-6)
    assert (advantages[~keep] == 0).all()
    whole_batch = compute_advantages(scores.total, rollouts.prompt_index.numpy(), "reinforce_pp")
    assert not np.allclose(whole_batch[keep], kept_only)
