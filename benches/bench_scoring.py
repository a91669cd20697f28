"""Scoring a GRPO batch (forward + backward of the completion log-probs) with each prompt run once
for its whole group (`algorithm.share_prompt_forward`, reasonrl's default in one process) against
the plain forward over every prompt + completion row (what TRL and a plain trainer do).

    python benches/bench_scoring.py [--prompt-tokens 128] [--completion-tokens 128] [--group-size 8]

Same model (a small Qwen2, random weights, fp32), same rows, same loss; the two give the same
gradient (checked here, and in tests/trainer/test_shared_prompts.py). The saving grows with
the prompt's share of each row and with the group size.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from reasonrl.trainer.grpo import PolicyBatch, completion_outputs


def build(args: argparse.Namespace) -> tuple[Qwen2ForCausalLM, PolicyBatch]:
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=512, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=3 * args.hidden, max_position_embeddings=1024)
    model = Qwen2ForCausalLM(config).train()
    B, G, P, T = args.prompts, args.group_size, args.prompt_tokens, args.completion_tokens
    prompts = torch.randint(1, 512, (B, P)).repeat_interleave(G, dim=0)
    completions = torch.randint(1, 512, (B * G, T))
    lengths = torch.randint(T // 2, T + 1, (B * G,))
    completion_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = PolicyBatch(
        input_ids=torch.cat([prompts, completions], dim=1),
        attention_mask=torch.cat([torch.ones_like(prompts), completion_mask], dim=1),
        completion_ids=completions, completion_mask=completion_mask.float(), advantages=torch.randn(B * G),
    )
    return model, batch


def score(model: Qwen2ForCausalLM, batch: PolicyBatch, share: bool) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logits = completion_outputs(model, batch, share_prompts=share)  # [N, T, V]
    logp = logits.log_softmax(-1).gather(-1, batch.completion_ids[..., None])[..., 0]
    (-(logp * batch.completion_mask).sum(1) * batch.advantages).mean().backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--completion-tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model, batch = build(args)

    plain_grads, shared_grads = score(model, batch, False), score(model, batch, True)
    worst = max(float((a - b).norm() / b.norm().clamp(min=1e-30)) for a, b in zip(shared_grads, plain_grads))
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):  # interleaved, so that machine noise hits both sides alike
        for share in (False, True):
            start = time.perf_counter()
            score(model, batch, share)
            seconds[share].append(time.perf_counter() - start)
    plain, shared = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"scoring forward + backward, {args.prompts} prompts x {args.group_size} completions, "
          f"{args.prompt_tokens} prompt + <= {args.completion_tokens} completion tokens, "
          f"Qwen2 {args.layers}x{args.hidden}, CPU, {torch.get_num_threads()} threads, median of {args.rounds}")
    print(f"{'plain forward (every row runs its prompt)':<46}{plain:>9.3f} s")
    print(f"{'shared prompt forward (reasonrl)':<46}{shared:>9.3f} s   {plain / shared:.2f}x")
    print(f"largest relative gradient difference between the two: {worst:.1e}")


if __name__ == "__main__":
    main()
