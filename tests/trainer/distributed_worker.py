"""One GRPO run of the tiny model on fixed completions, in one process or under torchrun:

    torchrun --standalone --nproc_per_node=2 tests/trainer/distributed_worker.py SPEC.json

SPEC.json: {"stage": <stage config dict>, "uniform": [prompts], "sampler_logp": bool,
"resume": bool, "report": folder}. Each rank writes report/rank<r>.json: how many rows it kept
per step, how the policy was wrapped. Metrics and checkpoints go to the stage's run.output_dir.
test_distributed.py builds its single-process reference with the same `build_trainer`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_rollout import FixedRollout  # noqa: E402

from reasonrl.config import stage_from_dict  # noqa: E402
from reasonrl.data import get_template  # noqa: E402
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer  # noqa: E402
from reasonrl.demo.run import build_tiny_model  # noqa: E402
from reasonrl.demo.task import PROMPT_TEMPLATE  # noqa: E402
from reasonrl.trainer.distributed import close_distributed, init_distributed, rank, world_size  # noqa: E402
from reasonrl.trainer.grpo import GRPOTrainer  # noqa: E402


def training_set() -> list[Any]:
    return AdditionTask(seed=0).problems(64, 8)[0]


def build_trainer(stage: dict[str, Any], *, uniform: Sequence[str] = (), sampler_logp: bool = False) -> GRPOTrainer:
    """The same model (seed 0), data and fixed completions in every process."""
    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))
    rollout = FixedRollout(tokenizer, uniform=uniform, sampler_logp=sampler_logp)
    return GRPOTrainer(stage_from_dict(stage), model, tokenizer, training_set(), rollout=rollout, template=get_template(PROMPT_TEMPLATE))


def count_kept_rows(trainer: GRPOTrainer) -> list[int]:
    """Records, step by step, how many rows this rank keeps for the loss (before padding)."""
    kept: list[int] = []
    advantages = trainer.advantages

    def counting(scores: Any, rollouts: Any) -> Any:
        adv, keep = advantages(scores, rollouts)
        kept.append(int(keep.sum()))
        return adv, keep

    trainer.advantages = counting  # type: ignore[method-assign]
    return kept


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    init_distributed()
    trainer = build_trainer(spec["stage"], uniform=spec.get("uniform", []), sampler_logp=spec.get("sampler_logp", False))
    kept = count_kept_rows(trainer)
    trainer.train(resume=spec.get("resume", False))
    report = {
        "kept": kept,
        "world_size": world_size(),
        "strategy": trainer.strategy,
        "policy_class": type(trainer.model).__name__,
        "parameter_class": type(next(trainer.model.parameters())).__name__,
        "prompts": trainer.rollout.calls,  # type: ignore[attr-defined]
    }
    Path(spec["report"]).mkdir(parents=True, exist_ok=True)
    (Path(spec["report"]) / f"rank{rank()}.json").write_text(json.dumps(report))
    close_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
