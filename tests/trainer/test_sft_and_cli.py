"""SFT trains on response tokens only; the CLI reports config errors without loading a model,
and `reasonrl eval` scores a saved model on a local file."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

from reasonrl.cli import main
from reasonrl.config import load_config, stage_from_dict
from reasonrl.errors import InvalidInputError, TrainingError
from reasonrl.trainer.sft import SFTTrainer


def sft_stage(tmp_path, lr=1e-3, **sft):
    return stage_from_dict({
        "kind": "sft", "name": "sft", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"},
        "sft": {"epochs": 1, "batch_size": 2, **sft}, "optim": {"lr": lr},
        "run": {"output_dir": str(tmp_path / "sft"), "tensorboard": False, "progress_bar": False},
    })


def test_sft_labels_cover_the_response_and_eos_only(tmp_path, tiny_model, tokenizer):
    trainer = SFTTrainer(sft_stage(tmp_path), tiny_model, tokenizer, [("1+2=?<think>", "3</think>"), ("10+20=?<think>", "30</think>")])
    batch = trainer.encode(trainer.pairs)
    for row, (prompt, response) in enumerate(trainer.pairs):
        labels = batch["labels"][row]
        targets = labels[labels != -100].tolist()
        assert targets == tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert (labels[:n_prompt] == -100).all()


def test_sft_lowers_the_loss(tmp_path, tiny_model, tokenizer):
    pairs = [(f"{a}+1=?<think>", f"{a + 1}</think>") for a in range(10, 40)]
    config = sft_stage(tmp_path, lr=1e-2, epochs=20, batch_size=8)
    trainer = SFTTrainer(config, tiny_model, tokenizer, pairs)
    first = tiny_model(**trainer.encode(pairs)).loss.item()
    trainer.train()
    with torch.no_grad():
        last = tiny_model(**trainer.encode(pairs)).loss.item()
    assert last < 0.7 * first, (first, last)
    assert (tmp_path / "sft" / "final" / "model.safetensors").exists()


def test_sft_refuses_a_max_length_that_leaves_no_response(tmp_path, tiny_model, tokenizer):
    pairs = [("12345678+1=?<think>", "x</think>"), ("1+2=?<think>", "3</think>")]
    long, short = (len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p, _ in pairs)
    with pytest.raises(InvalidInputError, match=rf"sft.max_length.*shortest has {short} tokens"):
        SFTTrainer(sft_stage(tmp_path, max_length=short), tiny_model, tokenizer, pairs)
    # Room for some: the others are left out, with a warning that counts them.
    with pytest.warns(UserWarning, match="1 of 2 examples are left out"):
        trainer = SFTTrainer(sft_stage(tmp_path, max_length=long), tiny_model, tokenizer, pairs)
    assert trainer.pairs == [pairs[1]]
    trainer.train()
    logged = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(m["loss"]) and m["response_tokens"] > 0 for m in logged if "loss" in m)


def test_sft_stops_after_several_nonfinite_steps(tmp_path, tiny_model, tokenizer):
    pairs = [(f"{a}+1=?<think>", f"{a + 1}</think>") for a in range(10, 30)]
    config = sft_stage(tmp_path, epochs=2, batch_size=2)
    config.run.max_consecutive_nonfinite = 3
    trainer = SFTTrainer(config, tiny_model, tokenizer, pairs)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    with torch.no_grad():
        tiny_model.model.norm.weight.fill_(float("nan"))  # every loss from here on is NaN
    with pytest.raises(TrainingError, match="not finite for 3 steps in a row"):
        trainer.train()
    logged = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [m["nonfinite_skipped"] for m in logged if "loss" in m] == [1.0, 1.0, 1.0]
    # No step was taken: every weight but the poisoned one is as it was.
    changed = [not torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()) if not torch.isnan(b).any()]
    assert not any(changed)


SFT_PAIRS = [(f"{a}+1=?<think>", f"{a} plus 1 is {a + 1}</think>") for a in range(10, 23)]  # 13: the last batch is short


def seeded_sft(folder, tokenizer, save_every=0, **sft):
    """An SFT trainer over a fresh small model, the same weights at every call (seed 0)."""
    from reasonrl.demo import DemoSettings
    from reasonrl.demo.run import build_tiny_model

    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))
    config = stage_from_dict({
        "kind": "sft", "name": "sft", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"},
        "sft": {"epochs": 3, "batch_size": 4, **sft}, "optim": {"lr": 3e-3, "warmup_steps": 2},
        "run": {"output_dir": str(folder), "tensorboard": False, "progress_bar": False, "save_every": save_every},
    })
    return SFTTrainer(config, model, tokenizer, SFT_PAIRS)


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def logged_steps(folder) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines() if "loss" in line]


def test_sft_resumes_exactly_from_a_checkpoint_mid_epoch(tmp_path, tokenizer, capsys):
    straight = seeded_sft(tmp_path / "a", tokenizer)
    straight.train()
    assert straight.step == 12  # 3 epochs of 4 batches (13 pairs, batch 4)
    # A run that saved at step 6 (the middle of the second epoch), logged up to 9 and died.
    crashed = seeded_sft(tmp_path / "b", tokenizer, save_every=6)
    crashed.train()
    for name in ("checkpoint-12", "final"):
        shutil.rmtree(tmp_path / "b" / name)
    resumed = seeded_sft(tmp_path / "b", tokenizer)
    resumed.train(resume=True)
    assert "resumed at step 6" in capsys.readouterr().out
    assert resumed.step == 12 and same_weights(straight.model, resumed.model)
    assert logged_steps(tmp_path / "b") == list(range(1, 13))  # steps 7-12 once, not twice
    # Resuming the finished run takes no step and keeps the weights.
    again = seeded_sft(tmp_path / "b", tokenizer)
    again.train(resume=True)
    assert again.step == 12 and same_weights(straight.model, again.model)


def test_sft_ctrl_c_finishes_the_step_saves_it_and_resumes_exactly(tmp_path, tokenizer, capsys):
    import os
    import signal

    straight = seeded_sft(tmp_path / "a", tokenizer)
    straight.train()
    handler_before = signal.getsignal(signal.SIGINT)
    interrupted = seeded_sft(tmp_path / "b", tokenizer)
    step = interrupted.train_step

    def train_step(batch):
        if interrupted.step == 4:  # Ctrl-C during the fifth step
            os.kill(os.getpid(), signal.SIGINT)
        return step(batch)

    interrupted.train_step = train_step
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    assert (tmp_path / "b" / "checkpoint-5").is_dir() and not (tmp_path / "b" / "final").exists()
    assert "interrupted: saved" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler_before
    resumed = seeded_sft(tmp_path / "b", tokenizer)
    resumed.train(resume=True)
    assert same_weights(straight.model, resumed.model)


def test_sft_micro_batches_give_the_whole_batch_gradient(tmp_path, tokenizer):
    whole = seeded_sft(tmp_path / "a", tokenizer, epochs=1)
    split = seeded_sft(tmp_path / "b", tokenizer, epochs=1, micro_batch_size=3)  # 4 = 3 + 1, responses of unequal length
    batch = [SFT_PAIRS[0], SFT_PAIRS[5], ("7+1=?<think>", "8</think>"), SFT_PAIRS[9]]
    metrics = [trainer.train_step(batch) for trainer in (whole, split)]
    for a, b in zip(whole.model.parameters(), split.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not same_weights(whole.model, seeded_sft(tmp_path / "c", tokenizer).model)  # the step moved them
    assert metrics[0]["loss"] == pytest.approx(metrics[1]["loss"], rel=1e-5)
    assert metrics[0]["response_tokens"] == metrics[1]["response_tokens"]


def test_sft_refuses_to_resume_at_another_world_size(tmp_path, tokenizer):
    seeded_sft(tmp_path / "a", tokenizer, epochs=1, save_every=2).train()
    state_file = tmp_path / "a" / "checkpoint-2" / "trainer_state.pt"
    payload = torch.load(state_file, weights_only=False)
    payload["state"]["world_size"] = 2
    torch.save(payload, state_file)
    shutil.rmtree(tmp_path / "a" / "final")
    shutil.rmtree(tmp_path / "a" / "checkpoint-4")
    with pytest.raises(TrainingError, match="saved by 2 rank"):
        seeded_sft(tmp_path / "a", tokenizer, epochs=1).train(resume=True)


def test_cli_config_error_exits_2_before_loading_anything(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: grpo\nmodel: {name_or_path: x}\ndata: {train: y}\nreward: {a: {kind: format}}\nalgoritm: {}\n")
    assert main(["train", str(bad)]) == 2
    assert "config error: algoritm: unknown key" in capsys.readouterr().err
    assert main(["sft", str(bad), "--set", "algoritm=null"]) == 2
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    capsys.readouterr()
    # A stage run with the other command: the error names the right one.
    good = tmp_path / "good.yaml"
    good.write_text("kind: grpo\nmodel: {name_or_path: x}\ndata: {train: y}\nreward: {a: {kind: format}}\n")
    assert main(["sft", str(good)]) == 2
    assert "run it with `reasonrl train`" in capsys.readouterr().err
    # `reasonrl sft` runs pipelines of SFT stages only.
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("output_dir: runs/p\nstages:\n  - {kind: sft, model: {name_or_path: x}, data: {train: y}}\n"
                        "  - {kind: grpo, model: {name_or_path: x}, data: {train: y}, reward: {a: {kind: format}}}\n")
    assert main(["sft", str(pipeline)]) == 2
    assert "stages.1.kind: a 'grpo' stage; `reasonrl sft` runs SFT stages only" in capsys.readouterr().err


def test_cli_eval_on_a_saved_model(tmp_path, tiny_model, tokenizer):
    tiny_model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    data = tmp_path / "problems.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"{a}+{a}", "answer": str(2 * a)}) for a in range(10, 14)) + "\n")
    out = tmp_path / "result.json"
    code = subprocess.run(
        [sys.executable, "-m", "reasonrl", "eval", "--model", str(tmp_path / "model"), "--data", str(data),
         "--template", "{prompt}=?<think>", "--samples", "2", "--ks", "1", "2", "--max-new-tokens", "8", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert code.returncode == 0, code.stderr
    result = json.loads(out.read_text())
    assert result["summary"]["n_problems"] == 4 and result["summary"]["n_samples"] == 8
    assert "pass@2" in result["summary"]
    assert "pass@1" in code.stdout


@pytest.mark.parametrize("argv", [["eval", "--model", "m", "--data", "d", "--samples", "1", "--ks", "4"]])
def test_cli_eval_checks_ks(argv, capsys):
    assert main(argv) == 2
    assert "--ks" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--samples", "0", "must be >= 1, got 0"), ("--ks", "0", "must be >= 1, got 0"), ("--limit", "-1", "must be >= 1"),
    ("--max-new-tokens", "0", "must be >= 1"), ("--batch-size", "0", "must be >= 1"),
    ("--temperature", "0", "must be > 0, got 0.0 (for greedy decoding use --greedy)"), ("--top-p", "1.5", "must be in (0, 1]"),
])
def test_cli_eval_rejects_out_of_range_arguments_before_loading(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", "m", "--data", "d", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and message in err


def test_cli_eval_refuses_greedy_samples_and_makes_the_json_folder_first(tmp_path, tiny_model, tokenizer, capsys):
    assert main(["eval", "--model", "m", "--data", "d", "--greedy", "--samples", "4"]) == 2
    assert "greedy decoding gives one completion per problem, not 4" in capsys.readouterr().err
    # Bad flags are named as flags, before any model loads.
    assert main(["eval", "--model", "m", "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "config error: --data: file not found" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--data", "d", "--template", "no placeholder"]) == 2
    assert "config error: --template: 'no placeholder' is neither a built-in template" in capsys.readouterr().err
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["eval", "--model", "m", "--data", "d", "--json", str(blocked / "out.json")]) == 2
    assert "--json: cannot create the folder" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--data", "d", "--json", str(tmp_path)]) == 2
    assert f"--json: {tmp_path} is a folder; give a file name, such as {tmp_path / 'eval.json'}" in capsys.readouterr().err
    tiny_model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps({"prompt": "1+1", "answer": "2"}) + "\n")
    out = tmp_path / "new" / "folder" / "result.json"
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", str(data), "--max-new-tokens", "4", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["summary"]["n_problems"] == 1 and len(written["problems"][0]["completions"]) == 1


def test_cli_eval_names_a_model_or_device_it_cannot_use(tmp_path, tiny_model, tokenizer, capsys):
    tiny_model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "empty").mkdir()
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps({"prompt": "1+1", "answer": "2"}) + "\n")
    cases = [
        (["--model", str(tmp_path / "missing")], "cannot load the model: no such folder"),
        (["--model", str(tmp_path / "empty")], "cannot load the model"),
        (["--model", str(tmp_path / "model"), "--device", "gpu"], "invalid device 'gpu'"),
        (["--model", str(tmp_path / "model"), "--device", "cuda:99"], "invalid device 'cuda:99'"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--model", str(tmp_path / "model"), "--device", "cuda"], "invalid device 'cuda': torch sees no CUDA GPU"))
    for args, message in cases:
        assert main(["eval", *args, "--data", str(data), "--max-new-tokens", "4"]) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("reasonrl: ") and message in err, (args, err)
        assert "Traceback" not in err


def test_pipeline_from_a_local_model_and_its_resume(tmp_path, tiny_model, tokenizer, capsys):
    """`reasonrl train` on a pipeline (SFT then GRPO) from a saved model and a local JSONL file;
    `--resume` runs neither finished stage again, and a GRPO stage given more steps continues
    from its final checkpoint; `--set stages.I.key=value` changes stage I only."""
    tiny_model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(
        json.dumps({"prompt": f"{a}+{a}", "answer": str(2 * a), "response": f"{2 * a}</think><answer>{2 * a}</answer>"}) + "\n"
        for a in range(10, 26)
    ))
    quiet = "{tensorboard: false, progress_bar: false, log_completions_every: 0}"
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"""
output_dir: {tmp_path / "runs"}
stages:
  - kind: sft
    name: cold_start
    model: {{name_or_path: {tmp_path / "model"}}}
    data: {{train: {data}, template: "{{prompt}}=?<think>"}}
    sft: {{epochs: 1, batch_size: 8, max_length: 64}}
    optim: {{lr: 1.0e-3}}
    run: {quiet}
  - kind: grpo
    name: grpo
    data: {{train: {data}, template: "{{prompt}}=?<think>"}}
    rollout: {{prompts_per_step: 2, group_size: 2, max_new_tokens: 8}}
    reward: {{accuracy: {{kind: math_accuracy}}}}
    optim: {{lr: 1.0e-3, schedule: constant}}
    run: {quiet}
""")
    runs = tmp_path / "runs"
    assert main(["train", str(config), "--set", "stages.1.run.steps=1"]) == 0
    sft_metrics = (runs / "cold_start" / "metrics.jsonl").read_text()
    # Each stage's folder holds the config it trained with; the second starts from the first's model.
    saved = [load_config(runs / name / "config.yaml") for name in ("cold_start", "grpo")]
    assert [s.kind for s in saved] == ["sft", "grpo"] and saved[1].run.steps == 1
    assert saved[1].model.name_or_path == str(runs / "cold_start" / "final")
    assert (runs / "grpo" / "final" / "model.safetensors").exists() and (runs / "report.md").exists()
    assert all((runs / stage / "report.md").exists() for stage in ("cold_start", "grpo"))  # every stage its own report too
    capsys.readouterr()

    assert main(["train", str(config), "--set", "stages.1.run.steps=1", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "stage cold_start finished earlier" in out and "stage grpo finished earlier" in out
    assert (runs / "cold_start" / "metrics.jsonl").read_text() == sft_metrics
    # The finished stages' summaries are what they logged at their last step, as when they ran.
    from reasonrl.pipeline import run_pipeline

    summaries = run_pipeline(load_config(config, ["stages.1.run.steps=1"]), resume=True)  # type: ignore[arg-type]
    capsys.readouterr()
    grpo_logged = json.loads((runs / "grpo" / "metrics.jsonl").read_text().splitlines()[-1])
    assert summaries[1]["train"]["reward/total"] == grpo_logged["reward/total"]
    assert "loss" in summaries[0]["train"] and summaries[0]["steps"] == 2
    assert not {"step", "stage", "time"} & (set(summaries[0]["train"]) | set(summaries[1]["train"]))
    assert "| time |" not in (runs / "report.md").read_text()

    # A mistake in a later stage stops the pipeline before the first stage trains.
    other = tmp_path / "other"
    assert main(["train", str(config), "--set", f"output_dir={other}", "--set", "stages.1.data.split=train"]) == 2
    err = capsys.readouterr().err
    assert "stages[1].data.split:" in err and not other.exists()

    assert main(["train", str(config), "--set", "stages.1.run.steps=2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "stage cold_start finished earlier" in out and "resumed at step 1" in out
    steps = [json.loads(line)["step"] for line in (runs / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert (runs / "cold_start" / "metrics.jsonl").read_text() == sft_metrics

    # The same pipeline again without --resume: refused before any stage runs, the runs intact.
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"run.output_dir: {runs / 'cold_start'} holds an earlier run" in err and "--resume" in err
    assert (runs / "cold_start" / "metrics.jsonl").read_text() == sft_metrics


def test_sft_logs_the_lr_each_step_trained_with(tmp_path, tiny_model, tokenizer):
    config = stage_from_dict({
        "kind": "sft", "name": "sft", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"},
        "sft": {"epochs": 1, "batch_size": 2}, "optim": {"lr": 1e-3, "warmup_steps": 4, "schedule": "constant"},
        "run": {"output_dir": str(tmp_path / "sft"), "tensorboard": False, "progress_bar": False},
    })
    pairs = [(f"{a}+1=?<think>", f"{a + 1}</think>") for a in range(10, 16)]
    SFTTrainer(config, tiny_model, tokenizer, pairs).train()
    logged = [json.loads(line)["lr"] for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([2.5e-4, 5e-4, 7.5e-4])  # warm-up: (step + 1) / 4 of 1e-3


def test_a_model_folder_under_home_loads(tmp_path, tiny_model, tokenizer, monkeypatch):
    from reasonrl.config import ModelConfig
    from reasonrl.trainer.models import load_model_and_tokenizer

    tiny_model.save_pretrained(tmp_path / "home" / "m")
    tokenizer.save_pretrained(tmp_path / "home" / "m")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model, _ = load_model_and_tokenizer(ModelConfig(name_or_path="~/m", device="cpu"))
    assert model.config.vocab_size == tiny_model.config.vocab_size


def test_a_saved_custom_tokenizer_comes_back_as_it_was_trained(tmp_path, tiny_model, tokenizer):
    """The demo's character-level tokenizer saved beside a Qwen2 model: AutoTokenizer alone
    would load it as Qwen2's tokenizer, which drops the spaces."""
    from reasonrl.config import ModelConfig
    from reasonrl.trainer.models import load_model_and_tokenizer

    tiny_model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    _, loaded = load_model_and_tokenizer(ModelConfig(name_or_path=str(tmp_path / "m"), device="cpu"))
    text = "47+38=?<think>7+8=15 4+3+1=8 so 85.</think><answer>85</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded(text, add_special_tokens=False)["input_ids"] == ids
    assert loaded.decode(ids) == text and loaded.pad_token_id == tokenizer.pad_token_id


def test_gradient_checkpointing_from_the_config_turns_it_on_without_a_deprecation_warning(tmp_path, tiny_model, tokenizer):
    import warnings

    from reasonrl.config import ModelConfig
    from reasonrl.trainer.models import checkpoints_activations
    from reasonrl.trainer.models import load_model_and_tokenizer

    tiny_model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model, _ = load_model_and_tokenizer(ModelConfig(name_or_path=str(tmp_path / "m"), device="cpu", gradient_checkpointing=True))
    assert checkpoints_activations(model) and model.config.use_cache is False


def test_cli_reports_an_interrupt_with_status_130_not_a_traceback(monkeypatch, capsys):
    from reasonrl import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_info", interrupted)  # the command `reasonrl info` runs
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err == "reasonrl: interrupted\n"


def test_sft_max_steps_ends_the_stage_early_and_shapes_its_schedule(tmp_path, tiny_model, tokenizer):
    config = stage_from_dict({
        "kind": "sft", "name": "sft", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"},
        "sft": {"epochs": 2, "batch_size": 2, "max_steps": 4}, "optim": {"lr": 1e-3, "min_lr_ratio": 0.0},
        "run": {"output_dir": str(tmp_path / "sft"), "tensorboard": False, "progress_bar": False},
    })
    pairs = [(f"{a}+1=?<think>", f"{a + 1}</think>") for a in range(10, 16)]  # 3 steps an epoch
    trainer = SFTTrainer(config, tiny_model, tokenizer, pairs)
    assert trainer.train()["steps"] == 4
    logged = [json.loads(line)["lr"] for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)])  # a 4-step cosine
    with pytest.raises(Exception, match=r"sft.max_steps: must be >= 1, got 0"):
        stage_from_dict({**config.to_dict(), "sft": {"max_steps": 0}})
