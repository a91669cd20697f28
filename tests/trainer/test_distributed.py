"""Several processes train exactly like one: 2 ranks (gloo, CPU) under torchrun against 1 process
on the same global batch, with completions fixed by the prompt text (tests/trainer/fixed_rollout.py)
so that sampling plays no part. Same per-step loss and grad norm, same weights after the run:
with DDP (token-level loss, uneven rows after dynamic sampling, a rank with no row at all, and
dynamic sampling's extra rounds) and
with FSDP2 (sequence-level loss, μ = 2, KL to a sharded reference, truncated importance
sampling), and checkpoints that resume at another world size (1 → 2 and 2 → 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_worker import build_trainer, count_kept_rows, training_set
from stages import grpo_stage_dict
from transformers import AutoModelForCausalLM

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.trainer.grpo import PromptSampler

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
COMPARED = ("loss", "grad_norm", "reward/total", "rows_in_loss", "entropy", "clip_ratio/region", "optimizer_steps",
            "length_advantage_corr")

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


DISTRIBUTED = {"name": "dist", "rollout": {"prompts_per_step": 4, "max_new_tokens": 16}, "run": {"steps": 3, "log_completions_every": 0}}


def stage(output_dir: Path, **sections: dict) -> dict:
    return grpo_stage_dict(output_dir, DISTRIBUTED, **sections)


def torchrun(spec: dict, tmp_path: Path, nproc: int = 2) -> list[dict]:
    """Runs the worker on `nproc` ranks; returns each rank's report."""
    spec_path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(WORKER), str(spec_path)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return [json.loads((Path(spec["report"]) / f"rank{r}.json").read_text()) for r in range(nproc)]


def training_metrics(run_dir: Path) -> dict[int, dict]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x for x in lines if "loss" in x or "optimizer_steps" in x}


def assert_same_metrics(reference: dict[int, dict], other: dict[int, dict], steps: list[int], keys: tuple[str, ...]) -> None:
    for step in steps:
        for key in keys:
            assert key in reference[step] and key in other[step], (step, key)
            assert other[step][key] == pytest.approx(reference[step][key], rel=1e-4, abs=1e-6), (step, key)


def assert_same_weights(expected_dir: Path, actual_dir: Path) -> None:
    expected = AutoModelForCausalLM.from_pretrained(expected_dir).state_dict()
    actual = AutoModelForCausalLM.from_pretrained(actual_dir).state_dict()
    assert expected.keys() == actual.keys()
    initial = build_trainer(stage(expected_dir.parent / "unused")).model.state_dict()
    moved = False
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=2e-5, msg=name)
        moved |= not torch.equal(expected[name], initial[name])
    assert moved, "training changed no weight: the comparison would prove nothing"


def rendered_step_prompts(step: int, prompts_per_step: int = 4) -> list[str]:
    """The prompts (as the rollout sees them) of training step `step` (1-based), in order."""
    sampler = PromptSampler(training_set(), prompts_per_step, seed=0)
    for _ in range(step - 1):
        sampler.next_step()
    template = get_template(PROMPT_TEMPLATE)
    return [template.render(e, None) for e in sampler.next_step()]


@pytest.mark.parametrize("fused_lm_head", [False, True], ids=["logits-filter-only", "fused-head-refill"])
def test_ddp_two_ranks_train_like_one_process(tmp_path, fused_lm_head):
    """Token-level loss (dapo) with dynamic sampling; the global token count still normalises
    the loss. Filter only (one sampling round): in step 1 rank 1 keeps no row at all, in step 2
    the ranks keep different numbers. With refills (and the fused head, whose weight gets its
    gradient outside DDP's forward): step 1 finds 2 of its 4 groups with signal, so both ranks
    sample a second round together, as the single process does; its 5 groups are one too many,
    and both leave out the same one."""
    step1, step2 = rendered_step_prompts(1), rendered_step_prompts(2)
    uniform = [step1[1], step1[3], step2[0]]  # rank r gets prompts r, r + 2 of each round
    refill = fused_lm_head
    sections = {
        # REINFORCE++ whitens over the rows kept on all ranks together (filter-only variant).
        "algorithm": {"loss_type": "dapo", "dynamic_sampling": True, "fused_lm_head": fused_lm_head,
                      "max_sampling_rounds": 4 if refill else 1, "estimator": "grpo" if refill else "reinforce_pp"},
        "distributed": {"strategy": "ddp"},
    }

    reference = build_trainer(stage(tmp_path / "one", **sections), uniform=uniform)
    kept_alone = count_kept_rows(reference)
    reference.train()

    reports = torchrun({"stage": stage(tmp_path / "two", **sections), "uniform": uniform, "report": str(tmp_path / "report")}, tmp_path)
    assert all(r["world_size"] == 2 and r["strategy"] == "ddp" and r["policy_class"] == "DistributedDataParallel" for r in reports)
    kept = [r["kept"] for r in reports]
    if refill:
        assert kept[1][0] > 0, kept  # its first round had nothing; the second round did
        assert len(reference.rollout.calls) == 4  # step 1 took two rounds, steps 2 and 3 one
    else:
        assert kept[1][0] == 0 and kept[0][0] > 0, kept  # a rank with nothing to learn from still steps
        assert kept[0][1] != kept[1][1], kept
        assert len(reference.rollout.calls) == 3
    assert [a + b for a, b in zip(*kept)] == kept_alone
    # Each rank sampled its own half of every round's prompts; together, the single process's.
    assert all(len(r["prompts"]) == len(reference.rollout.calls) for r in reports)
    for call, prompts in enumerate(reference.rollout.calls):
        halves = [r["prompts"][call] for r in reports]
        assert not set(halves[0]) & set(halves[1])
        assert sorted(halves[0] + halves[1]) == sorted(prompts)

    compared = COMPARED + (("dynamic_sampling/rounds", "dynamic_sampling/groups", "dynamic_sampling/groups_kept") if refill else ())
    assert_same_metrics(training_metrics(tmp_path / "one"), training_metrics(tmp_path / "two"), [1, 2, 3], compared)
    if refill:
        first = training_metrics(tmp_path / "one")[1]
        assert first["dynamic_sampling/rounds"] == 2 and first["dynamic_sampling/groups"] == 5, first
        assert first["dynamic_sampling/groups_kept"] == 4, first
        # 5 groups found, 4 trained on at either world size (the same 4: the losses and weights
        # compared above and below match the single process's).
        assert first["rows_in_loss"] == 4 * 4 and sum(k[0] for k in kept) == 16, (first, kept)
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")


def test_fsdp_two_ranks_train_like_one_process_and_resume_at_any_world_size(tmp_path):
    """Sequence-level loss (grpo), μ = 2 (old log-probs), KL to a frozen reference (sharded too)
    and TIS on sampler log-probs, under FSDP2. The 2-rank run resumes from the single process's
    step-1 checkpoint (1 → 2); a single process then resumes from the 2-rank step-2 checkpoint
    (2 → 1). Every road ends at the same weights."""
    sections = {
        "algorithm": {"loss_type": "grpo", "num_iterations": 2, "beta": 0.04, "tis_cap": 1.2},
        "distributed": {"strategy": "fsdp"},
        "run": {"save_every": 1},
    }
    reference = build_trainer(stage(tmp_path / "one", **sections), sampler_logp=True)
    reference.train()
    reference_metrics = training_metrics(tmp_path / "one")
    assert 0 < reference_metrics[1]["rollout/tis_weight_mean"] < 1.2

    shutil.copytree(tmp_path / "one" / "checkpoint-1", tmp_path / "two" / "checkpoint-1")
    reports = torchrun(
        {"stage": stage(tmp_path / "two", **sections), "sampler_logp": True, "resume": True, "report": str(tmp_path / "report")},
        tmp_path,
    )
    assert all(r["strategy"] == "fsdp" and r["parameter_class"] == "DTensor" for r in reports), reports
    assert all(len(r["kept"]) == 2 for r in reports)  # resumed after step 1
    keys = (*COMPARED, "kl", "rollout/logp_abs_diff", "rollout/logp_abs_diff_max", "rollout/tis_weight_mean")
    assert_same_metrics(reference_metrics, training_metrics(tmp_path / "two"), [2, 3], keys)
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")
    saved = json.loads((tmp_path / "two" / "checkpoint-2" / "trainer_state.json").read_text())
    assert saved["world_size"] == 2 and saved["step"] == 2
    # The optimizer state went to disk shard by shard: one file per rank, none holding it all.
    assert len(list((tmp_path / "two" / "checkpoint-2" / "optimizer").glob("*.distcp"))) == 2

    shutil.copytree(tmp_path / "two" / "checkpoint-2", tmp_path / "back" / "checkpoint-2")
    resumed = build_trainer(stage(tmp_path / "back", **sections), sampler_logp=True)
    resumed.train(resume=True)
    assert_same_metrics(reference_metrics, training_metrics(tmp_path / "back"), [3], keys)
    assert_same_weights(tmp_path / "one" / "final", tmp_path / "back" / "final")


def test_cli_under_torchrun_trains_samples_evaluates_and_saves_once(tmp_path, tiny_model, tokenizer):
    """The real entry point: `torchrun -m reasonrl train`, HF sampling on FSDP2-sharded weights
    (gathered for generation), a held-out set that does not split evenly over the ranks."""
    model_dir = tmp_path / "model"
    tiny_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    train.write_text("".join(json.dumps({"prompt": f"{a}+{a}", "answer": str(2 * a)}) + "\n" for a in range(10, 30)))
    heldout.write_text("".join(json.dumps({"prompt": f"{a}+1", "answer": str(a + 1)}) + "\n" for a in range(40, 43)))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "kind": "grpo", "name": "cli",
        "model": {"name_or_path": str(model_dir)},
        "data": {"train": str(train), "eval": str(heldout), "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 8},
        "reward": {"accuracy": {"kind": "math_accuracy"}},
        "eval": {"samples": 2, "ks": [1, 2], "max_new_tokens": 6},
        "optim": {"lr": 1e-3},
        "run": {"output_dir": str(tmp_path / "run"), "steps": 2, "tensorboard": False, "progress_bar": False},
    }))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "reasonrl", "train", str(config)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])  # printed by rank 0 only
    assert summary["eval"]["n_problems"] == 3 and summary["eval"]["n_samples"] == 6
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x or "optimizer_steps" in x] == [1, 2]  # one writer
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert saved.state_dict().keys() == tiny_model.state_dict().keys()


# ---- the pieces, in one process (fast) ------------------------------------------------------------


def test_each_rank_gets_its_share_of_prompts_per_step(monkeypatch):
    """`prompts_per_step` counts the prompts of all ranks together: the ranks' slices make up the
    single process's prompts, step after step, and the data position advances the same."""
    import reasonrl.trainer.grpo as grpo_module
    from reasonrl.data import Example

    examples = [Example(id=str(i), prompt=str(i)) for i in range(10)]
    alone = PromptSampler(examples, 4, seed=1)
    expected = [alone.next_step() for _ in range(4)]  # crosses an epoch boundary
    shares = []
    for r in range(2):
        monkeypatch.setattr(grpo_module, "rank", lambda r=r: r)
        monkeypatch.setattr(grpo_module, "world_size", lambda: 2)
        sampler = PromptSampler(examples, 4, seed=1)
        shares.append([sampler.next_step() for _ in range(4)])
        assert sampler.position == alone.position
    for step in range(4):
        assert len(shares[0][step]) == len(shares[1][step]) == 2
        assert sorted(e.id for e in shares[0][step] + shares[1][step]) == sorted(e.id for e in expected[step])


def test_prompts_that_do_not_split_over_the_ranks_are_a_config_error(tmp_path, monkeypatch):
    import reasonrl.trainer.grpo as grpo_module
    from reasonrl.config import ConfigError

    monkeypatch.setattr(grpo_module, "world_size", lambda: 3)
    with pytest.raises(ConfigError, match=r"rollout\.prompts_per_step: 4 prompts do not split evenly over 3 ranks"):
        build_trainer(stage(tmp_path / "run"))


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_padding_rows_change_neither_the_loss_nor_its_normaliser(tmp_path, loss_type):
    """A rank that kept fewer rows pads with copies that have no completion token and no
    advantage; with its loss weight, a padded batch gives exactly the unpadded batch's loss."""
    from reasonrl.kernels import grpo_loss
    from reasonrl.rollout import SamplingParams

    trainer = build_trainer(stage(tmp_path / "run", algorithm={"loss_type": loss_type}))
    rollouts = trainer.rollout.generate([rendered_step_prompts(1)[0], rendered_step_prompts(1)[1]], 4, SamplingParams(max_new_tokens=16))
    advantages = torch.linspace(-1, 1, 8).numpy()
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 0, 0], dtype=torch.bool).numpy()

    def weighted_loss(batch):
        logp = trainer.reference_logprobs(trainer.model, batch)
        loss, _ = grpo_loss(logp, None, None, batch.advantages, batch.completion_mask, loss_type=loss_type,
                            max_completion_length=16, backend="torch")
        return float(loss) * trainer.loss_weight(batch, trainer.mini_batch_totals(batch))

    real = trainer.pack(rollouts, advantages, keep)
    padded = trainer.pack(rollouts, advantages, keep, rows_total=5)
    assert len(real) == real.real_rows == 3 and real.padding is None
    assert len(padded) == 5 and padded.real_rows == 3 and padded.padding.tolist() == [False] * 3 + [True] * 2
    assert padded.completion_mask[3:].sum() == 0 and padded.advantages[3:].abs().sum() == 0
    assert weighted_loss(real) != 0
    assert weighted_loss(padded) == pytest.approx(weighted_loss(real), rel=1e-6)

    nothing = trainer.pack(rollouts, advantages, keep & False, rows_total=2)  # a rank with no row left
    assert len(nothing) == 2 and nothing.real_rows == 0 and nothing.completion_ids.shape[1] == 1
    assert weighted_loss(nothing) == 0


def test_sft_under_torchrun_keeps_the_ranks_in_step(tmp_path, tiny_model, tokenizer):
    """5 pairs over 2 ranks: both take 3 (one wraps around), so both run the same 2 steps of 2
    and meet in the same collectives; rank 0 saves once."""
    model_dir = tmp_path / "model"
    tiny_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a}+1", "answer": str(a + 1), "response": f"{a + 1}</think>"}) + "\n"
                            for a in range(10, 15)))
    config = tmp_path / "sft.yaml"
    config.write_text(json.dumps({
        "kind": "sft", "name": "sft", "model": {"name_or_path": str(model_dir)},
        "data": {"train": str(data), "template": PROMPT_TEMPLATE}, "sft": {"batch_size": 2}, "optim": {"lr": 1e-3},
        "distributed": {"strategy": "ddp"},
        "run": {"output_dir": str(tmp_path / "run"), "tensorboard": False, "progress_bar": False},
    }))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "reasonrl", "sft", str(config)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in tiny_model.state_dict().items())
