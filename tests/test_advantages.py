"""compute_advantages / filter_groups / token_advantages against a plain numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reasonrl
from reasonrl import InvalidInputError, compute_advantages, filter_groups, token_advantages

ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce_pp"]


def reference_advantages(
    rewards: np.ndarray, group_ids: np.ndarray, estimator: str, eps: float, in_batch: np.ndarray | None = None
) -> np.ndarray:
    """The formulas of the docstring, written as directly as possible (loops, float64)."""
    rewards = rewards.astype(np.float64)
    in_batch = np.ones(len(rewards), dtype=bool) if in_batch is None else in_batch
    out = np.zeros(len(rewards), dtype=np.float64)
    valid = ~np.isnan(rewards)
    for g in np.unique(group_ids):
        members = np.flatnonzero((group_ids == g) & valid)
        values = rewards[members]
        n = len(values)
        if n == 0:
            continue
        mean = values.mean()
        if estimator == "grpo":
            if n >= 2:
                out[members] = (values - mean) / (values.std(ddof=1) + eps)
        elif estimator in ("dr_grpo", "reinforce_pp"):
            out[members] = values - mean
        elif estimator == "rloo":
            if n >= 2:
                out[members] = values - (values.sum() - values) / (n - 1)
    out[~in_batch] = 0.0
    if estimator == "reinforce_pp":
        whitened = valid & in_batch
        centred = out[whitened]
        if len(centred) >= 2:
            out[whitened] = (centred - centred.mean()) / (centred.std(ddof=1) + eps)
        else:
            out[whitened] = 0.0
    return out


def reference_filter(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    keep = np.zeros(len(rewards), dtype=bool)
    for g in np.unique(group_ids):
        in_group = group_ids == g
        values = rewards[in_group]
        values = values[~np.isnan(values)]
        keep[in_group] = len(values) >= 2 and values.min() != values.max()
    return keep


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Ragged groups in any order, with occasional NaN rewards and repeated values."""
    n = draw(st.integers(min_value=0, max_value=200))
    n_groups = draw(st.integers(min_value=1, max_value=max(1, n)))
    ids = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n_groups, max_size=n_groups))
    group_ids = np.array([ids[draw(st.integers(0, n_groups - 1))] for _ in range(n)], dtype=np.int64)
    reward = st.one_of(
        st.sampled_from([0.0, 1.0, 0.5]),
        st.floats(-1e3, 1e3, allow_nan=False),
        st.just(float("nan")),
    )
    rewards = np.array(draw(st.lists(reward, min_size=n, max_size=n)), dtype=np.float64)
    return rewards, group_ids


@settings(max_examples=300, deadline=None)
@given(batch=batches(), estimator=st.sampled_from(ESTIMATORS), dtype=st.sampled_from([np.float32, np.float64]))
def test_every_estimator_matches_numpy_reference(batch, estimator, dtype):
    rewards, group_ids = batch
    rewards = rewards.astype(dtype)
    got = compute_advantages(rewards, group_ids, estimator, eps=1e-6)
    expected = reference_advantages(rewards, group_ids, estimator, 1e-6)
    assert got.dtype == np.float32 and got.shape == rewards.shape
    # float32 output: compare with a tolerance relative to the advantage's own magnitude.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * (1 + np.abs(expected).max(initial=0)))


@settings(max_examples=200, deadline=None)
@given(batch=batches(), estimator=st.sampled_from(ESTIMATORS), seed=st.integers(0, 2**32 - 1))
def test_rows_outside_the_batch_match_numpy_reference(batch, estimator, seed):
    """Rows left out of the loss (in_batch False) count in their group, get 0, and are left out
    of REINFORCE++'s whitening."""
    rewards, group_ids = batch
    in_batch = np.random.default_rng(seed).random(len(rewards)) < 0.7
    got = compute_advantages(rewards, group_ids, estimator, eps=1e-6, in_batch=in_batch)
    expected = reference_advantages(rewards, group_ids, estimator, 1e-6, in_batch)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * (1 + np.abs(expected).max(initial=0)))
    assert (got[~in_batch] == 0).all()


def test_reinforce_pp_gives_equal_groups_exactly_zero():
    # With every row in the batch the whitening mean is 0 exactly: no ±1e-17 of rounding, so
    # the trainer still skips these rows (advantage exactly 0, no gradient).
    got = compute_advantages([0.1, 0.2, 0.7, 1.0, 1.0], [0, 0, 0, 1, 1], "reinforce_pp")
    assert (got[3:] == 0).all() and (got[:3] != 0).all()


@pytest.mark.parametrize(("in_batch", "name"), [([True, False], "in_batch"), (np.array([1, 0, 1, 0]), "in_batch")])
def test_in_batch_must_be_bools_of_the_batch_length(in_batch, name):
    with pytest.raises(InvalidInputError, match=f"`{name}`"):
        compute_advantages([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], in_batch=in_batch)


@settings(max_examples=200, deadline=None)
@given(batch=batches())
def test_filter_groups_matches_reference(batch):
    rewards, group_ids = batch
    np.testing.assert_array_equal(filter_groups(rewards, group_ids), reference_filter(rewards, group_ids))


@settings(max_examples=100, deadline=None)
@given(batch=batches(), seed=st.integers(0, 2**32 - 1))
def test_result_does_not_depend_on_order(batch, seed):
    rewards, group_ids = batch
    order = np.random.default_rng(seed).permutation(len(rewards))
    for estimator in ESTIMATORS:
        straight = compute_advantages(rewards, group_ids, estimator)
        shuffled = compute_advantages(rewards[order], group_ids[order], estimator)
        np.testing.assert_allclose(shuffled, straight[order], rtol=1e-5, atol=1e-5)


def test_grpo_known_values_and_group_of_one():
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 0.7], dtype=np.float32)
    adv = compute_advantages(rewards, np.array([3, 3, 3, 3, 9]))
    z = 0.5 / np.sqrt(1 / 3)
    np.testing.assert_allclose(adv, [z, -z, -z, z, 0.0], rtol=1e-5)


def test_all_equal_group_gives_zero_not_nan():
    adv = compute_advantages(np.full(8, 0.3), np.zeros(8, dtype=np.int64), "grpo")
    assert np.all(np.isfinite(adv)) and np.allclose(adv, 0.0, atol=1e-6)


def test_nan_reward_is_ignored_and_gets_zero():
    adv = compute_advantages([1.0, float("nan"), 3.0], [0, 0, 0], "dr_grpo")
    np.testing.assert_allclose(adv, [-1.0, 0.0, 1.0])


def test_accepts_lists_torch_tensors_and_any_integer_dtype():
    rewards = [1.0, 0.0, 1.0, 1.0]
    expected = compute_advantages(np.array(rewards), np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(compute_advantages(rewards, [0, 0, 1, 1]), expected)
    np.testing.assert_array_equal(
        compute_advantages(torch.tensor(rewards, dtype=torch.bfloat16).float(), torch.tensor([0, 0, 1, 1])), expected
    )
    # bfloat16 itself (numpy has no such dtype): widened exactly, as float32 rewards.
    np.testing.assert_array_equal(
        compute_advantages(torch.tensor(rewards, dtype=torch.bfloat16), [0, 0, 1, 1]),
        compute_advantages(np.array(rewards, dtype=np.float32), [0, 0, 1, 1]),
    )
    np.testing.assert_array_equal(compute_advantages(np.array(rewards), np.array([0, 0, 1, 1], dtype=np.uint8)), expected)
    # Non-contiguous input is copied, not rejected.
    np.testing.assert_array_equal(compute_advantages(np.repeat(rewards, 2)[::2], [0, 0, 1, 1]), expected)


def test_large_batch_matches_reference():
    rng = np.random.default_rng(0)
    group_ids = np.repeat(np.arange(4096), 16)
    rng.shuffle(group_ids)
    rewards = rng.integers(0, 2, size=group_ids.size).astype(np.float32)
    for estimator in ESTIMATORS:
        got = compute_advantages(rewards, group_ids, estimator)
        np.testing.assert_allclose(got, reference_advantages(rewards, group_ids, estimator, 1e-6), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("rewards", "group_ids", "kwargs", "names"),
    [
        ([1.0, 2.0], [0], {}, "group_ids"),
        ([[1.0, 2.0]], [0, 0], {}, "rewards"),
        ([1.0, 2.0], [[0, 0]], {}, "group_ids"),
        (["a", "b"], [0, 0], {}, "rewards"),
        ([1.0, 2.0], [0.5, 1.5], {}, "group_ids"),
        ([1.0, float("inf")], [0, 0], {}, "rewards"),
        ([1.0, -1e308], [0, 0], {}, "rewards"),  # its sums would overflow: refused, not 0 or NaN
        ([1.0, 2.0], [0, 0], {"estimator": "ppo"}, "estimator"),
        ([1.0, 2.0], [0, 0], {"eps": -1.0}, "eps"),
        ([1.0, 2.0], [0, 0], {"eps": float("nan")}, "eps"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(rewards, group_ids, kwargs, names):
    with pytest.raises(InvalidInputError, match=f"`{names}`"):
        compute_advantages(rewards, group_ids, **kwargs)
    assert issubclass(InvalidInputError, ValueError) and issubclass(InvalidInputError, reasonrl.ReasonRLError)


def test_core_rejects_wrong_dtypes_without_the_python_wrapper():
    core = reasonrl._core
    with pytest.raises(InvalidInputError, match="`rewards`.*int64"):
        core.compute_advantages(np.array([1, 2]), np.array([0, 0]))
    with pytest.raises(InvalidInputError, match="`group_ids`.*int32"):
        core.compute_advantages(np.array([1.0, 2.0]), np.array([0, 0], dtype=np.int32))
    with pytest.raises(InvalidInputError, match="`rewards`.*contiguous"):
        core.compute_advantages(np.arange(4.0)[::2], np.array([0, 0]))


def test_token_advantages_numpy_and_torch():
    adv = np.array([0.5, -1.0], dtype=np.float32)
    mask = np.array([[1, 1, 0], [0, 1, 1]], dtype=bool)
    expected = np.array([[0.5, 0.5, 0.0], [0.0, -1.0, -1.0]], dtype=np.float32)
    out = token_advantages(adv, mask)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    out_t = token_advantages(torch.from_numpy(adv), torch.from_numpy(mask))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_array_equal(out_t.numpy(), expected)
    with pytest.raises(InvalidInputError, match="response_mask"):
        token_advantages(adv, mask[:1])


@pytest.mark.parametrize("estimator", ["grpo", "reinforce_pp"])  # the two that divide by a spread
def test_equal_rewards_give_zero_with_eps_zero(estimator):
    """eps = 0 is allowed: a group (or a batch) of equal rewards still gives 0, not 0 / 0."""
    assert reasonrl.compute_advantages([1.0, 1.0, 1.0], [0, 0, 0], estimator, eps=0.0).tolist() == [0.0, 0.0, 0.0]
    both = reasonrl.compute_advantages([1.0, 1.0, 2.0, 2.0], [0, 0, 1, 1], estimator, eps=0.0)
    assert both.tolist() == [0.0] * 4
