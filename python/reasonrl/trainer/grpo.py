"""The GRPO trainer.

One step, as in the paper (DeepSeekMath §4.1, DeepSeek-R1 §2.2):

1. sample B prompts and G completions for each           ``rollout``
2. score every completion with the rule-based rewards     ``score``      (one Rust call)
3. turn rewards into group-relative advantages            ``advantages`` (one Rust call)
4. log-probs of the old policy and the reference          ``logprobs``   (no grad)
5. μ passes of clipped policy-gradient updates            ``update``     (Triton / torch loss)

    trainer = GRPOTrainer(config, model, tokenizer, train_examples, eval_examples=heldout)
    summary = trainer.train()
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from transformers import DynamicCache

from reasonrl.advantages import Estimator, compute_advantages, filter_groups
from reasonrl.config import ConfigError, StageConfig, expect_stage
from reasonrl.data import Example, PromptTemplate, get_template
from reasonrl.errors import ReasonRLError, TrainingError
from reasonrl.evaluation import EvalResult, code_columns, score_samples
from reasonrl.kernels import grpo_loss, linear_grpo_loss, linear_token_logprobs, token_logprobs
from reasonrl.rewards import RewardScores, RewardSpec
from reasonrl.rollout import HFRollout, RolloutBackend, Rollouts, SamplingParams
from reasonrl.rollout.hf import cache_kwarg
from reasonrl.trainer.checkpoint import (
    drop_logged_after,
    latest_checkpoint,
    load_model_weights,
    load_trainer_state,
    resume_or_start_fresh,
    save_checkpoint,
    save_then_stop,
    stop_after_the_step_on_interrupt,
)
from reasonrl.trainer.distributed import (
    all_ranks_true,
    all_reduce,
    clip_grad_norm,
    gather_objects,
    gathered_weights,
    gradient_sync,
    mean_across_ranks,
    rank,
    resolve_strategy,
    shard_frozen,
    unwrap,
    world_size,
    wrap_policy,
)
from reasonrl.trainer.importance import sampler_mismatch, tis_weights
from reasonrl.trainer.logging import RunLogger, logged_at
from reasonrl.trainer.models import checkpoints_activations, turn_off_dropout
from reasonrl.trainer.optim import build_optimizer


@dataclass
class PolicyBatch:
    """One step's packed rollouts: N = B·G rows (or fewer after dynamic sampling)."""

    input_ids: torch.Tensor  # [N, P + T] prompt (left-padded) then completion (right-padded)
    attention_mask: torch.Tensor  # [N, P + T]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T] float: 1 for completion tokens that count in the loss
    advantages: torch.Tensor  # [N]
    old_logp: torch.Tensor | None = None  # [N, T]
    ref_logp: torch.Tensor | None = None  # [N, T]
    sampler_logp: torch.Tensor | None = None  # [N, T] the rollout engine's log-probs (vLLM), if it reports them
    tis_weight: torch.Tensor | None = None  # [N, T] truncated importance weights (algorithm.tis_cap)
    # [N] bool: rows that only keep this rank in step with the others (zero mask, no loss);
    # None: there are none (always so in a single process).
    padding: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def real_rows(self) -> int:
        return len(self) - (int(self.padding.sum()) if self.padding is not None else 0)

    def rows(self, index: torch.Tensor | slice) -> PolicyBatch:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return PolicyBatch(
            self.input_ids[index], self.attention_mask[index], self.completion_ids[index],
            self.completion_mask[index], self.advantages[index], pick(self.old_logp), pick(self.ref_logp),
            pick(self.sampler_logp), pick(self.tis_weight), pick(self.padding),
        )


def narrowed(batch: PolicyBatch) -> PolicyBatch:
    """`batch` without the columns that are padding in every row: the completion columns after
    its longest completion and the prompt columns before its longest prompt. A micro-batch of
    short rows then pays for its own lengths, not for the longest row of the whole step."""
    L, T = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    P = L - T
    t = int(batch.completion_mask.sum(dim=1).max().item()) if len(batch) else 0
    t = max(t, 1 if T else 0)  # a row without tokens (padding) still needs one position to run
    p = int(batch.attention_mask[:, :P].sum(dim=1).max().item()) if len(batch) else 0  # left-padded
    if t == T and p == P:
        return batch
    cut = lambda x: None if x is None else x[:, :t]  # noqa: E731
    return PolicyBatch(
        batch.input_ids[:, P - p : P + t], batch.attention_mask[:, P - p : P + t], batch.completion_ids[:, :t],
        batch.completion_mask[:, :t], batch.advantages, cut(batch.old_logp), cut(batch.ref_logp),
        cut(batch.sampler_logp), cut(batch.tis_weight), batch.padding,
    )


def by_length(batch: PolicyBatch, units: torch.Tensor) -> torch.Tensor:
    """[N] a row order that puts units (each row's prompt with a shared-prompt forward, else the
    row itself: `units` [N]) of similar completion length next to each other, longest first,
    a unit's rows together and in their order: micro-batches cut from it are then narrow."""
    lengths = batch.completion_mask.sum(dim=1)  # [N]
    unit_length = torch.zeros(int(units.max()) + 1, dtype=lengths.dtype, device=lengths.device)
    unit_length = unit_length.scatter_reduce(0, units, lengths, reduce="amax")  # [U]
    by_unit = torch.argsort(units, stable=True)  # rows grouped by unit, in order within each
    return by_unit[torch.argsort(-unit_length[units[by_unit]], stable=True)]


def length_advantage_sums(lengths: np.ndarray, advantages: np.ndarray, group_ids: np.ndarray) -> tuple[float, float, float]:
    """(Σ l·a, Σ l², Σ a²) over rows, with the lengths and advantages centred within each
    group: the parts of a correlation that add up over ranks (groups never span ranks).

    Within groups because that is what GRPO compares: pooled over prompts, easy prompts with
    short answers and hard ones with long answers would show a correlation that no update sees."""
    lengths, advantages = np.asarray(lengths, dtype=np.float64), np.asarray(advantages, dtype=np.float64)
    _, group = np.unique(group_ids, return_inverse=True)
    sizes = np.bincount(group)
    centred_lengths = lengths - (np.bincount(group, lengths) / sizes)[group]
    centred_advantages = advantages - (np.bincount(group, advantages) / sizes)[group]
    return (float(centred_lengths @ centred_advantages), float(centred_lengths @ centred_lengths),
            float(centred_advantages @ centred_advantages))


def completion_forward_inputs(batch: PolicyBatch) -> dict[str, Any]:
    """The model inputs that score a batch's completions: prompt + completion, positions that
    count real tokens only (left padding shifts them right), and `logits_to_keep` on exactly
    the T positions that predict completion tokens — token t sits at L - T + t and is predicted
    one position earlier — so the [N, L, V] logits of the prompt are never built (an index, not
    a slice, so the kept rows come out contiguous for the kernels)."""
    L, T = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    return {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "position_ids": (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0),
        "logits_to_keep": torch.arange(L - T - 1, L - 1, device=batch.input_ids.device),
        "use_cache": False,
    }


def completion_outputs(model: Any, batch: PolicyBatch, *, share_prompts: bool, head_input: bool = False) -> torch.Tensor:
    """What predicts the completion tokens: the [N, T, V] logits, or with `head_input` the
    [N, T, H] final hidden states the LM head would turn into them (the head then computes
    nothing, see `GRPOTrainer.head_inputs`).

    With `share_prompts`, rows that continue the same prompt (a group's G completions) share one
    forward pass over it: the distinct prompts are encoded once, with a cache, and every row
    then runs its completion on its prompt's keys and values. The result and its gradient are
    those of the plain forward (the prompt's positions never see the completions); the prompt
    work drops by the group size. Needs a model that is not wrapped (DDP, FSDP) and does not
    checkpoint activations (that turns the cache off)."""
    L, T = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    P = L - T
    if share_prompts and T > 0:
        prompts, row_prompt = distinct_prompts(batch)
        if prompts.shape[0] < batch.input_ids.shape[0]:
            prompt_ids, prompt_mask = prompts[:, :P], prompts[:, P:]
            cache = DynamicCache(config=unwrap(model).config)
            cache_arg = {cache_kwarg(unwrap(model)): cache}
            # The last prompt position predicts the first completion token.
            first = _forward(
                model, head_input, input_ids=prompt_ids, attention_mask=prompt_mask,
                position_ids=(prompt_mask.cumsum(dim=1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1, **cache_arg,
            ).index_select(0, row_prompt)  # [N, 1, V or H]
            if T == 1:
                return first
            select_cache_rows(cache, row_prompt)  # each row's copy of its prompt's keys/values
            positions = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [N, L]
            rest = _forward(
                model, head_input, input_ids=batch.completion_ids[:, :-1], attention_mask=batch.attention_mask[:, :-1],
                position_ids=positions[:, P : L - 1], use_cache=True, **cache_arg,
            )  # [N, T - 1, V or H]
            return torch.cat([first, rest], dim=1)
    return _forward(model, head_input, **completion_forward_inputs(batch))


def select_cache_rows(cache: DynamicCache, rows: torch.Tensor) -> None:
    """Gives every cache layer the batch rows `rows` ([N] indices into the B prompts): keys and
    values [B, Hkv, P, D] become [N, Hkv, P, D].

    `index_select`, not tensor indexing (which `DynamicCache.batch_select_indices` uses): on CPU
    the backward of indexing accumulates the N rows' gradients into the B prompts in an order
    that depends on thread timing (`index_put_` with `accumulate=True`), so the prompt keys' and
    values' gradients changed in their last bits from run to run; `index_select`'s backward
    (`index_add_`) adds them in a fixed order on CPU."""
    layers: list[Any] = list(cache.layers)  # Any: a union of layer types, not all with keys
    for layer in layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if isinstance(keys, torch.Tensor) and isinstance(values, torch.Tensor):
            layer.keys, layer.values = keys.index_select(0, rows), values.index_select(0, rows)
        elif hasattr(layer, "batch_select_indices"):  # a layer that keeps other state
            layer.batch_select_indices(rows)
        else:
            raise TrainingError(
                f"the shared prompt forward cannot copy a {type(layer).__name__} cache layer to the rows "
                "of its prompt; set algorithm.share_prompt_forward: false"
            )


def distinct_prompts(batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's distinct prompts, [B, 2P] (token ids, then mask), and each row's, [N]."""
    P = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    prompts = torch.cat([batch.input_ids[:, :P], batch.attention_mask[:, :P].long()], dim=1)
    distinct, row_prompt = torch.unique(prompts, dim=0, return_inverse=True)
    return distinct, row_prompt


def advantages_over_ranks(rewards: np.ndarray, group_ids: np.ndarray, keep: np.ndarray, estimator: Estimator) -> np.ndarray:
    """(N,) this rank's advantages, computed by one Rust call over the rows of all ranks at once
    (their rewards, group ids and keep masks gathered: a few floats a row). For REINFORCE++,
    whose whitening spans the batch, so that N ranks give what one process gives; a group never
    spans ranks, so each rank's ids are moved past the previous ranks'."""
    parts = gather_objects((rewards, group_ids, keep))
    offsets = np.cumsum([0] + [int(ids.max()) + 1 if len(ids) else 0 for _, ids, _ in parts])
    advantages = compute_advantages(
        np.concatenate([r for r, _, _ in parts]), np.concatenate([ids + o for (_, ids, _), o in zip(parts, offsets)]),
        estimator, in_batch=np.concatenate([k for _, _, k in parts]),
    )
    start = sum(len(r) for r, _, _ in parts[: rank()])
    return advantages[start : start + len(rewards)]


def signal_groups(rewards: np.ndarray, group_ids: np.ndarray) -> int:
    """How many groups have rewards that are not all equal (the groups DAPO's filter keeps)."""
    if not len(rewards):
        return 0
    return len(np.unique(group_ids[filter_groups(rewards, group_ids)]))


def rows_by_prompt(batch: PolicyBatch) -> torch.Tensor:
    """[N] a row order that puts the rows of each prompt next to each other (stable)."""
    return torch.argsort(distinct_prompts(batch)[1], stable=True)


def _forward(model: Any, head_input: bool, **inputs: Any) -> torch.Tensor:
    """`model(**inputs)`'s logits, or with `head_input` what its LM head was given: a pre-hook
    takes the head's input and hands the head an empty slice, so no logits are computed."""
    if not head_input:
        return model(**inputs).logits
    head = unwrap(model).get_output_embeddings()
    captured: list[torch.Tensor] = []

    def take_input(_: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        captured.append(args[0])  # [N, T, H]: the model already kept the T positions
        return (args[0][:, :0], *args[1:])

    handle = head.register_forward_pre_hook(take_input)
    try:
        model(**inputs)
    finally:
        handle.remove()
    return captured[0]


class PromptSampler:
    """Walks the training set in a seeded random order, epoch after epoch; each rank takes its
    own slice of every step's prompts, so a prompt's G completions stay on one rank and group
    advantages need no communication. `position` (prompts consumed, all ranks together) makes
    resuming exact, at any number of ranks."""

    def __init__(self, examples: Sequence[Example], per_step: int, seed: int) -> None:
        if not examples:
            raise ReasonRLError("the training set is empty")
        self.examples = list(examples)
        self.per_step = per_step
        self.seed = seed
        self.position = 0
        self._epoch_order: tuple[int, list[int]] = (-1, [])  # the last epoch's order, shuffled once

    def _order(self, epoch: int) -> list[int]:
        if self._epoch_order[0] != epoch:
            order = list(range(len(self.examples)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def next_step(self) -> list[Example]:
        """This rank's prompts for the next step (`per_step` prompts in all ranks together)."""
        picked = []
        for offset in range(self.per_step):
            epoch, index = divmod(self.position + offset, len(self.examples))
            picked.append(self.examples[self._order(epoch)[index]])
        self.position += self.per_step
        return picked[rank() :: world_size()]

    def step_positions(self, local: np.ndarray) -> np.ndarray:
        """Where this rank's prompts `local` (numbered 0, 1, … over the step's sampling rounds,
        as `next_step` handed them out) stand among all ranks' prompts of those rounds."""
        ranks = world_size()
        per_rank = self.per_step // ranks
        return (local // per_rank) * self.per_step + (local % per_rank) * ranks + rank()


class GRPOTrainer:
    def __init__(
        self,
        config: StageConfig,
        model: Any,
        tokenizer: Any,
        train_examples: Sequence[Example],
        *,
        eval_examples: Sequence[Example] | None = None,
        reward_spec: RewardSpec | None = None,
        rollout: RolloutBackend | None = None,
        ref_model: Any = None,
        template: PromptTemplate | None = None,
    ) -> None:
        self.config = expect_stage(config, "grpo", "GRPOTrainer")
        self.tokenizer = tokenizer
        # Where this rank computes; read before wrapping (FSDP's CPU offload moves the shards).
        self.device = next(model.parameters()).device
        self.strategy = resolve_strategy(config.distributed)
        if config.rollout.prompts_per_step % world_size():
            raise ConfigError(
                f"rollout.prompts_per_step: {config.rollout.prompts_per_step} prompts do not split evenly "
                f"over {world_size()} ranks (it counts the prompts of all ranks together)"
            )
        if config.algorithm.fused_lm_head:
            _check_fused_head(model, self.strategy)
        # Dropout off, as RL trainers do: with it, the ratio and the KL are noise at ratio 1.
        turn_off_dropout(model)
        # The reference only matters for the KL term: with beta = 0 it is never loaded.
        if config.algorithm.beta > 0 and ref_model is None:
            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.ref_model = shard_frozen(ref_model, config.distributed) if ref_model is not None else None
        # Unchanged in a single process; sharded in place (FSDP2) or wrapped (DDP) under torchrun.
        self.model = wrap_policy(model, config.distributed)
        # Score each distinct prompt once per micro-batch (`completion_outputs`): in one process
        # only (a wrapper expects one forward per backward), and not under activation
        # checkpointing (which turns the cache off).
        self.share_prompts = (
            config.algorithm.share_prompt_forward and world_size() == 1 and not checkpoints_activations(model)
        )
        self.template = template or get_template(config.data.template, system_prompt=config.data.system_prompt)
        self.reward_spec = reward_spec or RewardSpec.from_config(config.reward)
        self.rollout = rollout or self._default_rollout()
        if eval_examples is None and config.data.eval:
            # Held-out problems the config names: read here too, so that a trainer built from
            # the Python API evaluates as `reasonrl train` does.
            from reasonrl.pipeline import load_heldout

            eval_examples = load_heldout(config)
        self.eval_examples = list(eval_examples or [])
        self.sampler = PromptSampler(train_examples, config.rollout.prompts_per_step, config.run.seed)
        self.optimizer, self.scheduler = build_optimizer(model, config.optim, config.run.steps)
        self.output_dir = Path(config.run.output_dir)
        self.step = 0
        self._nonfinite_in_a_row = 0
        self._accuracy_name = next(
            (c.name for c in self.reward_spec.components
             if c.kind.endswith("_accuracy") or c.params.get("is_accuracy")), None,
        )

    def _default_rollout(self) -> RolloutBackend:
        r = self.config.rollout
        if r.backend == "vllm":
            from reasonrl.rollout.vllm import VLLMRollout

            return VLLMRollout.for_policy(self.config, self.model, self.tokenizer, self.device)
        return HFRollout(unwrap(self.model), self.tokenizer, batch_size=r.generation_batch_size)

    @contextmanager
    def _generating(self) -> Iterator[None]:
        """Generation from the policy itself under FSDP runs on gathered weights (see
        `gathered_weights`); a backend with its own copy of the weights (vLLM) needs nothing."""
        from reasonrl.rollout.vllm import VLLMRollout

        if self.strategy == "fsdp" and not isinstance(self.rollout, VLLMRollout):
            with gathered_weights(self.model, self.config.distributed):
                yield
        else:
            yield

    # ---- 1. rollout ---------------------------------------------------------------------------

    def sampling(self, *, greedy: bool = False, temperature: float | None = None, max_new_tokens: int | None = None) -> SamplingParams:
        r = self.config.rollout
        return SamplingParams(
            temperature=temperature or r.temperature, top_p=r.top_p, max_new_tokens=max_new_tokens or r.max_new_tokens,
            stop=tuple(r.stop), greedy=greedy,
        )

    def rollout_step(self, examples: list[Example]) -> Rollouts:
        prompts = [self.template.render(e, self.tokenizer) for e in examples]
        with self._generating():
            return self.rollout.generate(prompts, self.config.rollout.group_size, self.sampling())

    def sample_step(self, timed: Any) -> tuple[list[Example], Rollouts, RewardScores, int, float]:
        """This step's prompts, their rollouts and rewards, the sampling rounds it took and (with
        dynamic sampling, else NaN) its groups with signal on all ranks.

        One round: a step's worth of prompts, G completions each, scored. With DAPO's dynamic
        sampling, groups whose rewards are all equal carry no signal (`advantages` drops them),
        so rounds go on, each adding a step's worth of new prompts, until the step holds
        `rollout.prompts_per_step` groups with signal (all ranks together, so every rank runs
        the same rounds and the result does not depend on the number of ranks) or
        `algorithm.max_sampling_rounds` have run. When the last round brings more than were
        missing, `advantages` keeps the first ones in sampling order, as DAPO fills its batch to
        exactly its size."""
        a = self.config.algorithm
        examples: list[Example] = []
        rollouts: list[Rollouts] = []
        scores: list[RewardScores] = []
        with_signal, groups = 0, float("nan")  # this rank's groups with signal; all ranks'
        # With refills, a backend with its own engine (vLLM) stays awake through all of the
        # step's rounds, each round's rewards included (a `python` reward that needs GPU memory
        # finds the engine's share still taken). Without refills it sleeps as its round ends.
        refills = a.dynamic_sampling and a.max_sampling_rounds > 1
        staying_awake = getattr(self.rollout, "staying_awake", nullcontext) if refills else nullcontext
        with staying_awake():
            while True:
                more = self.sampler.next_step()
                with timed("generate"):
                    rollouts.append(self.rollout_step(more))
                with timed("reward"):
                    scores.append(self.score(more, rollouts[-1]))
                examples += more
                if not a.dynamic_sampling:
                    break
                with_signal += signal_groups(scores[-1].total, rollouts[-1].prompt_index.cpu().numpy())
                groups = all_reduce([float(with_signal)])[0]
                if groups >= self.config.rollout.prompts_per_step or len(rollouts) >= a.max_sampling_rounds:
                    break
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return examples, Rollouts.concat(rollouts, pad), RewardScores.concat(scores), len(rollouts), groups

    # ---- 2. rewards ---------------------------------------------------------------------------

    def score(self, examples: list[Example], rollouts: Rollouts) -> RewardScores:
        per_row = [examples[i] for i in rollouts.prompt_index.tolist()]
        kinds = {c.kind for c in self.reward_spec.components}
        columns: dict[str, Any] = code_columns(per_row) if "code_accuracy" in kinds else {}
        return self.reward_spec.score(
            rollouts.texts,
            prompts=[e.prompt for e in per_row],
            answers=[e.answer or "" for e in per_row] if "math_accuracy" in kinds else None,
            choices=[list(e.choices or ()) for e in per_row] if "choice_accuracy" in kinds else None,
            gold_choices=[e.gold_choice or 0 for e in per_row] if "choice_accuracy" in kinds else None,
            group_ids=rollouts.prompt_index.cpu().numpy(),
            lengths=rollouts.lengths.cpu().numpy(),
            tests=[e.tests or "" for e in per_row] if "code_accuracy" in kinds else None,
            examples=per_row,
            **columns,
        )

    # ---- 3. advantages ------------------------------------------------------------------------

    def advantages(self, scores: RewardScores, rollouts: Rollouts) -> tuple[np.ndarray, np.ndarray]:
        """(N,) advantages and the (N,) mask of rows that enter the loss."""
        group_ids = rollouts.prompt_index.cpu().numpy()
        # A row whose reward could not be computed (NaN) has advantage 0 and no say in its
        # group's statistics; it leaves the loss's normaliser too.
        keep = ~np.isnan(scores.total)
        if self.config.rollout.mask_truncated:
            keep &= ~rollouts.truncated.cpu().numpy()
        if self.config.algorithm.dynamic_sampling:
            # Groups with signal that still have rows to train on; the step's first ones.
            keep &= self.first_groups_with_signal(filter_groups(scores.total, group_ids) & keep, group_ids)
        # Rows left out still count in their group's mean and std (they were sampled);
        # REINFORCE++ whitens over the rows kept, the batch it trains on: all ranks' rows.
        estimator = self.config.algorithm.estimator
        if estimator == "reinforce_pp" and world_size() > 1:
            return advantages_over_ranks(scores.total, group_ids, keep, estimator), keep
        return compute_advantages(scores.total, group_ids, estimator, in_batch=keep), keep

    def first_groups_with_signal(self, signal: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
        """(N,) mask of the rows in the step's first `rollout.prompts_per_step` groups with
        signal (`signal`: (N,) rows to offer, of groups whose rewards differ), counted in
        sampling order over all ranks, so that the groups kept do not depend on the number of
        ranks. `group_ids` number this rank's prompts 0, 1, … over the step's rounds."""
        per_step = self.config.rollout.prompts_per_step
        # Every rank sampled the same rounds, per_step / ranks prompts each: the same length.
        rounds = -(-(int(group_ids.max()) + 1) // (per_step // world_size())) if len(group_ids) else 0
        groups = np.unique(group_ids[signal])  # this rank's groups with signal, in sampling order
        order = self.sampler.step_positions(groups)
        flags = np.zeros(rounds * per_step)
        flags[order] = 1.0
        first = np.flatnonzero(np.asarray(all_reduce(flags.tolist())))[:per_step]
        return np.isin(group_ids, groups[np.isin(order, first)])

    def pack(self, rollouts: Rollouts, advantages: np.ndarray, keep: np.ndarray, rows_total: int | None = None) -> PolicyBatch:
        """The kept rows as one batch, followed by `rows_total` − kept padding rows (copies of
        row 0 with an empty mask and no advantage) when other ranks kept more rows than this one."""
        kept = np.flatnonzero(keep)
        n_padding = (rows_total if rows_total is not None else len(kept)) - len(kept)
        rows = torch.from_numpy(np.concatenate([kept, np.zeros(n_padding, dtype=kept.dtype)])).to(self.device)
        padding = torch.arange(len(rows), device=self.device) >= len(kept)  # [N]
        completion_mask = rollouts.completion_mask[rows] * ~padding[:, None]  # [N, T]
        width = int(completion_mask.sum(dim=1).max().item()) if len(rows) else 0  # trim shared padding
        width = max(width, 1 if n_padding else 0)  # a padding row still needs one position to run
        completion_ids = rollouts.completion_ids[rows, :width]
        completion_mask = completion_mask[:, :width]
        sampler_logp = rollouts.sampler_logp[rows, :width] if rollouts.sampler_logp is not None else None
        return PolicyBatch(
            input_ids=torch.cat([rollouts.prompt_ids[rows], completion_ids], dim=1),
            attention_mask=torch.cat([rollouts.prompt_mask[rows], completion_mask], dim=1),
            completion_ids=completion_ids,
            completion_mask=completion_mask.float(),
            advantages=torch.from_numpy(advantages).to(self.device)[rows] * ~padding,
            sampler_logp=sampler_logp,
            padding=padding if n_padding else None,
        )

    # ---- 4. log-probs -------------------------------------------------------------------------

    def token_logprobs(self, model: Any, batch: PolicyBatch, *, with_entropy: bool = False) -> Any:
        """log p(completion token) under `model`: [N, T] (and the [N, T] entropy)."""
        if self.config.algorithm.fused_lm_head:
            hidden, weight = self.head_inputs(model, batch)
            return linear_token_logprobs(
                hidden, weight, batch.completion_ids, temperature=self.config.rollout.temperature,
                with_entropy=with_entropy, backend=self.config.algorithm.kernel_backend,
            )
        logits = completion_outputs(model, batch, share_prompts=self.share_prompts)  # [N, T, V]
        return token_logprobs(
            logits, batch.completion_ids, temperature=self.config.rollout.temperature,
            with_entropy=with_entropy, backend=self.config.algorithm.kernel_backend,
        )

    def head_inputs(self, model: Any, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The final hidden states that predict the completion tokens, [N, T, H], and the LM
        head's weight, [V, H], for the fused loss. The forward runs through `model` as usual
        (wrappers included); the [N, T, V] logits are never computed."""
        hidden = completion_outputs(model, batch, share_prompts=self.share_prompts, head_input=True)
        return hidden, unwrap(model).get_output_embeddings().weight

    @torch.no_grad()
    def reference_logprobs(self, model: Any, batch: PolicyBatch) -> torch.Tensor:
        """[N, T] log-probs of the completion tokens under `model`, micro-batch by micro-batch."""
        size = self.config.algorithm.micro_batch_size
        if len(batch) <= size:
            return self.token_logprobs(model, batch)
        order = self.micro_batch_order(batch)
        T = batch.completion_ids.shape[1]
        logp = torch.zeros(len(batch), T, device=self.device)
        for start in range(0, len(batch), size):
            rows = order[start : start + size]
            part = self.token_logprobs(model, narrowed(batch.rows(rows)))  # [n, t <= T]
            logp[rows, : part.shape[1]] = part
        return logp

    def micro_batch_order(self, batch: PolicyBatch) -> torch.Tensor:
        """[N] the order in which `batch`'s rows are cut into micro-batches: by completion length
        (see `by_length`), each prompt's rows together when they share its forward."""
        units = distinct_prompts(batch)[1] if self.share_prompts else torch.arange(len(batch), device=self.device)
        return by_length(batch, units)

    # ---- 5. update ----------------------------------------------------------------------------

    def mini_batch_totals(self, mini: PolicyBatch) -> tuple[float, float]:
        """(rows, completion tokens) of this mini-batch on all ranks together, padding excluded."""
        rows, tokens = all_reduce([float(mini.real_rows), float(mini.completion_mask.sum())])
        return rows, tokens

    def loss_weight(self, micro: PolicyBatch, totals: tuple[float, float]) -> float:
        """This micro-batch's share of its mini-batch on all ranks, so that gradient accumulation
        gives the same gradient as one pass over the whole mini-batch in one process, for every
        loss type: token-level losses are normalised by tokens, the others by sequences.

        Times the number of ranks, because DDP and FSDP average gradients over ranks. A padding
        row counts in `len(micro)` because the loss divides by it too (its own term is 0)."""
        rows, tokens = totals
        if self.config.algorithm.loss_type in ("bnpo", "dapo"):
            return float(micro.completion_mask.sum()) / max(tokens, 1.0) * world_size()
        return len(micro) / max(rows, 1.0) * world_size()

    def policy_loss(self, micro: PolicyBatch, advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clipped GRPO loss of one micro-batch and its metrics (kl, entropy, clip ratios)."""
        a = self.config.algorithm
        options: dict[str, Any] = dict(
            eps_low=a.eps_low, eps_high=a.eps_high, beta=a.beta, loss_type=a.loss_type,
            max_completion_length=self.config.rollout.max_new_tokens, backend=a.kernel_backend,
        )
        if a.fused_lm_head:
            hidden, weight = self.head_inputs(self.model, micro)
            return linear_grpo_loss(
                hidden, weight, micro.completion_ids, micro.old_logp, micro.ref_logp, advantages,
                micro.completion_mask, temperature=self.config.rollout.temperature, with_entropy=True, **options,
            )
        logp, entropy = self.token_logprobs(self.model, micro, with_entropy=True)
        return grpo_loss(logp, micro.old_logp, micro.ref_logp, advantages, micro.completion_mask, entropy=entropy, **options)

    def update(self, batch: PolicyBatch) -> dict[str, float]:
        """μ passes of mini-batch updates. Under torchrun every rank holds as many rows (see
        `pack`), so all ranks run the same micro-batches and meet in the same collectives."""
        a = self.config.algorithm
        sums: dict[str, float] = {}
        updates = skipped_rows = passes_with_rows = 0
        for _ in range(a.num_iterations):
            order = torch.randperm(len(batch), device=self.device)
            for chunk in order.chunk(a.mini_batches):
                mini = batch.rows(chunk)
                totals = self.mini_batch_totals(mini)
                # The loss is normalised over the whole mini-batch (`totals`), but only the rows
                # that can move the weights run the forward and backward passes. A mini-batch's
                # gradient does not depend on how it is cut into micro-batches: with a shared
                # prompt forward each prompt's rows stay together, so they share its forward.
                # Several micro-batches: rows of similar lengths together, each micro-batch cut to
                # its own longest row (one micro-batch keeps the plain order; it is as narrow).
                if len(mini) > a.micro_batch_size:
                    arranged = self.micro_batch_order(mini)
                elif self.share_prompts:
                    arranged = rows_by_prompt(mini)
                else:
                    arranged = torch.arange(len(mini), device=self.device)
                in_loss = mini.rows(arranged[self.rows_in_gradient(mini)[arranged]])  # one gather: the rows and their order
                skipped_rows += len(mini) - len(in_loss)
                metric_tokens = totals[1] if len(in_loss) == len(mini) else float(in_loss.completion_mask.sum())
                self.optimizer.zero_grad(set_to_none=True)
                losses, finite = [], True
                starts = range(0, len(in_loss), a.micro_batch_size)
                for start in starts:
                    micro = in_loss.rows(slice(start, start + a.micro_batch_size))
                    if len(starts) > 1:
                        micro = narrowed(micro)
                    # TIS: the clipped surrogate scales with the advantage, so a per-token
                    # weight on the advantage weights exactly that token's policy-gradient term.
                    advantages = micro.advantages if micro.tis_weight is None else micro.advantages[:, None] * micro.tis_weight  # [n] or [n, T]
                    with gradient_sync(self.model, enabled=start == starts[-1]):
                        loss, metrics = self.policy_loss(micro, advantages)
                        weight = self.loss_weight(micro, totals)
                        weighted = loss * weight
                        if not torch.isfinite(weighted):
                            finite = False
                            # Alone, the rest of the mini-batch is wasted work. With other ranks,
                            # every backward pass is a collective they wait on: carry on, and
                            # skip the step below together.
                            if world_size() == 1:
                                break
                        weighted.backward()
                    losses.append(weighted.item())
                    # The loss metrics are means over completion tokens: weighted by this
                    # micro-batch's share of the tokens (whatever the loss type), they add up to
                    # the mean over the whole mini-batch, however it was cut into micro-batches.
                    token_share = float(micro.completion_mask.sum()) / max(metric_tokens, 1.0) * world_size()
                    for key, value in metrics.items():
                        sums[key] = sums.get(key, 0.0) + float(value) * token_share
                passes_with_rows += bool(len(in_loss))
                if not len(in_loss):
                    # A zero gradient, as the full backward would have left: AdamW still moves
                    # the weights by its momentum and weight decay.
                    for p in self.model.parameters():
                        if p.requires_grad and p.grad is None:
                            p.grad = torch.zeros_like(p)
                if not all_ranks_true(finite):
                    self.optimizer.zero_grad(set_to_none=True)
                    sums["nonfinite_skipped"] = sums.get("nonfinite_skipped", 0.0) + 1
                    continue
                grad_norm = clip_grad_norm(self.model.parameters(), self.config.optim.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    sums["nonfinite_skipped"] = sums.get("nonfinite_skipped", 0.0) + 1
                    continue
                self.optimizer.step()
                sums["loss"] = sums.get("loss", 0.0) + sum(losses)
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
                updates += 1
        if updates:  # a step whose updates were all skipped leaves the schedule where it was
            self.scheduler.step()
            self.rollout.sync_weights()
        # Loss and grad norm: means over optimizer steps. The per-token metrics (entropy, kl,
        # clip fractions): means over the mini-batches whose rows ran, the only ones that add them.
        out = {
            k: v / max(updates if k in ("loss", "grad_norm") else passes_with_rows, 1)
            for k, v in sums.items() if k != "nonfinite_skipped"
        }
        out["nonfinite_skipped"] = sums.get("nonfinite_skipped", 0.0)
        out["optimizer_steps"] = float(updates)
        # Rows left out of the forward/backward passes (zero advantage), per pass over the batch.
        out["zero_advantage_rows"] = skipped_rows / a.num_iterations
        return out

    def rows_in_gradient(self, mini: PolicyBatch) -> torch.Tensor:
        """[n] bool: the rows of `mini` whose loss has a gradient. All of them, or (beta = 0, one
        process) those with a nonzero advantage.

        A row whose advantage is exactly 0 — every row of a group whose rewards were all equal,
        common once a prompt is always solved or never — adds exactly 0 to the clipped
        surrogate and to its gradient, whatever its ratio; without the KL term nothing else in
        the loss reads it. Left out of the passes but counted in the normaliser, it leaves the
        loss and gradient as they were (up to float rounding: fewer terms are summed). Under
        torchrun all ranks must run the same passes, so they keep every row."""
        if self.config.algorithm.beta > 0 or world_size() > 1:
            return torch.ones(len(mini), dtype=torch.bool, device=mini.advantages.device)
        return mini.advantages != 0

    # ---- the step -----------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        a = self.config.algorithm
        timings: dict[str, float] = {}

        @contextmanager
        def timed(name: str) -> Iterator[None]:
            start = time.perf_counter()
            yield
            key = f"time/{name}"
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - start

        examples, rollouts, scores, rounds, groups_with_signal = self.sample_step(timed)
        with timed("reward"):
            advantages, keep = self.advantages(scores, rollouts)
        # Under torchrun, dynamic sampling may keep more rows on one rank than on another: all
        # pad to the largest count, so they run the same forward/backward passes.
        rows_total = int(all_reduce([float(keep.sum())], "max")[0])
        batch = self.pack(rollouts, advantages, keep, rows_total)
        sampler_metrics: dict[str, float] = {}
        with timed("logprobs"):
            # The policy that sampled is the current one; its log-probs are only needed when it
            # changes before the last update of this batch (μ > 1 or several mini-batches), or
            # when another engine sampled (vLLM) and its log-probs are to be checked against them.
            if len(batch) and (a.num_iterations > 1 or a.mini_batches > 1 or batch.sampler_logp is not None):
                batch.old_logp = self.reference_logprobs(self.model, batch)
            if len(batch) and a.beta > 0:
                batch.ref_logp = self.reference_logprobs(self.ref_model, batch)
            if batch.old_logp is not None and batch.sampler_logp is not None:
                sampler_metrics = sampler_mismatch(batch.old_logp, batch.sampler_logp, batch.completion_mask)
                if a.tis_cap is not None:
                    batch.tis_weight = tis_weights(batch.old_logp, batch.sampler_logp, batch.completion_mask, a.tis_cap)
                    live = batch.completion_mask.sum().clamp(min=1)
                    sampler_metrics["rollout/tis_weight_mean"] = float((batch.tis_weight.sum() / live).item())
                # Means over this rank's tokens, scaled so that their mean over ranks is the
                # mean over all tokens (ranks hold different numbers of tokens).
                tokens = float(batch.completion_mask.sum())
                token_share = tokens / max(all_reduce([tokens])[0], 1.0) * world_size()
                for key in ("rollout/logp_abs_diff", "rollout/tis_weight_mean"):
                    if key in sampler_metrics:
                        sampler_metrics[key] *= token_share
        lr = float(self.scheduler.get_last_lr()[0])  # this step's: the update moves the schedule on
        with timed("update"):
            update_metrics = self.update(batch) if len(batch) else {"optimizer_steps": 0.0, "nonfinite_skipped": 0.0}

        lengths = rollouts.lengths.float()
        metrics = {
            **scores.metrics(),
            **update_metrics,
            **sampler_metrics,
            "response_length/mean": float(lengths.mean()),
            "response_length/max": float(lengths.max()),
            "truncated_rate": float(rollouts.truncated.float().mean()),
            "rows_in_loss": float(batch.real_rows),
            "lr": lr,
            **timings,
        }
        if self._accuracy_name is not None:
            metrics["accuracy"] = metrics[f"reward/{self._accuracy_name}"]
        if a.dynamic_sampling:
            # Groups with signal found in the step, all ranks together (the same on every rank,
            # so the mean over ranks keeps it), the rounds it took to find them, and this rank's
            # groups in the loss (summed over ranks below: at most prompts_per_step).
            metrics["dynamic_sampling/rounds"] = float(rounds)
            metrics["dynamic_sampling/groups"] = groups_with_signal
            metrics["dynamic_sampling/groups_kept"] = float(len(np.unique(rollouts.prompt_index.cpu().numpy()[keep])))
        # Whether the longer completions of a group got the higher (> 0) or lower (< 0)
        # advantages, over the rows in the loss: the pressure on response length this step.
        # Absent when no group varies in both.
        cross, length_square, advantage_square = all_reduce(list(length_advantage_sums(
            lengths.cpu().numpy()[keep], advantages[keep], rollouts.prompt_index.cpu().numpy()[keep])))
        if length_square > 0 and advantage_square > 0:
            metrics["length_advantage_corr"] = cross / float(np.sqrt(length_square * advantage_square))
        step_time = sum(timings.values())
        metrics["tokens_per_s"] = float(lengths.sum() + rollouts.prompt_mask.sum()) / max(step_time, 1e-9)
        self._check_nonfinite(update_metrics)
        # The first prompt's group, for completions.jsonl.
        first_prompt = self.template.render(examples[0], self.tokenizer)
        self._last_samples = [
            {"prompt": first_prompt, "completion": rollouts.texts[row], "reward": float(scores.total[row])}
            for row in range(self.config.rollout.group_size)
        ]
        return self._across_ranks(metrics)

    @staticmethod
    def _across_ranks(metrics: dict[str, float]) -> dict[str, float]:
        """Metrics of the whole step: means over ranks (every rank holds as many rollouts, and the
        loss terms are already weighted by their global share), except counts and rates, which
        add up, and maxima. The identity in a single process."""
        if world_size() == 1:
            return metrics
        totals = {"rows_in_loss", "tokens_per_s", "dynamic_sampling/groups_kept"}
        maxima = {"response_length/max", "rollout/logp_abs_diff_max"}
        out = mean_across_ranks(metrics)
        summed = [k for k in sorted(metrics) if k in totals]
        for key, value in zip(summed, all_reduce([metrics[k] for k in summed], "sum")):
            out[key] = value
        peaks = [k for k in sorted(metrics) if k in maxima]
        for key, value in zip(peaks, all_reduce([metrics[k] for k in peaks], "max")):
            out[key] = value
        return out

    def _check_nonfinite(self, update_metrics: dict[str, float]) -> None:
        skipped = update_metrics.get("nonfinite_skipped", 0.0) > 0 and update_metrics.get("optimizer_steps", 0.0) == 0
        self._nonfinite_in_a_row = self._nonfinite_in_a_row + 1 if skipped else 0
        if self._nonfinite_in_a_row >= self.config.run.max_consecutive_nonfinite:
            raise TrainingError(
                f"the loss or gradient was not finite for {self._nonfinite_in_a_row} steps in a row "
                f"(step {self.step}); lower optim.lr, check the rewards for NaN, or use float32"
            )

    # ---- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, examples: Sequence[Example] | None = None) -> EvalResult:
        """pass@k / maj@k / mean tokens / format rate on held-out problems.

        Under torchrun each rank samples every W-th problem and all ranks score the whole set."""
        examples = list(examples if examples is not None else self.eval_examples)
        sampling = self.sampling(
            greedy=self.config.eval.greedy, temperature=self.config.eval.temperature,
            max_new_tokens=self.config.eval.max_new_tokens,
        )
        with self._generating():
            mine = sample_for_eval(
                self.rollout, self.tokenizer, self.template, examples[rank() :: world_size()],
                samples=self.config.eval.samples, sampling=sampling,
            )
        per_rank = gather_objects(mine)
        # Rank r sampled problems r, r + W, r + 2W, …: interleave back into problem order.
        completions, tokens, truncated = [], [], []
        for index in range(len(examples)):
            source = per_rank[index % world_size()]
            completions.append(source[0][index // world_size()])
            tokens.append(source[1][index // world_size()])
            truncated.append(source[2][index // world_size()])
        return score_samples(
            examples, completions, tokens, ks=tuple(self.config.eval.ks), truncated=truncated,
            think_in_prompt=self.template.think_in_prompt, answer_tag=self.config.eval.answer_tag,
        )

    # ---- the loop -----------------------------------------------------------------------------

    def save(self, directory: Path) -> Path | None:
        """A consolidated checkpoint, written by rank 0 (every rank must call: it gathers)."""
        state = {"step": self.step, "data_position": self.sampler.position, "stage": self.config.name,
                 "world_size": world_size()}
        return save_checkpoint(directory, self.model, self.tokenizer, optimizer=self.optimizer, scheduler=self.scheduler, state=state)

    def resume(self, checkpoint: Path | None = None) -> bool:
        """Continues from `checkpoint` (default: the latest in the output folder, `final`
        included), whatever the number of ranks that wrote it; the metrics and completions
        logged after its step are dropped (they are logged again). Under torchrun the folder
        must be visible to every rank. False when there is nothing to resume from."""
        checkpoint = checkpoint or latest_checkpoint(self.output_dir)
        if checkpoint is None:
            return False
        load_model_weights(checkpoint, self.model)
        state = load_trainer_state(checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        self.step = int(state["step"])
        self.sampler.position = int(state["data_position"])
        self.rollout.sync_weights()  # a backend with its own copy of the weights (vLLM) reloads them
        drop_logged_after(self.output_dir, self.step)
        return True

    def train(self, *, resume: bool = False) -> dict[str, Any]:
        """Runs `run.steps` steps; returns the final metrics and evaluation."""
        run = self.config.run
        torch.manual_seed(run.seed + rank())
        resume_or_start_fresh(self, resume=resume, overwrite=run.overwrite)
        self.model.train()
        first_step = self.step
        history: dict[str, Any] = {}
        last_eval: tuple[int, EvalResult] | None = None  # (step, result) of the latest evaluation
        with RunLogger(
            self.output_dir, stage=self.config.name or "grpo", total_steps=run.steps,
            tensorboard=run.tensorboard, wandb_project=run.wandb_project, progress_bar=run.progress_bar,
            config=self.config.to_dict(),
        ) as logger, stop_after_the_step_on_interrupt() as interrupted:
            while self.step < run.steps:
                metrics = self.train_step()
                self.step += 1
                if self.config.eval.every and self.eval_examples and self.step % self.config.eval.every == 0:
                    last_eval = (self.step, self.evaluate())
                    metrics.update(last_eval[1].metrics())
                logger.log(self.step, metrics)
                if run.log_completions_every and self.step % run.log_completions_every == 0:
                    logger.log_completions(self.step, self._last_samples)
                saved = None
                if run.save_every and self.step % run.save_every == 0:
                    saved = self.save(self.output_dir / f"checkpoint-{self.step}")
                history = metrics
                if interrupted():
                    save_then_stop(saved, lambda: self.save(self.output_dir / f"checkpoint-{self.step}"))
            final_eval: dict[str, Any] | None = None
            logged: list[dict[str, Any]] = []
            if self.step == first_step:  # a finished run resumed: no step ran, what it logged stands
                logged = logged_at(self.output_dir, self.step)
                history = next((r for r in reversed(logged) if "reward/total" in r), history)
            if self.eval_examples:
                logged_eval = {k.removeprefix("eval/"): v for r in logged for k, v in r.items() if k.startswith("eval/")}
                if last_eval is not None and last_eval[0] == self.step:
                    final_eval = last_eval[1].summary  # the last step was just evaluated (and logged)
                elif logged_eval:
                    final_eval = logged_eval
                else:
                    result = self.evaluate()
                    logger.log(self.step, result.metrics())
                    final_eval = result.summary
        self.save(self.output_dir / "final")
        return {"train": history, "eval": final_eval}


def _check_fused_head(model: Any, strategy: str) -> None:
    """The fused loss computes logits as hidden @ W.T: a head that does more (a bias, scaled or
    soft-capped logits) or a weight that FSDP keeps sharded outside the forward cannot use it."""
    if strategy == "fsdp":
        raise ConfigError(
            "algorithm.fused_lm_head: not available with distributed.strategy fsdp (the head's weight "
            "is sharded outside the forward); use ddp, or turn fused_lm_head off"
        )
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear):
        raise ConfigError(f"algorithm.fused_lm_head: the model's output head is {type(head).__name__}, not a Linear layer")
    if head.bias is not None:
        raise ConfigError("algorithm.fused_lm_head: the model's LM head has a bias, which the fused loss does not add")
    config = getattr(model, "config", None)
    for name, neutral in (("final_logit_softcapping", None), ("logit_scale", 1.0), ("logits_scaling", 1.0)):
        value = getattr(config, name, neutral)
        if value is not None and value != neutral:
            raise ConfigError(
                f"algorithm.fused_lm_head: the model transforms its logits ({name} = {value}), "
                "which the fused loss does not; turn fused_lm_head off"
            )


def evaluate_policy(
    rollout: RolloutBackend,
    tokenizer: Any,
    template: PromptTemplate,
    examples: list[Example],
    *,
    samples: int,
    ks: Sequence[int],
    sampling: SamplingParams,
    batch_prompts: int = 64,
    answer_tag: bool = False,
) -> EvalResult:
    """Generates `samples` completions per example and scores them (reasonrl.evaluation);
    with `answer_tag` only answers inside ``<answer>…</answer>`` count."""
    completions, tokens, truncated = sample_for_eval(
        rollout, tokenizer, template, examples, samples=samples, sampling=sampling, batch_prompts=batch_prompts,
    )
    return score_samples(
        examples, completions, tokens, ks=tuple(ks), truncated=truncated, think_in_prompt=template.think_in_prompt,
        answer_tag=answer_tag,
    )


def sample_for_eval(
    rollout: RolloutBackend,
    tokenizer: Any,
    template: PromptTemplate,
    examples: list[Example],
    *,
    samples: int,
    sampling: SamplingParams,
    batch_prompts: int = 64,
) -> tuple[list[list[str]], list[list[int]], list[list[bool]]]:
    """Per example: its `samples` completions, their token counts and truncation flags."""
    completions: list[list[str]] = []
    tokens: list[list[int]] = []
    truncated: list[list[bool]] = []
    for start in range(0, len(examples), batch_prompts):
        chunk = examples[start : start + batch_prompts]
        out = rollout.generate([template.render(e, tokenizer) for e in chunk], samples, sampling)
        lengths = out.lengths.tolist()
        for p in range(len(chunk)):
            rows = range(p * samples, (p + 1) * samples)
            completions.append([out.texts[r] for r in rows])
            tokens.append([int(lengths[r]) for r in rows])
            truncated.append([bool(out.truncated[r]) for r in rows])
    return completions, tokens, truncated

