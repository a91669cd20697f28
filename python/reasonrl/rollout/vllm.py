"""Rollouts with vLLM, colocated with training on the same GPU (``rollout.backend: vllm``).

vLLM samples with paged attention, continuous batching and CUDA graphs — many times HF
`generate`'s tokens/s — but it holds its own copy of the weights. So, every step:

1. ``generate``: wake vLLM up (its weights and KV cache come back to the GPU), sample, put it to
   sleep again (``sleep(level=1)``: weights to CPU memory, KV cache dropped), which frees the
   GPU for the trainer's forward and backward passes. A step that samples several rounds (DAPO's
   dynamic sampling) runs them inside ``staying_awake``: one wake and one sleep for the step;
2. after each optimizer step, ``sync_weights`` pushes the policy's new weights into vLLM (under
   FSDP, gathered in full on every rank first). Every rank runs its own engine on its own GPU
   (vLLM's ``external_launcher`` executor, inside torchrun).

vLLM also reports the log-prob it gave each sampled token (``Rollouts.sampler_logp``); the
trainer compares them with its own (``rollout/logp_abs_diff``) and can correct for the
difference with truncated importance sampling (``algorithm.tis_cap``).

Needs ``pip install reasonrl[vllm]`` and a CUDA GPU.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from reasonrl.errors import ReasonRLError
from reasonrl.rollout.base import Rollouts, SamplingParams

__all__ = ["VLLMRollout", "rollouts_from_vllm"]

INSTALL_HINT = "the vLLM rollout backend needs vLLM: pip install reasonrl[vllm]"


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise ReasonRLError(f"rollout.backend is 'vllm' but vLLM is not installed ({error}); {INSTALL_HINT}") from None
    return vllm


class VLLMRollout:
    """Samples with a vLLM engine that runs in this process next to the trainer.

    Args:
        llm: a ``vllm.LLM`` (built by `for_policy` from a stage config, or by the caller).
        tokenizer: the policy's tokenizer (prompts are tokenized here, so both sides agree).
        policy: the training model whose weights `sync_weights` pushes (None: never synced).
        distributed: the stage's ``DistributedConfig`` (how the policy is sharded).
        sleep_mode: put the engine to sleep between generations (needs ``enable_sleep_mode``).
        device: where the returned tensors go (the policy's device).
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        *,
        policy: torch.nn.Module | None = None,
        distributed: Any = None,
        sleep_mode: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.policy = policy
        self.distributed = distributed
        self.sleep_mode = sleep_mode
        self.device = torch.device(device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._awake = {"weights", "kv_cache"}  # what of the engine is on the GPU now
        self._held = 0  # open `staying_awake` blocks: no sleep between generations inside one

    @classmethod
    def for_policy(cls, config: Any, policy: torch.nn.Module, tokenizer: Any, device: torch.device) -> VLLMRollout:
        """An engine for the stage's model (``model.name_or_path``), loaded with the policy's
        current weights. ``config`` is the stage's ``StageConfig``."""
        from reasonrl.trainer.distributed import rank, world_size

        vllm = import_vllm()
        if not torch.cuda.is_available():
            raise ReasonRLError("rollout.backend is 'vllm' but there is no CUDA GPU; use rollout.backend: hf on CPUs")
        # The engine in this process (no engine-core subprocess): weights load by reference,
        # without being pickled across a process boundary.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        r = config.rollout
        kwargs: dict[str, Any] = {
            "model": config.model.name_or_path,
            "dtype": config.model.dtype,
            "trust_remote_code": config.model.trust_remote_code,
            "gpu_memory_utilization": r.gpu_memory_utilization,
            "enable_sleep_mode": r.sleep_mode,
            "max_model_len": r.max_model_len,
            # Ranks sample different completions; vLLM seeds numpy too, which takes < 2**32.
            "seed": (config.run.seed + rank()) % 2**32,
            # Log-probs after temperature, as the trainer computes them (vLLM ≥ 0.10.2).
            "logprobs_mode": "processed_logprobs",
        }
        if world_size() > 1:
            kwargs["distributed_executor_backend"] = "external_launcher"  # one engine per torchrun rank
        llm = vllm.LLM(**kwargs)
        rollout = cls(llm, tokenizer, policy=policy, distributed=config.distributed, sleep_mode=r.sleep_mode, device=device)
        rollout.sync_weights()  # the policy may not be the file (an earlier stage, a resumed run)
        rollout._sleep()
        return rollout

    # ---- sleep / wake -----------------------------------------------------------------------

    def _wake(self, tags: Sequence[str]) -> None:
        missing = [t for t in tags if t not in self._awake]
        if not missing:
            return
        if "tags" in inspect.signature(self.llm.wake_up).parameters:
            self.llm.wake_up(tags=missing)
            self._awake.update(missing)
        else:  # older vLLM: everything at once
            self.llm.wake_up()
            self._awake = {"weights", "kv_cache"}

    @contextmanager
    def staying_awake(self) -> Iterator[None]:
        """Generations inside the block leave the engine awake between them, and it sleeps once
        at the end: a step's sampling rounds then move the weights to the GPU and back once,
        not once per round. Between rounds the trainer only scores rewards, with the engine's
        memory still taken."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            self._sleep()

    def _sleep(self) -> None:
        if self.sleep_mode and self._awake and not self._held:
            self.llm.sleep(level=1)  # weights to CPU memory, KV cache dropped
            self._awake = set()

    # ---- the backend ------------------------------------------------------------------------

    def sampling_params(self, n: int, sampling: SamplingParams) -> Any:
        vllm = import_vllm()
        eos = self.tokenizer.eos_token_id
        return vllm.SamplingParams(
            n=n,
            temperature=0.0 if sampling.greedy else sampling.temperature,
            top_p=1.0 if sampling.greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,  # the stop string's tokens are part of the completion, as with HF
            stop_token_ids=[eos] if eos is not None else None,
            logprobs=0,  # the sampled token's own log-prob only
        )

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts:
        prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        self._wake(["weights", "kv_cache"])
        try:
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for ids in prompt_ids], self.sampling_params(n, sampling), use_tqdm=False,
            )
        finally:
            self._sleep()
        return rollouts_from_vllm(outputs, prompt_ids, n, self.tokenizer, self.device)

    def sync_weights(self) -> None:
        """Pushes the policy's weights into the engine (every rank calls it: under FSDP the
        weights are gathered, a collective)."""
        if self.policy is None:
            return
        from reasonrl.trainer.distributed import gathered_weights, unwrap

        self._wake(["weights"])  # load_weights writes into the engine's GPU tensors
        if self.distributed is not None:
            with gathered_weights(self.policy, self.distributed):
                self.load_weights((name, p.detach()) for name, p in unwrap(self.policy).named_parameters())
        else:
            self.load_weights((name, p.detach()) for name, p in unwrap(self.policy).named_parameters())
        # The weights stay awake: the next thing the trainer does is generate, which wakes the
        # KV cache too, and the next sleep backs the new weights up.

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Hugging Face-named tensors into the engine's model (vLLM renames and fuses them)."""
        model = _engine_model(self.llm)
        if model is not None:
            model.load_weights(weights)
            return
        listed = list(weights)
        apply_model = getattr(self.llm, "apply_model", None)
        if apply_model is None:
            raise ReasonRLError(
                "cannot reach the vLLM engine's model to update its weights (neither "
                "llm.llm_engine.model_executor.driver_worker nor LLM.apply_model exists in this vLLM version)"
            )
        apply_model(lambda engine_model: engine_model.load_weights(listed))


def _engine_model(llm: Any) -> Any:
    """The torch model inside an in-process vLLM engine, or None (a multi-process engine)."""
    executor = getattr(getattr(llm, "llm_engine", None), "model_executor", None)
    worker = getattr(executor, "driver_worker", None)
    runner = getattr(worker, "model_runner", None) or getattr(getattr(worker, "worker", None), "model_runner", None)
    return getattr(runner, "model", None)


def rollouts_from_vllm(
    outputs: Sequence[Any], prompt_ids: Sequence[Sequence[int]], n: int, tokenizer: Any, device: torch.device | str,
) -> Rollouts:
    """vLLM's ``RequestOutput``s (one per prompt, each with n ``CompletionOutput``s) as `Rollouts`:
    prompts left-padded, completions right-padded, completion p·n + j for prompt p's j-th sample.

    A completion's tokens are vLLM's ``token_ids`` (they end with the EOS or the stop string's
    last token when it finished); ``finish_reason == "length"`` is a truncation; its
    ``logprobs`` (one {token id: Logprob} per token, with ``logprobs=0``) give ``sampler_logp``.
    """
    if len(outputs) != len(prompt_ids):
        raise ReasonRLError(f"vLLM returned {len(outputs)} outputs for {len(prompt_ids)} prompts")
    pad = tokenizer.pad_token_id
    completions = [c for out in outputs for c in out.outputs]
    if any(len(out.outputs) != n for out in outputs):
        raise ReasonRLError(f"vLLM returned {[len(o.outputs) for o in outputs]} completions per prompt, expected {n}")
    N = len(completions)
    P = max((len(ids) for ids in prompt_ids), default=0)
    T = max((len(c.token_ids) for c in completions), default=0)

    prompt_tensor = torch.full((N, P), pad, dtype=torch.long)  # [N, P] left-padded
    prompt_mask = torch.zeros((N, P), dtype=torch.long)
    completion_ids = torch.full((N, T), pad, dtype=torch.long)  # [N, T] right-padded
    completion_mask = torch.zeros((N, T), dtype=torch.long)
    has_logp = all(c.logprobs is not None for c in completions) and N > 0
    sampler_logp = torch.zeros((N, T), dtype=torch.float32) if has_logp else None
    for row, completion in enumerate(completions):
        prompt = list(prompt_ids[row // n])
        if prompt:
            prompt_tensor[row, P - len(prompt) :] = torch.tensor(prompt)
            prompt_mask[row, P - len(prompt) :] = 1
        tokens = list(completion.token_ids)
        if tokens:
            completion_ids[row, : len(tokens)] = torch.tensor(tokens)
            completion_mask[row, : len(tokens)] = 1
        if sampler_logp is not None:
            # One {token id: Logprob} per position; the sampled token is always in it.
            sampler_logp[row, : len(tokens)] = torch.tensor(
                [float(step[token].logprob) for step, token in zip(completion.logprobs, tokens)], dtype=torch.float32,
            )
    truncated = torch.tensor([c.finish_reason == "length" for c in completions], dtype=torch.bool)
    texts = tokenizer.batch_decode(completion_ids * completion_mask + pad * (1 - completion_mask), skip_special_tokens=True)
    prompt_index = torch.arange(len(outputs)).repeat_interleave(n)
    return Rollouts(
        prompt_tensor.to(device), prompt_mask.to(device), completion_ids.to(device), completion_mask.to(device), texts,
        truncated.to(device), prompt_index.to(device), None if sampler_logp is None else sampler_logp.to(device),
    )
