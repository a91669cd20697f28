"""linear_grpo_loss / linear_token_logprobs: the chunked fused path against the unfused one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from kernel_checks import assert_within_torch_error, requires_triton

from reasonrl.errors import InvalidInputError
from reasonrl.kernels import (
    linear_grpo_loss,
    linear_grpo_loss_ref,
    linear_token_logprobs,
    token_logprobs_ref,
)

BACKENDS = ["torch", pytest.param("triton", marks=requires_triton)]
LOSS_OPTIONS = {"eps_low": 0.2, "eps_high": 0.28, "beta": 0.04, "loss_type": "grpo"}


def make_problem(B=3, T=37, H=64, V=1271, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=generator, dtype=torch.float64)
    weight = torch.randn(V, H, generator=generator, dtype=torch.float64) / H**0.5
    targets = torch.randint(0, V, (B, T), generator=generator)
    with torch.no_grad():
        logp = token_logprobs_ref(hidden @ weight.T, targets)
    old = (logp + 0.3 * torch.randn(B, T, generator=generator, dtype=torch.float64)).float()
    ref = (logp + 0.3 * torch.randn(B, T, generator=generator, dtype=torch.float64)).float()
    advantages = torch.tensor([1.0, -0.7, 0.4])[:B]
    mask = torch.arange(T)[None, :] < torch.tensor([T, 20, 0])[:B, None]  # ragged, one all-padding
    put = lambda x: x.to(device)  # noqa: E731
    return tuple(map(put, (hidden, weight, targets, old, ref, advantages, mask)))


def loss_and_grads(fn, hidden, weight, rest, **options):
    hidden = hidden.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    loss, metrics = fn(hidden, weight, *rest, **options)
    loss.backward()
    return loss, metrics, hidden.grad, weight.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_matches_unfused_path(dtype, backend, device):
    hidden, weight, *rest = make_problem(device=device)
    ours = loss_and_grads(
        linear_grpo_loss, hidden.to(dtype), weight.to(dtype), rest, with_entropy=True,
        chunk_tokens=16, backend=backend, **LOSS_OPTIONS,  # 111 tokens: the last chunk is short
    )
    truth = loss_and_grads(linear_grpo_loss_ref, hidden, weight, rest, with_entropy=True, **LOSS_OPTIONS)
    plain = loss_and_grads(
        linear_grpo_loss_ref, hidden.to(dtype), weight.to(dtype), rest, with_entropy=True, **LOSS_OPTIONS
    )
    assert ours[2].dtype == ours[3].dtype == dtype
    assert_within_torch_error("loss", ours[0], plain[0], truth[0])
    for name in ("kl", "entropy", "clip_ratio/low", "clip_ratio/high"):
        assert_within_torch_error(name, ours[1][name], plain[1][name], truth[1][name])
    assert_within_torch_error("grad hidden", ours[2], plain[2], truth[2])
    assert_within_torch_error("grad weight", ours[3], plain[3], truth[3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_only_where_asked_and_scaled_by_upstream(backend, device):
    hidden, weight, *rest = make_problem(device=device)
    hidden = hidden.float().requires_grad_()
    loss, _ = linear_grpo_loss(hidden, weight.float(), *rest, chunk_tokens=50, backend=backend)
    (3 * loss).backward()
    expected_hidden = hidden.detach().clone().requires_grad_()
    expected, _ = linear_grpo_loss_ref(expected_hidden, weight.float(), *rest)
    (3 * expected).backward()
    torch.testing.assert_close(hidden.grad, expected_hidden.grad, rtol=1e-4, atol=1e-7)
    assert torch.all(hidden.grad[2] == 0)  # the all-padding sequence


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss_type", ["bnpo", "dr_grpo"])
def test_on_policy_with_temperature(loss_type, backend, device):
    hidden, weight, targets, _, ref, advantages, mask = make_problem(device=device)
    rest = (targets, None, ref, advantages, mask)  # old_logp=None: on-policy
    options = {**LOSS_OPTIONS, "loss_type": loss_type, "temperature": 0.8}
    ours = loss_and_grads(linear_grpo_loss, hidden.float(), weight.float(), rest, chunk_tokens=40,
                          backend=backend, **options)
    truth = loss_and_grads(linear_grpo_loss_ref, hidden, weight, rest, **options)
    torch.testing.assert_close(ours[0].double(), truth[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours[2].double(), truth[2], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours[3].double(), truth[3], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_token_logprobs(backend, device):
    hidden, weight, targets, *_ = make_problem(device=device)
    logp, entropy = linear_token_logprobs(
        hidden.float(), weight.float(), targets, with_entropy=True, temperature=0.9, chunk_tokens=10,
        backend=backend,
    )
    expected_logp, expected_entropy = token_logprobs_ref(
        hidden @ weight.T, targets, temperature=0.9, with_entropy=True
    )
    assert logp.shape == targets.shape and not logp.requires_grad
    torch.testing.assert_close(logp.double(), expected_logp, rtol=0, atol=2e-5)
    torch.testing.assert_close(entropy.double(), expected_entropy, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"hidden": torch.zeros(2, 5)}, "hidden"),
        ({"lm_head_weight": torch.zeros(11, 4)}, "lm_head_weight"),
        ({"lm_head_weight": torch.zeros(11, 8, dtype=torch.bfloat16)}, "lm_head_weight"),
        ({"targets": torch.zeros(2, 4, dtype=torch.long)}, "targets"),
        ({"mask": torch.ones(2, 4)}, "mask"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"loss_type": "sft"}, "loss_type"),
    ],
)
def test_invalid_input_names_the_argument(change, argument):
    call = {
        "hidden": torch.zeros(2, 5, 8), "lm_head_weight": torch.zeros(11, 8),
        "targets": torch.zeros(2, 5, dtype=torch.long), "old_logp": None, "ref_logp": None,
        "advantages": torch.zeros(2), "mask": torch.ones(2, 5), **change,
    }
    names = ("hidden", "lm_head_weight", "targets", "old_logp", "ref_logp", "advantages", "mask")
    positional = [call.pop(name) for name in names]
    with pytest.raises(InvalidInputError, match=f"`{argument}`"):
        linear_grpo_loss(*positional, **call)


# Peak resident memory of one forward + backward, measured in a fresh process: torch's CPU
# allocator keeps no statistics, so read the kernel's high-water mark (VmHWM) after resetting it
# (ru_maxrss would not do: Linux carries the parent's peak into a child across exec). A fixed
# mmap threshold makes glibc map and unmap every large buffer, so RSS follows live memory.
_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from reasonrl.kernels import linear_grpo_loss, linear_grpo_loss_ref
    torch.set_num_threads(1)
    fused = sys.argv[1] == "fused"

    def inputs(B, T, H, V):
        hidden = torch.randn(B, T, H, requires_grad=True)
        weight = (torch.randn(V, H) / H**0.5).requires_grad_()
        targets = torch.randint(0, V, (B, T))
        old, ref = -torch.rand(B, T) * 5, -torch.rand(B, T) * 5
        return (hidden, weight, targets, old, ref, torch.randn(B), torch.ones(B, T))

    def run(args):
        if fused:
            loss, _ = linear_grpo_loss(*args, beta=0.04, chunk_tokens=64, backend="torch")
        else:
            loss, _ = linear_grpo_loss_ref(*args, beta=0.04)
        loss.backward()

    def status_bytes(key):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key))

    run(inputs(2, 8, 16, 100))  # load every code path first
    args = inputs(8, 256, 128, 32000)  # unfused fp32 logits: 262 MB
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM to the current RSS
    before = status_bytes("VmRSS:")
    run(args)
    print(status_bytes("VmHWM:") - before)
    """
)


def _peak_bytes(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, mode], capture_output=True, text=True, timeout=300,
        check=True, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"},
    )
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc")
def test_fused_peak_memory_is_far_below_unfused():
    unfused, fused = _peak_bytes("unfused"), _peak_bytes("fused")
    logits_bytes = 8 * 256 * 32000 * 4
    assert unfused >= 2 * logits_bytes, f"unfused peak {unfused / 2**20:.0f} MiB: measurement broken?"
    assert fused <= unfused / 10, f"fused {fused / 2**20:.0f} MiB vs unfused {unfused / 2**20:.0f} MiB"
