"""token_logprobs: the Triton kernels (interpreted on CPU) against the float64 torch reference."""

from __future__ import annotations

import pytest
import torch
from kernel_checks import assert_within_torch_error, requires_triton

from reasonrl.errors import InvalidInputError
from reasonrl.kernels import logprobs, token_logprobs, token_logprobs_ref

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def plain_torch(logits: torch.Tensor, targets: torch.Tensor, temperature: float):
    """What a user writes without the kernel: log_softmax and entropy in the input dtype."""
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    logp = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logp, entropy


def run_with_grads(fn, logits, targets, grad_logp, grad_entropy):
    logits = logits.detach().clone().requires_grad_()
    logp, entropy = fn(logits, targets)
    (logp.double() * grad_logp + entropy.double() * grad_entropy).sum().backward()
    return logp, entropy, logits.grad


@requires_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("shape", "vocab", "block_v", "temperature"),
    [
        ((3, 41), 1271, 256, 1.0),  # several vocabulary blocks, the last one partial
        ((57,), 1000, 4096, 0.7),  # one block wider than the vocabulary
    ],
)
def test_matches_reference_values_and_gradients(
    dtype, shape, vocab, block_v, temperature, device, monkeypatch
):
    monkeypatch.setattr(logprobs, "MAX_BLOCK_V", block_v)
    generator = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(*shape, vocab, generator=generator)).to(dtype).to(device)
    targets = torch.randint(0, vocab, shape, generator=generator).to(device)
    grad_logp = torch.randn(shape, generator=generator, dtype=torch.float64).to(device)
    grad_entropy = torch.randn(shape, generator=generator, dtype=torch.float64).to(device)

    def kernel(x, y):
        return token_logprobs(x, y, temperature=temperature, with_entropy=True, backend="triton")

    def reference(x, y):
        return token_logprobs_ref(x, y, temperature=temperature, with_entropy=True)

    def baseline(x, y):
        return plain_torch(x, y, temperature)

    ours = run_with_grads(kernel, logits, targets, grad_logp, grad_entropy)
    truth = run_with_grads(reference, logits.double(), targets, grad_logp, grad_entropy)
    torch_ = run_with_grads(baseline, logits, targets, grad_logp, grad_entropy)

    assert ours[0].dtype == ours[1].dtype == torch.float32
    assert ours[2].dtype == dtype
    for name, index in (("logp", 0), ("entropy", 1), ("grad logits", 2)):
        assert_within_torch_error(name, ours[index], torch_[index], truth[index])


@requires_triton
def test_logp_only_gradient_and_ignored_targets(device):
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 19, 1000, generator=generator).to(device).requires_grad_()
    targets = torch.randint(0, 1000, (2, 19), generator=generator).to(device)
    targets[0, :5] = -100
    logp = token_logprobs(logits, targets, backend="triton")
    logp.sum().backward()
    assert torch.all(logp[0, :5] == 0)
    # an ignored target still gets no gradient through log p (its row's gradient is all zero)
    assert torch.all(logits.grad[0, :5] == 0)

    reference_logits = logits.detach().double().requires_grad_()
    token_logprobs_ref(reference_logits, targets).sum().backward()
    torch.testing.assert_close(logp.double(), token_logprobs_ref(logits.double(), targets), rtol=0, atol=1e-5)
    torch.testing.assert_close(logits.grad.double(), reference_logits.grad, rtol=0, atol=1e-6)


@requires_triton
def test_masked_vocabulary_entries_give_no_nan(device, monkeypatch):
    monkeypatch.setattr(logprobs, "MAX_BLOCK_V", 256)
    logits = torch.randn(4, 1271).to(device)
    logits[:, :600] = float("-inf")  # e.g. tokens banned by the sampler: whole blocks of -inf
    logits[:, 900:1000] = float("-inf")
    targets = torch.tensor([600, 605, 1270, 899]).to(device)
    logits.requires_grad_()
    logp, entropy = token_logprobs(logits, targets, with_entropy=True, backend="triton")
    (logp + entropy).sum().backward()
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    assert torch.isfinite(logits.grad).all()
    reference_logits = logits.detach().double().requires_grad_()
    expected_logp, expected_entropy = token_logprobs_ref(reference_logits, targets, with_entropy=True)
    (expected_logp + expected_entropy).sum().backward()
    torch.testing.assert_close(logp.double(), expected_logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy.double(), expected_entropy, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits.grad.double(), reference_logits.grad, rtol=0, atol=1e-6)


@requires_triton
def test_sliced_logits_from_a_causal_model(device):
    # logits[:, :-1] of a [B, T + 1, V] model output is not viewable as [N, V]
    logits = torch.randn(2, 12, 1000).to(device)
    targets = torch.randint(0, 1000, (2, 11)).to(device)
    logp = token_logprobs(logits[:, :-1], targets, backend="triton")
    torch.testing.assert_close(logp, token_logprobs_ref(logits[:, :-1], targets), rtol=0, atol=1e-5)


def test_torch_backend_is_the_reference():
    logits = torch.randn(5, 7, 300, dtype=torch.bfloat16)
    targets = torch.randint(0, 300, (5, 7))
    logp, entropy = token_logprobs(logits, targets, with_entropy=True, backend="torch")
    expected_logp, expected_entropy = token_logprobs_ref(logits, targets, with_entropy=True)
    assert torch.equal(logp, expected_logp) and torch.equal(entropy, expected_entropy)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"logits": torch.zeros(3, 10, dtype=torch.int64)}, "logits"),
        ({"logits": [[0.0, 1.0]]}, "logits"),
        ({"targets": torch.zeros(4, dtype=torch.int64)}, "targets"),
        ({"targets": torch.zeros(3)}, "targets"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"temperature": None}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"backend": "cuda"}, "backend"),
    ],
)
def test_invalid_input_names_the_argument(kwargs, argument):
    call = {"logits": torch.zeros(3, 10), "targets": torch.zeros(3, dtype=torch.int64), **kwargs}
    logits, targets = call.pop("logits"), call.pop("targets")
    with pytest.raises(InvalidInputError, match=f"`{argument}`"):
        token_logprobs(logits, targets, **call)
