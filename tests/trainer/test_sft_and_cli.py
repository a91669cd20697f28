"""SFT trains on response tokens only; the CLI reports config errors without loading a model,
and `reasonrl eval` scores a saved model on a local file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from reasonrl.cli import main
from reasonrl.config import stage_from_dict
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


def test_cli_config_error_exits_2_before_loading_anything(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: grpo\nmodel: {name_or_path: x}\ndata: {train: y}\nreward: {a: {kind: format}}\nalgoritm: {}\n")
    assert main(["train", str(bad)]) == 2
    assert "config error: algoritm: unknown key" in capsys.readouterr().err
    assert main(["sft", str(bad), "--set", "algoritm=null"]) == 2
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


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
