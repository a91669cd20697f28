"""Running configured stages: one (``reasonrl train`` / ``reasonrl sft``) or a pipeline of them,
each starting from the model the previous stage saved, with a report at the end.

Under ``torchrun`` every process runs the same stages: the first stage joins the process group
(see `reasonrl.trainer.distributed`), each rank loads the model onto its own GPU, and rank 0
alone writes the merged metrics and the report.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reasonrl.config import PipelineConfig, StageConfig
from reasonrl.data import get_template, load_examples
from reasonrl.errors import ConfigError, ReasonRLError, named_by
from reasonrl.report import read_metrics, write_report


def load_stage_data(config: StageConfig) -> tuple[list[Any], list[Any]]:
    """The stage's training and held-out examples; a problem with either is a ConfigError
    named by the config key that caused it."""
    d = config.data
    train = _loaded(
        {"source": "data.train", "split": "data.split", "fields": "data.fields", "format": "data.format"},
        d.train, format=d.format, fields=d.fields or None, split=d.split, limit=d.train_limit, shuffle_seed=d.shuffle_seed,
    )
    if not train:
        raise ConfigError(f"data.train: {d.train} holds no examples")
    return train, load_heldout(config)


def load_heldout(config: StageConfig) -> list[Any]:
    """The stage's held-out examples (`data.eval`; none when it is not set)."""
    d = config.data
    return _loaded(
        {"source": "data.eval", "split": "data.eval_split", "fields": "data.fields", "format": "data.format"},
        d.eval, format=d.format, fields=d.fields or None, split=d.eval_split, limit=d.eval_limit,
    ) if d.eval else []


def _loaded(names: dict[str, str], source: str, **options: Any) -> list[Any]:
    """`load_examples(source, **options)`, its errors named by the config keys (`names`)."""
    with named_by(names):
        return load_examples(source, **options)


def check_machine(config: StageConfig) -> None:
    """What the config asks of this machine, checked before any model is loaded (a hub model
    would be downloaded first)."""
    from reasonrl.trainer.distributed import check_strategy

    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun; the group is not joined yet
    check_strategy(config.distributed, processes)
    if config.distributed.cpu_offload and processes > 1:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("distributed.cpu_offload: moves GPU memory to the CPU and needs CUDA GPUs; "
                              "leave it false on CPUs")
    if config.kind != "grpo":
        return
    if config.rollout.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("rollout.backend: 'vllm' needs vLLM (pip install reasonrl[vllm]) and a CUDA GPU")
    if config.algorithm.kernel_backend == "triton":
        import torch

        from reasonrl.kernels._backend import HAS_TRITON, INTERPRET

        device = config.model.device
        on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if not HAS_TRITON:
            raise ConfigError("algorithm.kernel_backend: 'triton' asked for, but triton is not installed")
        if not on_gpu and not INTERPRET:
            raise ConfigError(
                f"algorithm.kernel_backend: 'triton' needs a CUDA GPU (model.device {device!r} runs on the CPU here) "
                "or TRITON_INTERPRET=1; 'auto' uses the kernels on a GPU and the torch path elsewhere"
            )


def run_stage(
    config: StageConfig, *, resume: bool = False, data: tuple[list[Any], list[Any]] | None = None
) -> dict[str, Any]:
    """Loads the model and data of one stage and trains it; returns its summary.

    The model is saved to ``<run.output_dir>/final`` in Hugging Face format, the report (plots and
    a markdown summary) to ``<run.output_dir>/report.md``. `data`: the stage's (train, held-out)
    examples when already loaded (`load_stage_data`).
    """
    # Imported here: a config error should surface before torch and transformers load.
    from reasonrl.trainer.checkpoint import check_no_earlier_run
    from reasonrl.trainer.distributed import init_distributed, is_main_process
    from reasonrl.trainer.grpo import GRPOTrainer
    from reasonrl.trainer.models import load_model_and_tokenizer
    from reasonrl.trainer.sft import SFTTrainer, sft_pairs

    check_machine(config)
    if not resume and not config.run.overwrite:
        check_no_earlier_run(Path(config.run.output_dir))  # the trainer checks again; this is before any download
    init_distributed(config.distributed.backend)  # a no-op outside torchrun
    train, heldout = data if data is not None else load_stage_data(config)
    model, tokenizer = load_model_and_tokenizer(config.model)
    template = get_template(config.data.template, system_prompt=config.data.system_prompt)
    if config.kind == "sft":
        pairs = sft_pairs(train, template, tokenizer, config.sft.response_field)
        summary = SFTTrainer(config, model, tokenizer, pairs).train(resume=resume)
    else:
        trainer = GRPOTrainer(config, model, tokenizer, train, eval_examples=heldout, template=template)
        summary = trainer.train(resume=resume)
    summary["model"] = str(Path(config.run.output_dir) / "final")
    if is_main_process():
        name = config.name or config.kind
        write_report(Path(config.run.output_dir), title=f"reasonrl {config.kind} stage: {name}",
                     summary={name: summary.get("eval") or summary.get("train") or {}})
    return summary


def finished_stage(stage: StageConfig) -> bool:
    """Whether `stage` (its output folder set) has saved its final model at its last step.
    A GRPO stage whose `run.steps` was raised since is not finished: it continues."""
    from reasonrl.trainer.checkpoint import checkpoint_step

    final = Path(stage.run.output_dir) / "final"
    if not (final / "trainer_state.json").exists():
        return False
    return stage.kind == "sft" or checkpoint_step(final) >= stage.run.steps


def _finished_summary(stage: StageConfig) -> dict[str, Any]:
    """The summary `run_stage` returned for a stage that finished earlier, rebuilt from what it
    logged at its last step: the same keys (SFT: ``train`` and ``steps``; GRPO: ``train``, the
    step's metrics as logged, and ``eval``)."""
    path = Path(stage.run.output_dir) / "metrics.jsonl"
    logged_records = read_metrics(path) if path.exists() else []
    last_step = max((r["step"] for r in logged_records), default=0)
    records = [r for r in logged_records if r["step"] == last_step]
    logged: dict[str, Any] = next((r for r in reversed(records) if "reward/total" in r or "loss" in r), {})
    train = {k: v for k, v in logged.items() if k not in ("step", "stage", "time")}
    if stage.kind == "sft":
        return {"train": train, "steps": last_step}
    evaluation = {k.removeprefix("eval/"): v for r in records for k, v in r.items() if k.startswith("eval/")}
    return {"train": train, "eval": evaluation or None}


@contextmanager
def _stage_errors(index: int) -> Iterator[None]:
    """Errors about stage `index` named as `stages[index].key: …`, the way the config's are."""
    try:
        yield
    except ReasonRLError as error:
        message = str(error)
        keyed = re.match(r"[a-z_]+(\.[a-z_]+)*: ", message)
        raise type(error)(f"stages[{index}].{message}" if keyed else f"stages[{index}]: {message}") from None


def run_pipeline(pipeline: PipelineConfig, *, resume: bool = False) -> list[dict[str, Any]]:
    """Runs the stages in order; stage k > 0 starts from stage k − 1's final model. With
    `resume`, a finished stage is not run again (the next starts from its final model) and an
    unfinished one continues from its latest checkpoint.

    Before the first stage trains, every stage to run is checked as `run_stage` would check it
    (the machine, an earlier run in its folder, and its data, loaded here), so that a mistake in
    a later stage stops the pipeline before hours of training, not after."""
    from reasonrl.trainer.checkpoint import check_no_earlier_run
    from reasonrl.trainer.distributed import is_main_process

    root = Path(pipeline.output_dir)
    stages: list[StageConfig] = []
    for index, stage in enumerate(pipeline.stages):
        name = stage.name or f"stage{index}-{stage.kind}"
        previous_model = str(Path(stages[-1].run.output_dir) / "final") if stages else stage.model.name_or_path
        stages.append(dataclasses.replace(
            stage,
            name=name,
            run=dataclasses.replace(stage.run, output_dir=str(root / name)),
            model=dataclasses.replace(stage.model, name_or_path=previous_model),
        ))
    finished = [resume and finished_stage(stage) for stage in stages]
    data: list[tuple[list[Any], list[Any]] | None] = []
    for index, stage in enumerate(stages):
        if finished[index]:
            data.append(None)
            continue
        with _stage_errors(index):
            check_machine(stage)
            if not resume and not stage.run.overwrite:
                check_no_earlier_run(Path(stage.run.output_dir))
            data.append(load_stage_data(stage))

    summaries: list[dict[str, Any]] = []
    for index, stage in enumerate(stages):
        summary: dict[str, Any]
        if finished[index]:
            final = Path(stage.run.output_dir) / "final"
            if is_main_process():
                print(f"--resume: stage {stage.name} finished earlier ({final}); not run again")
            summary = {**_finished_summary(stage), "model": str(final), "resumed": "finished"}
        else:
            summary = run_stage(stage, resume=resume, data=data[index])
        summary["stage"] = stage.name
        summaries.append(summary)
    if not is_main_process():
        return summaries
    merge_metrics([root / s["stage"] for s in summaries], root / "metrics.jsonl")
    write_report(root, title=f"reasonrl pipeline: {root.name}", summary={s["stage"]: (s.get("eval") or s.get("train") or {}) for s in summaries})
    return summaries


def merge_metrics(stage_dirs: list[Path], target: Path) -> None:
    """One metrics file for the report: the stages' files, one after the other."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for directory in stage_dirs:
            path = directory / "metrics.jsonl"
            if path.exists():
                out.write(path.read_text(encoding="utf-8"))
