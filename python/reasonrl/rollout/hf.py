"""Rollouts on the training model itself: batched sampling with a KV cache.

The default engine is a lean decode loop written for RL rollouts rather than `generate`:

- each prompt is encoded once and its KV cache copied G times (``prefill once, sample G``);
- rows that finished (EOS or a stop string) leave the batch, so the step cost follows the
  rows still running, not the longest one;
- no logits-processor or stopping-criteria machinery between steps;
- for Llama-family models (Llama, Mistral, Qwen2, Qwen3) the decode steps skip the Hugging Face
  modules and run on the weights directly (`reasonrl.rollout.lean`), about twice as fast where
  per-call overhead dominates (small models, small batches, CPU).

``engine="generate"`` uses Hugging Face `generate` instead, for models whose forward does not
take ``past_key_values`` / ``position_ids`` the usual way.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Literal

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from reasonrl.errors import InvalidInputError
from reasonrl.rollout.base import Rollouts, SamplingParams
from reasonrl.rollout.lean import LeanDecoder, unsupported_reason


class HFRollout:
    """Samples from the training model in place (no weight copy, so `sync_weights` is free).

    Args:
        model: the policy.
        tokenizer: its tokenizer; must have a pad token (the EOS token is used if it has none).
        batch_size: sequences decoded together (None: all at once), rounded down to whole
            prompt groups — caps activation and KV-cache memory.
        engine: ``"reasonrl"`` (the decode loop above) or ``"generate"`` (Hugging Face).
        lean_decode: with the ``"reasonrl"`` engine, run the decode steps of supported models
            through `LeanDecoder` (False: always through the model's forward).

    Attributes:
        decode_path: how the last decode ran: ``"lean"``, or ``"forward"`` with the reason the
            lean step was not used, or ``"generate"``.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int | None = None,
        engine: Literal["reasonrl", "generate"] = "reasonrl",
        lean_decode: bool = True,
    ):
        if engine not in ("reasonrl", "generate"):
            raise InvalidInputError(f"engine must be 'reasonrl' or 'generate', got {engine!r}")
        if batch_size is not None and batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.engine = engine
        self.lean_decode = lean_decode
        self.decode_path = ""
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def sync_weights(self) -> None:
        """Nothing to do: generation uses the training weights directly."""

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts:
        # Sampling runs in inference mode (no autograd bookkeeping at all: a fifth off every
        # decode step of a small model); what it returns is copied out of it, so that the
        # trainer can feed the tokens to a forward pass that records gradients.
        out = self._generate(prompts, n, sampling)
        copies: dict[str, Any] = {
            field.name: value.clone()
            for field in dataclasses.fields(out)
            if isinstance(value := getattr(out, field.name), torch.Tensor)
        }
        return dataclasses.replace(out, **copies)

    @torch.inference_mode()
    def _generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts:
        device = next(self.model.parameters()).device
        # Left padding: every prompt ends at the same column, where generation starts.
        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_ids = encoded["input_ids"].repeat_interleave(n, dim=0).to(device)  # [N, P]
        prompt_mask = encoded["attention_mask"].repeat_interleave(n, dim=0).to(device)  # [N, P]
        prompt_index = torch.arange(len(prompts), device=device).repeat_interleave(n)  # [N]

        was_training = self.model.training
        self.model.eval()
        chunks = []
        # Whole prompt groups per chunk, so the decode loop can prefill each prompt once.
        step = max(1, (self.batch_size or prompt_ids.shape[0]) // n) * n
        # Whether the lean step can run this model: decided once per call, not per chunk.
        why_not = (
            unsupported_reason(self.model, prompt_ids.shape[1] + sampling.max_new_tokens) if self.lean_decode else "lean_decode=False"
        )
        for start in range(0, prompt_ids.shape[0], step):
            rows = slice(start, start + step)
            if self.engine == "reasonrl":
                chunks.append(self._decode(prompt_ids[rows], prompt_mask[rows], n, sampling, why_not))
                continue
            out = self.model.generate(  # type: ignore[operator]  # transformers 5 stubs mistype `generate`
                input_ids=prompt_ids[rows],
                attention_mask=prompt_mask[rows],
                do_sample=not sampling.greedy,
                temperature=sampling.temperature if not sampling.greedy else None,
                top_p=sampling.top_p if not sampling.greedy else None,
                top_k=0 if not sampling.greedy else None,
                max_new_tokens=sampling.max_new_tokens,
                stop_strings=list(sampling.stop) or None,
                tokenizer=self.tokenizer if sampling.stop else None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.eos_ids,
            )
            chunks.append(out[:, prompt_ids.shape[1] :])
            self.decode_path = "generate"
        self.model.train(was_training)
        width = max(c.shape[1] for c in chunks)
        completion_ids = torch.cat(
            [torch.nn.functional.pad(c, (0, width - c.shape[1]), value=self.tokenizer.pad_token_id) for c in chunks]
        )  # [N, T]
        completion_mask, truncated = self._completion_mask(completion_ids, sampling)
        texts = self.tokenizer.batch_decode(completion_ids * completion_mask + self.tokenizer.pad_token_id * (1 - completion_mask), skip_special_tokens=True)
        return Rollouts(prompt_ids, prompt_mask, completion_ids, completion_mask, texts, truncated, prompt_index)

    def _decode(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, n: int, sampling: SamplingParams, why_not: str | None
    ) -> torch.Tensor:
        """[N, T] sampled tokens for N = prompts × n rows (groups contiguous), pad after a row's
        end. Rows leave the batch when they emit EOS or complete a stop string. `why_not`: why
        the lean step cannot run the model (None: it can)."""
        N, device = prompt_ids.shape[0], prompt_ids.device
        pad = self.tokenizer.pad_token_id
        eos = torch.tensor(self.eos_ids, device=device)
        out = torch.full((N, sampling.max_new_tokens), pad, dtype=prompt_ids.dtype, device=device)  # [N, T]
        if sampling.max_new_tokens == 0:
            return out

        # Prefill: one forward per distinct prompt, then its cache and last logits copied n times.
        firsts = prompt_ids[::n], prompt_mask[::n]  # [N/n, P]
        # Without left padding the causal mask is all there is: passing no attention mask spares
        # building a 4-D mask at every step (a tenth of a small model's decode time).
        padded = not bool(prompt_mask.all())
        positions = (firsts[1].cumsum(dim=1) - 1).clamp(min=0)  # left padding: count real tokens
        cache = DynamicCache(config=self.model.config)
        cache_arg = {cache_kwarg(self.model): cache}
        logits = self.model(
            input_ids=firsts[0], attention_mask=firsts[1] if padded else None, position_ids=positions,
            use_cache=True, logits_to_keep=1, **cache_arg,
        ).logits[:, -1]  # [N/n, V]
        logits = logits.repeat_interleave(n, dim=0)  # [N, V]
        lean = None
        if why_not is None:
            lean = LeanDecoder(self.model, cache, n, prompt_mask if padded else None, sampling.max_new_tokens)
            del cache, cache_arg  # the decoder holds its own copy
            self.decode_path = "lean"
        else:
            self.decode_path = f"forward ({why_not})"
            if n > 1:
                cache.batch_repeat_interleave(n)
        mask = prompt_mask  # [n_alive, P + t]
        next_position = positions[:, -1].repeat_interleave(n) + 1  # [n_alive]
        alive = torch.arange(N, device=device)  # rows of `out` still decoding

        stop_window = max((len(s) for s in sampling.stop), default=0)  # tokens ≥ 1 char each
        width = 0  # columns written so far
        for t in range(sampling.max_new_tokens):
            width = t + 1
            tokens = _pick_tokens(logits, sampling)  # [n_alive]
            out[alive, t] = tokens
            done = torch.isin(tokens, eos)
            if stop_window:
                done |= self._hit_stop(out[alive, max(0, t + 1 - stop_window) : t + 1], sampling.stop)
            if t + 1 == sampling.max_new_tokens:
                break
            if done.any():
                keep = torch.nonzero(~done).squeeze(1)
                if keep.numel() == 0:
                    break
                if lean is not None:
                    lean.keep_rows(keep)
                else:
                    cache.batch_select_indices(keep)
                alive, tokens, mask, next_position = alive[keep], tokens[keep], mask[keep], next_position[keep]
            if lean is not None:
                logits = lean.step(tokens, next_position)
            else:
                if padded:
                    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                logits = self.model(
                    input_ids=tokens[:, None], attention_mask=mask if padded else None, position_ids=next_position[:, None],
                    use_cache=True, **cache_arg,
                ).logits[:, -1]
            next_position = next_position + 1
        return out[:, :width]

    def _hit_stop(self, tails: torch.Tensor, stop: tuple[str, ...]) -> torch.Tensor:
        """[n_alive] whether a row's last tokens ([n_alive, W]) spell out a stop string. Rows stop
        at the first occurrence, so any occurrence in the window is a new one."""
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(s in text for s in stop) for text in texts], device=tails.device)

    def _completion_mask(self, completion_ids: torch.Tensor, sampling: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, T] mask up to and including the first EOS, and [N] whether there was none.

        Generation pads a row after its EOS, so the first EOS ends the completion. A row without
        one either stopped on a stop string (its last tokens spell one out, read as the decode
        loop read them: it is finished, and its mask ends at its last generated token, the
        padding after it left out) or ran out of `max_new_tokens` (truncated: all T columns are
        its own).
        """
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_ids, device=completion_ids.device))
        N, T = completion_ids.shape
        no_eos = torch.full((N,), T, device=completion_ids.device)
        first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), no_eos)  # [N]
        positions = torch.arange(T, device=completion_ids.device).expand(N, T)
        mask = (positions <= first_eos[:, None]).long()  # [N, T]
        truncated = first_eos == T
        if sampling.stop:
            # Both decode paths pad a stopped row after its last token: the stop string's end.
            generated = completion_ids != self.tokenizer.pad_token_id  # [N, T]
            last = T - 1 - generated.flip(dims=[1]).int().argmax(dim=1)  # [N] last non-pad column
            # The row's last tokens, the window `_hit_stop` checked at each step (a token is at
            # least one character): a stop string found there is the one the row stopped on,
            # wherever in the window it ends (inside a token, or before trailing whitespace).
            window = max(len(s) for s in sampling.stop)
            tails = [completion_ids[row, max(0, int(last[row]) + 1 - window) : int(last[row]) + 1].tolist() for row in range(N)]
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
            stopped = torch.tensor([any(s in t for s in sampling.stop) for t in texts], device=mask.device)
            stopped &= truncated  # only rows without an EOS end on a stop string
            truncated &= ~stopped
            end = torch.where(stopped, last, first_eos)  # [N]
            mask = (positions <= end[:, None]).long()
        return mask, truncated


def cache_kwarg(model: torch.nn.Module) -> str:
    """The name of `model.forward`'s KV-cache argument: `cache` in transformers ≥ 5.2x,
    `past_key_values` before (still accepted there, with a deprecation warning)."""
    model_class: Any = type(model)  # hashable, which torch's stubs hide from functools.cache
    return _cache_kwarg_of(model_class)


@functools.cache
def _cache_kwarg_of(model_class: Any) -> str:
    # Read once per class: every rollout and every shared-prompt scoring pass asks.
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _pick_tokens(logits: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    """[n] next tokens from [n, V] logits: greedy, or sampled at `temperature` from the
    smallest set of tokens whose probability reaches `top_p` (nucleus sampling)."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)  # [n, V]
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= sampling.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    # Inverse-CDF sampling: the first token whose cumulative probability reaches u·total, for u
    # uniform in (0, 1]. A token of probability 0 adds nothing to the sum, so it is never the
    # first to reach it. Same law as `torch.multinomial`, in under half its time at [64, 45].
    cumulative = probs.cumsum(dim=-1)  # [n, V]
    threshold = (1.0 - torch.rand_like(cumulative[:, :1])) * cumulative[:, -1:]  # [n, 1], in (0, total]
    return (cumulative < threshold).sum(dim=-1).clamp_(max=probs.shape[-1] - 1)
