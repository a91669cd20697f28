"""grpo_loss: each loss_type against the formulas written out here, and against TRL's trainer."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_checks import requires_triton

from reasonrl.errors import InvalidInputError
from reasonrl.kernels import LOSS_TYPES, grpo_loss

BACKENDS = ["torch", pytest.param("triton", marks=requires_triton)]
EPS_LOW, EPS_HIGH, BETA = 0.2, 0.28, 0.04


def make_batch(B=4, T=1100, seed=0, device="cpu", dtype=torch.float32):
    """T = 1100 is not a multiple of the 1024-token block; row 2 is all padding."""
    generator = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=generator, dtype=torch.float64) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=generator, dtype=torch.float64)  # some clipping
    ref = logp + 0.3 * torch.randn(B, T, generator=generator, dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(B)[:B]  # both clip sides occur
    advantages = signs * (0.1 + torch.rand(B, generator=generator, dtype=torch.float64))
    lengths = torch.randint(1, T + 1, (B,), generator=generator)
    lengths[2] = 0
    mask = torch.arange(T)[None, :] < lengths[:, None]  # [B, T] right padding
    entropy = torch.rand(B, T, generator=generator, dtype=torch.float64) * 4
    cast = lambda x: x.to(dtype).to(device)  # noqa: E731
    return SimpleNamespace(
        logp=cast(logp), old=cast(old), ref=cast(ref), advantages=cast(advantages),
        mask=mask.to(device), entropy=cast(entropy), B=B, T=T,
    )


def formula_loss(batch, loss_type, max_completion_length):
    """The loss of the issue, term by term, in float64 (differentiable in batch.logp)."""
    logp = batch.logp.double()
    old, ref = batch.old.double(), batch.ref.double()
    A = batch.advantages.double()[:, None]
    m = batch.mask.double()
    r = torch.exp(logp - old)
    surrogate = torch.minimum(r * A, torch.clamp(r, 1 - EPS_LOW, 1 + EPS_HIGH) * A)
    kl = torch.exp(ref - logp) - (ref - logp) - 1
    per_token = (-surrogate + BETA * kl) * m
    if loss_type == "grpo":
        per_sequence = per_token.sum(1) / m.sum(1).clamp(min=1)
        loss = per_sequence.mean()
    elif loss_type in ("bnpo", "dapo"):
        loss = per_token.sum() / m.sum()
    else:
        loss = per_token.sum() / (batch.B * max_completion_length)
    tokens = m.sum()
    metrics = {
        "kl": (kl * m).sum() / tokens,
        "clip_ratio/low": (((r < 1 - EPS_LOW) & (A < 0)).double() * m).sum() / tokens,
        "clip_ratio/high": (((r > 1 + EPS_HIGH) & (A > 0)).double() * m).sum() / tokens,
        "entropy": (batch.entropy.double() * m).sum() / tokens,
    }
    return loss, metrics


def run(batch, backend, **options):
    logp = batch.logp.detach().clone().requires_grad_()
    loss, metrics = grpo_loss(
        logp, batch.old, batch.ref, batch.advantages, batch.mask, eps_low=EPS_LOW, eps_high=EPS_HIGH,
        beta=BETA, entropy=batch.entropy, backend=backend, **options,
    )
    loss.backward()
    return loss, metrics, logp.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_matches_the_formulas(loss_type, backend, device):
    batch = make_batch(device=device)
    loss, metrics, grad = run(batch, backend, loss_type=loss_type, max_completion_length=1500)

    batch64 = make_batch(device=device, dtype=torch.float64)
    batch64.logp.requires_grad_()
    expected, expected_metrics = formula_loss(batch64, loss_type, 1500)
    expected.backward()

    assert loss.dtype == torch.float32 and loss.shape == ()
    assert metrics["clip_ratio/low"] > 0 and metrics["clip_ratio/high"] > 0  # the data clips
    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-5, atol=1e-7)
    for name, value in expected_metrics.items():
        torch.testing.assert_close(metrics[name].double(), value, rtol=1e-5, atol=1e-7, msg=name)
    torch.testing.assert_close(grad.double(), batch64.logp.grad, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_never_contributes(backend, device):
    batch = make_batch(device=device)
    clean = run(batch, backend)
    for name, garbage in (("logp", float("nan")), ("old", float("inf")), ("ref", -float("inf"))):
        getattr(batch, name)[~batch.mask] = garbage
    batch.entropy[~batch.mask] = float("nan")
    dirty = run(batch, backend)
    assert torch.equal(clean[0], dirty[0])
    assert all(torch.equal(clean[1][k], dirty[1][k]) for k in clean[1])
    assert torch.equal(clean[2], dirty[2])
    assert torch.all(dirty[2][~batch.mask] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_all_padding_gives_no_nan(loss_type, backend, device):
    batch = make_batch(B=3, T=50, device=device)
    loss, metrics, grad = run(batch, backend, loss_type=loss_type)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.all(grad[2] == 0)  # the all-padding row

    batch.mask[:] = False
    loss, metrics, grad = run(batch, backend, loss_type=loss_type)
    assert loss.item() == 0.0 and torch.all(grad == 0)
    assert all(torch.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_advantages_and_low_precision_inputs(backend, device):
    batch = make_batch(B=3, T=300, device=device)
    per_sequence = run(batch, backend)
    batch.advantages = batch.advantages[:, None].expand(3, 300).contiguous()
    per_token = run(batch, backend)
    torch.testing.assert_close(per_token[0], per_sequence[0], rtol=0, atol=0)

    for dtype in (torch.bfloat16, torch.float16):
        low = make_batch(B=3, T=300, device=device, dtype=dtype)
        loss, _, grad = run(low, backend)
        exact = make_batch(B=3, T=300, device=device, dtype=dtype)  # same rounded values, in fp64
        for name in ("logp", "old", "ref", "advantages", "entropy"):
            setattr(exact, name, getattr(exact, name).double())
        exact.logp.requires_grad_()
        expected, _ = formula_loss(exact, "grpo", None)
        expected.backward()
        assert grad.dtype == dtype
        torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-5, atol=1e-7)
        # the gradient is computed in fp32, then rounded once to the input dtype
        bound = torch.finfo(dtype).eps * exact.logp.grad.abs().max()
        assert (grad.double() - exact.logp.grad).abs().max() <= bound


def test_on_policy_old_logp_none_matches_detached_copy():
    batch = make_batch(B=3, T=40)
    batch.old = None
    loss_none = run(batch, "torch")
    batch.old = batch.logp.clone()
    loss_copy = run(batch, "torch")
    torch.testing.assert_close(loss_none[0], loss_copy[0])
    torch.testing.assert_close(loss_none[2], loss_copy[2])


@requires_triton
def test_on_policy_triton_matches_torch(device):
    batch = make_batch(B=3, T=1030, device=device)
    batch.old = None
    torch_result, triton_result = run(batch, "torch"), run(batch, "triton")
    torch.testing.assert_close(triton_result[0], torch_result[0])
    torch.testing.assert_close(triton_result[2], torch_result[2])


def trl_compute_loss(batch, loss_type, max_completion_length):
    """Call TRL's own GRPOTrainer._compute_loss with a minimal stand-in for the trainer.

    Written against trl 1.16; the stub provides exactly the attributes that method reads.
    """
    trainer_module = pytest.importorskip("trl.trainer.grpo_trainer")

    class Accelerator:
        num_processes = 1
        sync_gradients = True

        def reduce(self, tensor, reduction="sum"):
            return tensor

        def gather(self, tensor):
            return tensor

        gather_for_metrics = gather

    logp = batch.logp.detach().clone().requires_grad_()
    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logp, batch.entropy, None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=BETA,
        loss_type=loss_type,
        epsilon_low=EPS_LOW,
        epsilon_high=EPS_HIGH,
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_completion_length,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        accelerator=Accelerator(),
    )
    B, T = batch.mask.shape
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": batch.mask.long(),
        "advantages": batch.advantages,
        "old_per_token_logps": batch.old,
        "ref_per_token_logps": batch.ref,
        "num_items_in_batch": batch.mask.sum(),
    }
    try:
        loss = trainer_module.GRPOTrainer._compute_loss(stub, None, inputs)
    except AttributeError as error:  # a newer TRL reads trainer state this stub does not have
        pytest.skip(f"TRL's GRPOTrainer._compute_loss changed shape: {error}")
    loss.backward()
    metrics = {name: values[-1] for name, values in stub._metrics["train"].items()}
    return loss, metrics, logp.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_matches_trl_grpo_trainer(loss_type, backend):
    batch = make_batch(B=4, T=300, dtype=torch.float64)
    expected, expected_metrics, expected_grad = trl_compute_loss(batch, loss_type, 512)
    batch32 = make_batch(B=4, T=300)
    loss, metrics, grad = run(batch32, backend, loss_type=loss_type, max_completion_length=512)

    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-5, atol=1e-9)
    for ours, theirs in (
        ("kl", "kl"), ("entropy", "entropy"), ("clip_ratio/low", "clip_ratio/low_mean"),
        ("clip_ratio/high", "clip_ratio/high_mean"), ("clip_ratio/region", "clip_ratio/region_mean"),
    ):
        assert math.isclose(metrics[ours].item(), expected_metrics[theirs], rel_tol=1e-5, abs_tol=1e-7), ours


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"loss_type": "ppo"}, "loss_type"),
        ({"backend": "jax"}, "backend"),
        ({"logp": torch.zeros(4)}, "logp"),
        ({"logp": torch.zeros(2, 5, dtype=torch.int32)}, "logp"),
        ({"old_logp": torch.zeros(2, 4)}, "old_logp"),
        ({"advantages": torch.zeros(3)}, "advantages"),
        ({"mask": torch.ones(2, 6)}, "mask"),
        ({"ref_logp": None, "beta": 0.1}, "ref_logp"),
        ({"eps_low": -0.1}, "eps_low"),
        ({"beta": float("inf")}, "beta"),
        ({"eps_high": float("nan")}, "eps_high"),
        ({"beta": True}, "beta"),
        ({"max_completion_length": 0}, "max_completion_length"),
        ({"max_completion_length": 4.0}, "max_completion_length"),
        ({"entropy": torch.zeros(5, 2)}, "entropy"),
        # An empty batch has no mean to take: an error, not a NaN loss.
        ({"logp": torch.zeros(0, 5), "old_logp": None, "ref_logp": None, "advantages": torch.zeros(0),
          "mask": torch.ones(0, 5)}, "logp"),
        ({"logp": torch.zeros(2, 0), "old_logp": None, "ref_logp": None, "mask": torch.ones(2, 0),
          "loss_type": "dr_grpo", "max_completion_length": 4}, "logp"),
    ],
)
def test_invalid_input_names_the_argument(change, argument):
    call = {
        "logp": torch.zeros(2, 5), "old_logp": torch.zeros(2, 5), "ref_logp": torch.zeros(2, 5),
        "advantages": torch.zeros(2), "mask": torch.ones(2, 5), **change,
    }
    positional = [call.pop(name) for name in ("logp", "old_logp", "ref_logp", "advantages", "mask")]
    with pytest.raises(InvalidInputError, match=f"`{argument}`"):
        grpo_loss(*positional, **call)


def test_numpy_scalars_are_numbers_too():
    """Values read through numpy (a config, a sweep) are accepted as the Python numbers they are."""
    import numpy as np

    args = (torch.zeros(2, 5), torch.zeros(2, 5), torch.zeros(2, 5), torch.ones(2), torch.ones(2, 5))
    plain, _ = grpo_loss(*args, beta=0.1, eps_high=0.28, loss_type="dr_grpo", max_completion_length=5)
    numpy, _ = grpo_loss(*args, beta=np.float32(0.1), eps_high=np.float64(0.28), loss_type="dr_grpo",
                         max_completion_length=np.int64(5))
    torch.testing.assert_close(numpy, plain)


@requires_triton
@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 5),
    T=st.integers(1, 300),
    loss_type=st.sampled_from(LOSS_TYPES),
    token_advantages=st.booleans(),
    on_policy=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_triton_matches_torch_on_any_shape(B, T, loss_type, token_advantages, on_policy, seed):
    generator = torch.Generator().manual_seed(seed)
    logp = -3 * torch.rand(B, T, generator=generator)
    old = None if on_policy else logp + 0.3 * torch.randn(B, T, generator=generator)
    ref = logp + 0.3 * torch.randn(B, T, generator=generator)
    advantages = torch.randn((B, T) if token_advantages else (B,), generator=generator)
    mask = torch.rand(B, T, generator=generator) < 0.7
    results = []
    for backend in ("torch", "triton"):
        leaf = logp.clone().requires_grad_()
        loss, metrics = grpo_loss(leaf, old, ref, advantages, mask, beta=BETA, loss_type=loss_type,
                                  backend=backend)
        loss.backward()
        results.append((loss, metrics, leaf.grad))
    (loss, metrics, grad), (t_loss, t_metrics, t_grad) = results
    torch.testing.assert_close(t_loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(t_grad, grad, rtol=1e-5, atol=1e-8)
    for name in metrics:
        torch.testing.assert_close(t_metrics[name], metrics[name].float(), rtol=1e-5, atol=1e-6)
