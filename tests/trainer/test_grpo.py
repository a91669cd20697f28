"""The GRPO trainer on a tiny local model: a step runs end to end, the loss sees only the
completion tokens, checkpoints resume exactly, and non-finite losses are skipped then stop."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from fixed_rollout import FixedRollout
from transformers import AutoModelForCausalLM

from reasonrl.data import Example, get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.rollout import HFRollout, SamplingParams
from reasonrl.trainer.grpo import GRPOTrainer, PromptSampler, TrainingError


@pytest.fixture
def make_trainer(make_stage):
    def build(tmp_path, model, tokenizer, train, **sections):
        config = make_stage(tmp_path, **sections)
        return GRPOTrainer(config, model, tokenizer, train, template=get_template(PROMPT_TEMPLATE))

    return build


@pytest.fixture
def seeded_trainer(make_trainer, tokenizer, problems):
    """A trainer over a fresh small model whose weights are the same at every call (seed 0),
    in `folder`: what an exact resume must reproduce."""
    from reasonrl.demo import DemoSettings
    from reasonrl.demo.run import build_tiny_model

    settings = DemoSettings(hidden_size=32, layers=2, heads=2)

    def build(folder, **run):
        torch.manual_seed(0)
        return make_trainer(folder, build_tiny_model(len(tokenizer), tokenizer, settings), tokenizer, problems[0], run=run)

    return build


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_step_reports_every_metric_and_changes_the_weights(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    train, _ = problems
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, train)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    metrics = trainer.train_step()
    for key in ("reward/total", "reward/accuracy", "reward/format", "accuracy", "response_length/mean",
                "response_length/max", "truncated_rate", "grad_norm", "lr", "tokens_per_s", "time/generate",
                "time/reward", "time/logprobs", "time/update", "zero_advantage_rows"):
        assert key in metrics, key
    # Means over the tokens of the rows that ran forward and backward: none run when every
    # advantage is 0 (a random model earns the same reward everywhere).
    for key in ("entropy", "clip_ratio/low", "clip_ratio/high"):
        assert (key in metrics) == (metrics["zero_advantage_rows"] < 8), key
    assert metrics["optimizer_steps"] == 1
    changed = any(not torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
    # All-equal rewards give zero advantages and no update; the format reward makes that unlikely.
    assert changed or metrics["reward/total"] in (0.0, 1.5)


def test_kl_to_a_frozen_reference_only_when_beta_is_positive(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    train, _ = problems
    assert make_trainer(tmp_path, tiny_model, tokenizer, train).ref_model is None
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, train, algorithm={"beta": 0.1, "num_iterations": 2})
    assert trainer.ref_model is not tiny_model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    reference = [p.detach().clone() for p in trainer.ref_model.parameters()]
    first = trainer.train_step()
    second = trainer.train_step()
    assert first["kl"] >= 0 and second["kl"] >= 0
    # The reference stays frozen while the policy moves.
    assert all(torch.equal(a, b) for a, b in zip(reference, trainer.ref_model.parameters()))


def test_rollout_masks_stop_at_eos(tiny_model, tokenizer):
    rollout = HFRollout(tiny_model, tokenizer)
    out = rollout.generate(["12+34=?<think>", "5+6=?<think>"], 3, SamplingParams(max_new_tokens=10))
    assert out.completion_ids.shape[0] == 6 and out.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    for row in range(6):
        ids = out.completion_ids[row][out.completion_mask[row].bool()].tolist()
        if tokenizer.eos_token_id in ids:
            assert ids.index(tokenizer.eos_token_id) == len(ids) - 1 and not out.truncated[row]
        else:
            assert len(ids) == 10 and out.truncated[row]


def test_logprobs_ignore_prompt_padding(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    """A row's log-probs must not depend on how much left padding its batch needed."""
    from reasonrl.trainer.grpo import PolicyBatch

    train, _ = problems
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, train)
    completion = tokenizer("3 so 3.</think>", add_special_tokens=False)["input_ids"]

    def batch(prompts):
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(map(len, ids))
        rows = [[tokenizer.pad_token_id] * (width - len(i)) + i + completion for i in ids]
        mask = [[0] * (width - len(i)) + [1] * (len(i) + len(completion)) for i in ids]
        n = len(prompts)
        return PolicyBatch(
            torch.tensor(rows), torch.tensor(mask), torch.tensor([completion] * n),
            torch.ones(n, len(completion)), torch.zeros(n),
        )

    padded = trainer.reference_logprobs(tiny_model, batch(["1+2=?<think>", "100+200=?<think>"]))
    alone = batch(["1+2=?<think>"])
    torch.testing.assert_close(padded[:1], trainer.reference_logprobs(tiny_model, alone), rtol=1e-4, atol=1e-5)
    # And they are the plain next-token log-probs of the completion under the full forward pass.
    with torch.no_grad():
        full = torch.log_softmax(tiny_model(input_ids=alone.input_ids).logits.float(), dim=-1)[0]
    n = len(completion)
    expected = full[-n - 1 : -1].gather(1, torch.tensor(completion)[:, None])[:, 0]
    torch.testing.assert_close(padded[0], expected, rtol=1e-4, atol=1e-5)


def test_resume_continues_exactly(tmp_path, seeded_trainer):
    straight = seeded_trainer(tmp_path / "a", steps=3)
    straight.train()
    seeded_trainer(tmp_path / "b", steps=2, save_every=2).train()
    resumed = seeded_trainer(tmp_path / "b", steps=3)
    resumed.train(resume=True)
    assert_same_weights(straight.model, resumed.model)
    lines = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "reward/total" in x] == [1, 2, 3]  # the longer run went on from `final`


def test_ctrl_c_finishes_the_step_saves_it_and_resume_continues_exactly(tmp_path, seeded_trainer, capsys):
    import os
    import signal

    straight = seeded_trainer(tmp_path / "a", steps=3)
    straight.train()
    # What SIGINT did before the run (ignored when the tests run in a background job).
    handler_before = signal.getsignal(signal.SIGINT)

    def pressing_ctrl_c(trainer, times: int):
        """Ctrl-C `times` times at the start of the trainer's second step, then the step itself."""
        step, calls = trainer.train_step, []

        def train_step():
            calls.append(1)
            if len(calls) == 2:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)
            return step()

        trainer.train_step = train_step
        return trainer

    interrupted = pressing_ctrl_c(seeded_trainer(tmp_path / "b", steps=3), times=1)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    run_dir = tmp_path / "b" / "run"
    # The step in flight finished and was saved; nothing after it ran.
    assert (run_dir / "checkpoint-2").is_dir() and not (run_dir / "final").exists()
    assert "interrupted: saved" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler_before  # the handler is put back
    resumed = seeded_trainer(tmp_path / "b", steps=3)
    resumed.train(resume=True)
    assert_same_weights(straight.model, resumed.model)

    # A second Ctrl-C stops at once, inside the step, without saving it.
    twice = pressing_ctrl_c(seeded_trainer(tmp_path / "c", steps=3), times=2)
    with pytest.raises(KeyboardInterrupt):
        twice.train()
    assert not (tmp_path / "c" / "run" / "checkpoint-2").exists()


def test_resume_after_a_crash_logs_each_step_once(tmp_path, seeded_trainer, capsys):
    straight = seeded_trainer(tmp_path / "a", steps=3)
    straight.train()
    # A run that logged step 3 and then died before saving anything after checkpoint-2.
    seeded_trainer(tmp_path / "b", steps=3, save_every=2).train()
    shutil.rmtree(tmp_path / "b" / "run" / "final")
    resumed = seeded_trainer(tmp_path / "b", steps=3)
    resumed.train(resume=True)
    assert "resumed at step 2" in capsys.readouterr().out
    assert_same_weights(straight.model, resumed.model)
    lines = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "reward/total" in x] == [1, 2, 3]

    # Nothing to resume from: said, and the run starts at step 0.
    fresh = seeded_trainer(tmp_path / "c", steps=1)
    fresh.train(resume=True)
    assert "no checkpoint in" in capsys.readouterr().out and fresh.step == 1


def test_a_fresh_run_into_an_earlier_runs_folder_refuses_or_replaces_it(tmp_path, seeded_trainer):
    from reasonrl.config import ConfigError

    seeded_trainer(tmp_path / "a", steps=3, save_every=2).train()
    folder = tmp_path / "a" / "run"
    assert (folder / "checkpoint-2").is_dir()
    # Without --resume its metrics would be appended to and checkpoint-2 resumed from later.
    with pytest.raises(ConfigError, match=r"holds an earlier run \(metrics.jsonl, completions.jsonl, config.yaml, final, checkpoint-2\)"):
        seeded_trainer(tmp_path / "a", steps=1).train()
    (folder / "notes.txt").write_text("mine")
    seeded_trainer(tmp_path / "a", steps=1, overwrite=True).train()
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "reward/total" in x] == [1]
    assert not (folder / "checkpoint-2").exists() and (folder / "final").is_dir()
    assert (folder / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_resuming_a_finished_run_does_not_evaluate_or_log_it_again(tmp_path, tiny_model, tokenizer, problems, make_stage):
    train, heldout = problems
    config = make_stage(tmp_path, run={"steps": 2}, eval={"samples": 1, "max_new_tokens": 8})
    template = get_template(PROMPT_TEMPLATE)
    first = GRPOTrainer(config, tiny_model, tokenizer, train, eval_examples=heldout[:4], template=template).train()
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    again = GRPOTrainer(config, tiny_model, tokenizer, train, eval_examples=heldout[:4], template=template)
    evaluated = []
    again.evaluate = lambda *a, **k: evaluated.append(1)
    resumed = again.train(resume=True)
    assert evaluated == [] and (tmp_path / "run" / "metrics.jsonl").read_text() == before
    assert resumed["eval"]["pass@1"] == first["eval"]["pass@1"]
    assert resumed["train"]["reward/total"] == first["train"]["reward/total"]


def test_final_model_loads_with_from_pretrained(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    train, _ = problems
    make_trainer(tmp_path, tiny_model, tokenizer, train, run={"steps": 1}).train()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    for a, b in zip(loaded.state_dict().values(), tiny_model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


def test_the_run_folder_holds_the_config_it_trained_with(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    from reasonrl.config import load_config

    trainer = make_trainer(tmp_path, tiny_model, tokenizer, problems[0], run={"steps": 1}, algorithm={"beta": 0.04})
    trainer.train()
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved == trainer.config  # every field, defaults included
    assert saved.algorithm.beta == 0.04 and saved.algorithm.eps_high == trainer.config.algorithm.eps_high


def test_nonfinite_loss_is_skipped_then_stops_the_run(tmp_path, tiny_model, tokenizer, problems, make_stage, monkeypatch):
    import reasonrl.trainer.grpo as grpo_module

    train, _ = problems
    # Completions with varied rewards: the loss of zero-advantage rows is never computed.
    config = make_stage(tmp_path, run={"steps": 5, "max_consecutive_nonfinite": 2})
    trainer = GRPOTrainer(config, tiny_model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), rollout=FixedRollout(tokenizer))
    real_loss = grpo_module.grpo_loss

    def nan_loss(*args, **kwargs):
        loss, metrics = real_loss(*args, **kwargs)
        return loss * float("nan"), metrics

    before = [p.detach().clone() for p in tiny_model.parameters()]
    monkeypatch.setattr(grpo_module, "grpo_loss", nan_loss)
    first = trainer.train_step()
    assert first["nonfinite_skipped"] == 1 and first["optimizer_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))  # the step was skipped
    with pytest.raises(TrainingError, match="not finite for 2 steps in a row"):
        trainer.train()


def test_sampler_is_deterministic_and_covers_the_data():
    examples = [Example(id=str(i), prompt=str(i)) for i in range(10)]
    a, b = PromptSampler(examples, 4, seed=3), PromptSampler(examples, 4, seed=3)
    seen = []
    for _ in range(5):
        batch = a.next_step()
        assert batch == b.next_step()
        seen += [e.id for e in batch]
    assert sorted(seen[:10]) == sorted(str(i) for i in range(10))  # one epoch is a permutation


# The test wraps optimizer.step to record the lr; torch's scheduler notices and warns.
@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_logged_lr_is_the_one_the_step_trained_with(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    train, _ = problems
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, train, optim={"lr": 1e-3, "schedule": "constant", "warmup_steps": 4})
    seen: list[float] = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    logged = [trainer.train_step()["lr"] for _ in range(3)]
    assert logged == pytest.approx([2.5e-4, 5e-4, 7.5e-4])  # warm-up: (step + 1) / 4 of 1e-3
    assert seen == pytest.approx(logged)


def test_per_token_metrics_do_not_count_mini_batches_without_rows(tmp_path, tiny_model, tokenizer, problems, make_stage):
    # Rewards vary in the first prompt's group only: with 4 mini-batches of 2 rows, some
    # mini-batches have no row with a nonzero advantage and run no forward pass.
    train, _ = problems

    def first_group_only(completions, prompts, **_):
        return [float(i % 2) if prompt == prompts[0] else 0.0 for i, prompt in enumerate(prompts)]

    from reasonrl.rewards import Component, RewardSpec

    entropy = {}
    for mini_batches in (1, 4):
        torch.manual_seed(0)
        config = make_stage(tmp_path / str(mini_batches), rollout={"prompts_per_step": 4, "group_size": 2},
                            algorithm={"mini_batches": mini_batches, "micro_batch_size": 1}, optim={"lr": 1e-9})
        spec = RewardSpec([Component("mine", "python", fn=first_group_only)])
        trainer = GRPOTrainer(config, tiny_model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), reward_spec=spec)
        metrics = trainer.train_step()
        assert metrics["rows_in_loss"] == 8 and metrics["zero_advantage_rows"] == 6
        entropy[mini_batches] = metrics["entropy"]
    assert entropy[4] == pytest.approx(entropy[1], rel=1e-4)


def test_the_last_step_is_evaluated_once(tmp_path, tiny_model, tokenizer, problems, make_stage):
    train, heldout = problems
    config = make_stage(tmp_path, run={"steps": 2}, eval={"every": 1, "samples": 2, "ks": [1, 2]})
    trainer = GRPOTrainer(config, tiny_model, tokenizer, train, eval_examples=heldout, template=get_template(PROMPT_TEMPLATE))
    result = trainer.train()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [1, 2] and all("eval/pass@1" in m for m in logged)
    assert result["eval"]["pass@1"] == logged[-1]["eval/pass@1"]


def test_code_rewards_get_the_problems_prompt_entry_point_and_setup_code():
    """The trainer completes a code answer with its problem's prompt (HumanEval: the answer
    continues it) and runs the setup code after it, as `reasonrl eval` does."""
    from types import SimpleNamespace

    from reasonrl.rewards import Component, RewardSpec

    example = Example("he/0", "def add(a, b):\n", tests="assert add(1, 2) == 3", entry_point="add",
                      meta={"test_setup_code": "assert add(0, 0) == 0"})
    rollouts = SimpleNamespace(prompt_index=torch.tensor([0, 0, 0]), lengths=torch.tensor([3, 3, 3]),
                               texts=["    return a + b\n", "    return a - b\n", "    return 1\n"])
    trainer = SimpleNamespace(reward_spec=RewardSpec([Component("acc", "code_accuracy")]))
    scores = GRPOTrainer.score(trainer, [example], rollouts)  # type: ignore[arg-type]
    assert scores.components["acc"].tolist() == [1.0, 0.0, 0.0]  # the last fails the setup's assert


def test_a_run_resumed_with_more_steps_follows_the_longer_schedule(tmp_path, make_trainer, tokenizer, problems):
    """Two steps of a cosine schedule, then resumed to four: from the checkpoint on, the learning
    rates are those of a four-step run, not the shorter schedule's final rate."""
    from reasonrl.demo import DemoSettings
    from reasonrl.demo.run import build_tiny_model

    def build(folder, steps):
        torch.manual_seed(0)
        model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))
        return make_trainer(folder, model, tokenizer, problems[0], run={"steps": steps},
                            optim={"lr": 1e-3, "schedule": "cosine", "warmup_steps": 0, "min_lr_ratio": 0.1})

    def logged_lrs(folder):
        lines = [json.loads(x) for x in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        return [x["lr"] for x in lines if "reward/total" in x]

    build(tmp_path / "a", 4).train()
    build(tmp_path / "b", 2).train()
    build(tmp_path / "b", 4).train(resume=True)
    four, two_then_four = logged_lrs(tmp_path / "a"), logged_lrs(tmp_path / "b")
    assert len(set(four)) == 4  # the schedule moves at every step
    assert two_then_four[:2] == [1e-3, pytest.approx(0.55e-3)]  # the two-step schedule, as it ran
    assert two_then_four[2:] == four[2:]  # then the four-step one, not its end rate of 1e-4


def test_a_trainer_from_the_python_api_reads_the_held_out_data_its_config_names(tmp_path, tiny_model, tokenizer, problems, make_trainer):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"prompt": f"{a}+1", "answer": str(a + 1)}) + "\n" for a in range(10, 13)))
    train, _ = problems
    data = {"train": "test:addition", "template": PROMPT_TEMPLATE, "eval": str(heldout)}
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, train, data=data)
    assert [e.prompt for e in trainer.eval_examples] == ["10+1", "11+1", "12+1"]
    assert make_trainer(tmp_path, tiny_model, tokenizer, train, data={**data, "eval": None}).eval_examples == []


def test_dropout_is_off_so_an_unchanged_policy_has_ratio_one_and_no_kl(tmp_path, tokenizer, problems, make_trainer):
    """A model built with dropout: without turning it off, the training forward would differ
    from the sampler's and the reference's before any update (KL and clipping from noise)."""
    from reasonrl.demo import DemoSettings
    from reasonrl.demo.run import build_tiny_model

    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    trainer = make_trainer(tmp_path, model, tokenizer, problems[0], algorithm={"beta": 0.1, "num_iterations": 2},
                           optim={"lr": 1e-12, "schedule": "constant"})
    assert all(layer.self_attn.attention_dropout == 0.0 for layer in model.model.layers)
    metrics = trainer.train_step()
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["clip_ratio/high"] == 0.0 and metrics["clip_ratio/low"] == 0.0
