"""`algorithm.share_prompt_forward`: scoring a group's completions on one forward pass over their
prompt gives the plain forward's logits and gradient, and trains exactly like it."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from fixed_rollout import FixedRollout
from same_training import assert_trains_alike

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.errors import TrainingError
from reasonrl.trainer.grpo import GRPOTrainer, PolicyBatch, completion_outputs, rows_by_prompt, select_cache_rows


def shuffled_groups(tokenizer, completion_width: int) -> PolicyBatch:
    """3 prompts of different lengths (left-padded) × 3 completions of different lengths
    (right-padded), rows shuffled so that groups are not contiguous."""
    torch.manual_seed(0)
    prompts = ["12+34=?<think>", "5+6=?", "99+1=?<think>"]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    G, T = 3, completion_width
    prompt_ids = encoded["input_ids"].repeat_interleave(G, dim=0)
    prompt_mask = encoded["attention_mask"].repeat_interleave(G, dim=0)
    completion_ids = torch.randint(4, len(tokenizer), (len(prompts) * G, T))
    lengths = torch.randint(1, T + 1, (len(prompts) * G,))
    completion_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    order = torch.randperm(len(prompts) * G)
    return PolicyBatch(
        input_ids=torch.cat([prompt_ids, completion_ids], dim=1)[order],
        attention_mask=torch.cat([prompt_mask, completion_mask], dim=1)[order],
        completion_ids=completion_ids[order],
        completion_mask=completion_mask[order].float(),
        advantages=torch.randn(len(prompts) * G),
    )


@pytest.mark.parametrize("head_input", [False, True], ids=["logits", "head-input"])
@pytest.mark.parametrize("width", [7, 1], ids=["completions", "one-token"])
def test_shared_prompt_forward_gives_the_plain_outputs_and_gradient(tiny_model, tokenizer, head_input, width):
    batch = shuffled_groups(tokenizer, width)
    weights = torch.randn(len(batch), width, 1)  # any loss of the outputs

    def outputs_and_grads(share: bool):
        tiny_model.zero_grad(set_to_none=True)
        out = completion_outputs(tiny_model, batch, share_prompts=share, head_input=head_input)
        (out * weights).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in tiny_model.named_parameters()}

    plain, plain_grads = outputs_and_grads(False)
    shared, shared_grads = outputs_and_grads(True)
    assert plain.shape == (len(batch), width, tiny_model.config.hidden_size if head_input else len(tokenizer))
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def backward_node_names(output: torch.Tensor) -> set[str]:
    """The names of every node in `output`'s autograd graph."""
    names, seen, stack = set(), set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("width", [7, 1], ids=["completions", "one-token"])
def test_shared_prompt_forward_has_a_repeatable_backward(tiny_model, tokenizer, width):
    # Copying each prompt's outputs and keys/values to its G rows by tensor indexing has a CPU
    # backward (index_put_ with accumulate) whose summation order follows thread timing: the
    # demo's runs drifted apart in the last bits of the k/v gradients. index_select adds in a
    # fixed order. The check is structural: a timing race cannot be provoked reliably.
    out = completion_outputs(tiny_model, shuffled_groups(tokenizer, width), share_prompts=True)
    names = backward_node_names(out)
    assert "IndexSelectBackward0" in names  # the prompt's outputs were copied to its rows
    assert not {n for n in names if n.startswith("Index") and n != "IndexSelectBackward0"}, names


def test_cache_layers_without_keys_use_their_own_selection_or_fail_clearly():
    class StateLayer:  # e.g. a recurrent state: no keys/values, its own row selection
        def __init__(self):
            self.state = torch.arange(2.0)

        def batch_select_indices(self, rows):
            self.state = self.state[rows]

    class OpaqueLayer:
        pass

    attention = SimpleNamespace(keys=torch.arange(2.0)[:, None], values=torch.arange(2.0)[:, None])
    state = StateLayer()
    select_cache_rows(SimpleNamespace(layers=[attention, state]), torch.tensor([1, 1, 0]))
    assert attention.keys[:, 0].tolist() == [1.0, 1.0, 0.0] and attention.values[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert state.state.tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(TrainingError, match=r"OpaqueLayer cache layer .*share_prompt_forward: false"):
        select_cache_rows(SimpleNamespace(layers=[OpaqueLayer()]), torch.tensor([0]))


def test_rows_by_prompt_puts_each_group_together_in_order(tokenizer):
    batch = shuffled_groups(tokenizer, 4)
    grouped = batch.rows(rows_by_prompt(batch))
    P = batch.input_ids.shape[1] - 4
    prompts = [tuple(row) for row in grouped.input_ids[:, :P].tolist()]
    # Three runs of three equal prompts, and the same rows as before (a permutation).
    assert [prompts[i] == prompts[i + 1] for i in range(8)] == [True, True, False, True, True, False, True, True]
    assert sorted(map(tuple, grouped.input_ids.tolist())) == sorted(map(tuple, batch.input_ids.tolist()))


def trainer_for(tmp_path, make_stage, model, tokenizer, problems, *, share, name, **algorithm):
    config = make_stage(
        tmp_path / name,
        algorithm={"share_prompt_forward": share, **algorithm},
        rollout={"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 12},
    )
    train, _ = problems
    return GRPOTrainer(config, model, tokenizer, train, rollout=FixedRollout(tokenizer), template=get_template(PROMPT_TEMPLATE))


@pytest.mark.parametrize(
    "algorithm",
    [
        {"loss_type": "dapo", "micro_batch_size": 8},
        # Micro-batches of 3 split groups (partial sharing); μ = 2, two mini-batches and beta > 0
        # score old and reference log-probs through the shared forward too; the fused head takes
        # its hidden states from it.
        {"loss_type": "grpo", "micro_batch_size": 3, "num_iterations": 2, "mini_batches": 2, "beta": 0.05},
        {"loss_type": "dapo", "micro_batch_size": 4, "fused_lm_head": True},
    ],
    ids=["dapo-one-micro-batch", "grpo-mu2-kl-split-groups", "fused-head"],
)
def test_training_with_shared_prompts_matches_the_plain_forward(tmp_path, make_stage, tiny_model, tokenizer, problems, algorithm):
    plain_model, shared_model = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    plain = trainer_for(tmp_path, make_stage, plain_model, tokenizer, problems, share=False, name="plain", **algorithm)
    shared = trainer_for(tmp_path, make_stage, shared_model, tokenizer, problems, share=True, name="shared", **algorithm)
    assert shared.share_prompts and not plain.share_prompts
    assert_trains_alike(plain, shared, plain_model, shared_model, tiny_model)


def test_sharing_is_off_where_the_cache_is(tmp_path, make_stage, tiny_model, tokenizer, problems):
    from reasonrl.trainer.models import enable_activation_checkpointing

    enable_activation_checkpointing(tiny_model)
    checkpointed = trainer_for(tmp_path, make_stage, tiny_model, tokenizer, problems, share=True, name="ckpt")
    assert not checkpointed.share_prompts  # activation checkpointing turns the model's cache off
    checkpointed.train_step()  # and the plain forward trains
