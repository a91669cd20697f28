"""Two trainers that must train alike on the same rollouts (a fast path against the plain one):
the same step metrics and, after the steps, the same weights."""

from __future__ import annotations

import pytest
import torch

METRICS = ("loss", "grad_norm", "entropy", "clip_ratio/region", "kl")


def assert_trains_alike(
    expected, got, expected_model, got_model, start_model, steps: int = 2, metrics: tuple[str, ...] = METRICS
) -> dict[str, float]:
    """`expected` and `got` (GRPOTrainers over `expected_model` and `got_model`, both copies of
    `start_model`) run `steps` steps with the same seeds, giving the same `metrics`; returns
    `got`'s metrics of the last step."""
    for _ in range(steps):
        torch.manual_seed(0)
        want = expected.train_step()
        torch.manual_seed(0)
        have = got.train_step()
        for key in metrics:
            if key in want:
                assert have[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    assert want["optimizer_steps"] >= 1
    for (name, a), b in zip(expected_model.named_parameters(), got_model.parameters()):
        if name.endswith("k_proj.bias"):
            # A key bias shifts every score of a query by the same amount, which softmax
            # ignores: its gradient is rounding noise, which Adam scales up to a step.
            continue
        # The weights moved by ~7e-3; Adam divides each gradient by its own running RMS, so
        # float32 rounding differences between the two paths show up as ~1e-6 in the weights.
        torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5, msg=name)
    # The weights moved: the comparison is not between two untouched models.
    assert any(not torch.equal(a, b) for a, b in zip(expected_model.parameters(), start_model.parameters()))
    return have
