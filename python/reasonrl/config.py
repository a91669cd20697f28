"""Run configuration: one typed object per stage, loaded from YAML and checked before anything
heavy (a model, a data set) is loaded.

    config = load_config("recipes/r1-zero.yaml", overrides=["algorithm.beta=0.04"])

Unknown keys, wrong types, bad values and missing files are :class:`ConfigError` with the dotted
path of the offending key. A file with a top-level ``stages:`` list is a pipeline: the stages run
in order, each starting from the model the previous one saved.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from reasonrl.errors import ConfigError, InvalidInputError

__all__ = [
    "AlgorithmConfig",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "PipelineConfig",
    "RolloutConfig",
    "RunConfig",
    "StageConfig",
    "load_config",
]


@dataclass
class ModelConfig:
    """The policy: a Hugging Face causal LM by local path or hub id."""

    name_or_path: str = ""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    device: str = "auto"  # "auto": cuda if available, else cpu


@dataclass
class DataConfig:
    """Where the problems come from and how they become prompts."""

    train: str = ""
    eval: str | None = None
    split: str | None = None  # of `train`: a folder of split files or a hub data set (default "train")
    eval_split: str | None = None  # of `eval` (e.g. "test")
    format: str | None = None  # a preset of reasonrl.data (gsm8k, math, aime, humaneval, mbpp, mmlu)
    fields: dict[str, str] = field(default_factory=dict)
    template: str = "r1_zero"  # r1_zero | chat | plain | a format string with {prompt}
    system_prompt: str | None = None
    train_limit: int | None = None
    eval_limit: int | None = None
    shuffle_seed: int = 0


@dataclass
class RolloutConfig:
    """How completions are sampled."""

    backend: Literal["hf", "vllm"] = "hf"
    prompts_per_step: int = 8
    group_size: int = 8  # G: completions per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    mask_truncated: bool = False  # drop the loss of completions that hit max_new_tokens
    generation_batch_size: int | None = None  # sequences per generate call (None: all at once)
    # vLLM only (backend: vllm), colocated with training on the same GPU:
    gpu_memory_utilization: float = 0.3  # share of the GPU vLLM takes for its weights and KV cache
    sleep_mode: bool = True  # free vLLM's KV cache and weights while the trainer updates the policy
    max_model_len: int | None = None  # prompt + completion tokens (None: the model's own limit)


@dataclass
class AlgorithmConfig:
    """The GRPO objective."""

    estimator: Literal["grpo", "dr_grpo", "rloo", "reinforce_pp"] = "grpo"
    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0  # KL weight; the frozen reference model is only loaded when > 0
    loss_type: Literal["grpo", "bnpo", "dapo", "dr_grpo"] = "dapo"
    num_iterations: int = 1  # μ: optimisation passes over each batch of rollouts
    mini_batches: int = 1  # optimizer steps per pass
    micro_batch_size: int = 16  # sequences per forward/backward (gradient accumulation below)
    # DAPO's dynamic sampling: groups whose rewards are all equal (no signal) leave the batch,
    # and more prompts are sampled, a step's worth at a time, until the step holds
    # rollout.prompts_per_step groups with signal or max_sampling_rounds rounds have run; a
    # surplus from the last round leaves the loss, so a step never holds more than that.
    dynamic_sampling: bool = False
    max_sampling_rounds: int = 4
    kernel_backend: Literal["auto", "triton", "torch"] = "auto"
    # Truncated importance sampling (TIS): when the rollout backend reports the log-probs its
    # sampler used (vLLM), each token's loss is multiplied by min(p_trainer / p_sampler, tis_cap)
    # to undo the sampler/trainer mismatch. None: off.
    tis_cap: float | None = None
    # Fused LM head: the loss and log-probs come from the final hidden states and the head's
    # weight in chunks (reasonrl.kernels.linear_grpo_loss), so the [N, T, V] logits are never
    # built — the largest tensor of a step with a 150k vocabulary. Not with FSDP.
    fused_lm_head: bool = False
    # Score the G completions of a prompt on one forward pass over that prompt (its keys and
    # values shared), rather than G: the same log-probs and gradient, with the prompt's work
    # divided by G. Used in one process, without gradient checkpointing; ignored otherwise.
    share_prompt_forward: bool = True


@dataclass
class OptimConfig:
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0


@dataclass
class DistributedConfig:
    """Several processes (torchrun): how the policy is spread over them.

    ``auto`` is ``fsdp`` under torchrun with more than one process and nothing in a single
    process; ``ddp`` or ``fsdp`` with one process also runs unwrapped (there is nothing to
    shard or average).
    """

    strategy: Literal["auto", "fsdp", "ddp", "none"] = "auto"
    # FSDP2 (torch.distributed.fsdp.fully_shard), one unit per decoder layer plus the root:
    reshard_after_forward: bool = True  # free gathered weights after forward (ZeRO-3) or keep them (ZeRO-2)
    mixed_precision: Literal["none", "bfloat16", "float16"] = "none"  # compute dtype; gradients reduce in fp32
    cpu_offload: bool = False  # sharded parameters, gradients and optimizer state live in CPU memory
    backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: nccl with CUDA, gloo without


@dataclass
class EvalConfig:
    every: int = 0  # steps between evaluations during training (0: only at the end)
    samples: int = 1  # completions per problem
    ks: list[int] = field(default_factory=lambda: [1])
    greedy: bool = False
    temperature: float = 1.0
    max_new_tokens: int | None = None  # None: the rollout's
    answer_tag: bool = False  # count only answers inside <answer>…</answer> (as math_accuracy's answer_tag)


@dataclass
class RunConfig:
    output_dir: str = "runs/run"
    steps: int = 100
    seed: int = 0
    save_every: int = 0  # 0: only at the end (and on Ctrl-C)
    overwrite: bool = False  # a run without --resume into a folder an earlier run wrote: true deletes its files, false refuses
    log_completions_every: int = 10
    max_consecutive_nonfinite: int = 3
    tensorboard: bool = True
    wandb_project: str | None = None
    progress_bar: bool = True


@dataclass
class SFTOptions:
    """The cold-start stage: next-token loss on response tokens only."""

    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps, within the epochs; None: all of them
    batch_size: int = 8  # sequences per optimizer step (per rank)
    micro_batch_size: int | None = None  # sequences per forward/backward (gradient accumulation); None: batch_size
    max_length: int = 1024
    response_field: str = "response"


@dataclass
class StageConfig:
    """One stage: GRPO (``kind: grpo``) or supervised cold start (``kind: sft``)."""

    kind: Literal["grpo", "sft"] = "grpo"
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: dict[str, dict[str, Any]] = field(default_factory=dict)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sft: SFTOptions = field(default_factory=SFTOptions)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included, as plain YAML/JSON values: what `stage_from_dict`
        takes back (``stage_from_dict(c.to_dict()) == c``)."""
        return _plain(dataclasses.asdict(self))

    def validate(self) -> StageConfig:
        """Checks that need more than one field; raises ConfigError."""
        if not self.model.name_or_path:
            raise ConfigError("model.name_or_path: required (a local path or a hub id)")
        self.run.output_dir = os.path.expanduser(self.run.output_dir)  # "~/runs/x" as a shell would read it
        check_folder_path("run.output_dir", self.run.output_dir)
        if not 0 <= self.run.seed < 2**63:  # torch.manual_seed's range (a rank is added under torchrun)
            raise ConfigError(f"run.seed: must be in [0, 2**63), got {self.run.seed}")
        model_path = self.model.name_or_path
        if model_path.startswith((".", "/", "~")) and not Path(model_path).expanduser().exists():
            raise ConfigError(f"model.name_or_path: no such folder: {model_path}")
        if not self.data.train:
            raise ConfigError("data.train: required (a local file or a data set name)")
        for key, path in (("data.train", self.data.train), ("data.eval", self.data.eval)):
            if path and _looks_local(path) and not Path(path).exists():
                raise ConfigError(f"{key}: file not found: {path}")
        if self.kind == "grpo" and not self.reward:
            raise ConfigError("reward: a GRPO stage needs at least one reward component")
        positive = {
            "rollout.prompts_per_step": self.rollout.prompts_per_step,
            "rollout.group_size": self.rollout.group_size,
            "rollout.max_new_tokens": self.rollout.max_new_tokens,
            "algorithm.num_iterations": self.algorithm.num_iterations,
            "algorithm.mini_batches": self.algorithm.mini_batches,
            "algorithm.micro_batch_size": self.algorithm.micro_batch_size,
            "algorithm.max_sampling_rounds": self.algorithm.max_sampling_rounds,
            "run.steps": self.run.steps,
            "eval.samples": self.eval.samples,
        }
        optional_positive = {
            "rollout.generation_batch_size": self.rollout.generation_batch_size,
            "data.train_limit": self.data.train_limit,
            "data.eval_limit": self.data.eval_limit,
            "eval.max_new_tokens": self.eval.max_new_tokens,
        }
        positive.update({key: value for key, value in optional_positive.items() if value is not None})
        positive.update({f"eval.ks[{i}]": k for i, k in enumerate(self.eval.ks)})
        positive.update({"run.max_consecutive_nonfinite": self.run.max_consecutive_nonfinite})
        if self.kind == "sft":
            positive.update({"sft.epochs": self.sft.epochs, "sft.batch_size": self.sft.batch_size, "sft.max_length": self.sft.max_length})
            if self.sft.micro_batch_size is not None:
                positive["sft.micro_batch_size"] = self.sft.micro_batch_size
            if self.sft.max_steps is not None:
                positive["sft.max_steps"] = self.sft.max_steps
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key}: must be >= 1, got {value}")
        non_negative = {
            "algorithm.beta": self.algorithm.beta,
            "algorithm.eps_high": self.algorithm.eps_high,
            "optim.weight_decay": self.optim.weight_decay,
            "optim.warmup_steps": self.optim.warmup_steps,
            "run.save_every": self.run.save_every,
            "run.log_completions_every": self.run.log_completions_every,
            "eval.every": self.eval.every,
        }
        for key, number in non_negative.items():
            if number < 0:
                raise ConfigError(f"{key}: must be >= 0, got {number}")
        if not 0 <= self.algorithm.eps_low < 1:
            raise ConfigError(f"algorithm.eps_low: must be in [0, 1) (the ratio's floor is 1 - eps_low), got {self.algorithm.eps_low}")
        if not 0 <= self.optim.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio: must be in [0, 1], got {self.optim.min_lr_ratio}")
        if not self.optim.max_grad_norm > 0:
            raise ConfigError(f"optim.max_grad_norm: must be > 0, got {self.optim.max_grad_norm}")
        if not all(0 <= beta < 1 for beta in self.optim.betas):
            raise ConfigError(f"optim.betas: each must be in [0, 1), got {list(self.optim.betas)}")
        if self.eval.temperature <= 0:
            raise ConfigError(f"eval.temperature: must be > 0 (eval.greedy: true for greedy decoding), got {self.eval.temperature}")
        if self.run.wandb_project and importlib.util.find_spec("wandb") is None:
            raise ConfigError("run.wandb_project: wandb is not installed (pip install 'reasonrl[logging]')")
        self._check_template()
        if self.kind == "grpo":
            self._check_reward()
        if self.rollout.temperature <= 0:
            raise ConfigError(f"rollout.temperature: must be > 0, got {self.rollout.temperature}")
        if not 0 < self.rollout.top_p <= 1:
            raise ConfigError(f"rollout.top_p: must be in (0, 1], got {self.rollout.top_p}")
        if not 0 < self.rollout.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"rollout.gpu_memory_utilization: must be in (0, 1], got {self.rollout.gpu_memory_utilization}"
            )
        if self.kind == "grpo" and self.rollout.group_size < 2:
            raise ConfigError("rollout.group_size: GRPO needs at least 2 completions per prompt")
        batch = self.rollout.prompts_per_step * self.rollout.group_size
        if batch % self.algorithm.mini_batches:
            raise ConfigError(
                f"algorithm.mini_batches: {self.algorithm.mini_batches} does not divide the "
                f"{batch} completions of a step"
            )
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.optim.lr}")
        if self.algorithm.tis_cap is not None and self.algorithm.tis_cap < 1:
            raise ConfigError(f"algorithm.tis_cap: must be >= 1 (or null for off), got {self.algorithm.tis_cap}")
        if self.distributed.cpu_offload and self.distributed.strategy == "ddp":
            raise ConfigError("distributed.cpu_offload: only FSDP can offload (strategy is ddp)")
        if any(k > self.eval.samples for k in self.eval.ks):
            raise ConfigError(f"eval.ks: every k must be <= eval.samples ({self.eval.samples})")
        return self

    def _check_template(self) -> None:
        from reasonrl.data import get_template
        from reasonrl.errors import InvalidInputError

        try:
            get_template(self.data.template, system_prompt=self.data.system_prompt)
        except InvalidInputError as error:
            raise ConfigError(f"data.template: {error}") from None

    def _check_reward(self) -> None:
        """The reward components as the trainer will build them (kinds, weights, parameters)."""
        from reasonrl.errors import InvalidInputError
        from reasonrl.rewards import RewardSpec

        try:
            RewardSpec.from_config(self.reward)  # its errors name the component (weights included)
        except (InvalidInputError, TypeError, ValueError) as error:
            # "invalid `components`: component 'accuracy': unknown kind …" → "reward.accuracy: …"
            named = re.search(r"component (['\"])(.+?)\1: (.*)", str(error), re.DOTALL)
            where, what = (f"reward.{named[2]}", named[3]) if named else ("reward", str(error))
            raise ConfigError(f"{where}: {what}") from None


def check_folder_path(key: str, folder: str) -> None:
    """A run's folder may not exist yet; where it, or a folder above it, is a file, nothing can
    be written there: said now, not after the model has loaded."""
    path = Path(folder)
    for part in (path, *path.parents):
        try:
            exists, is_dir = part.exists(), part.is_dir()
        except OSError as error:  # a folder above it that cannot be read
            raise ConfigError(f"{key}: cannot look at {part}: {error.strerror}") from None
        if exists:
            if not is_dir:
                raise ConfigError(f"{key}: {part} is a file, not a folder" + ("" if part == path else f" (in {folder})"))
            return


@dataclass
class PipelineConfig:
    """Stages run in order; each starts from the model the previous one saved."""

    stages: list[StageConfig]
    output_dir: str = "runs/pipeline"


def _looks_local(path: str) -> bool:
    return path.endswith((".jsonl", ".json", ".parquet", ".csv")) or path.startswith((".", "/", "~"))


# ---- generic typed construction ----------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


@dataclass(frozen=True)
class _CommandLineValue:
    """A `--set key=value` value: the text as typed and what YAML made of it. A field that takes
    text gets the text (`{prompt}=?` is a YAML mapping, `yes` a boolean, `1.5` a number); any
    other field gets the YAML value."""

    text: str
    parsed: Any


def _takes_text(tp: Any) -> bool:
    """Whether a field of type `tp` holds text (str, or str or None)."""
    if tp is str:
        return True
    args = typing.get_args(tp)
    return typing.get_origin(tp) in (Union, types.UnionType) and set(args) == {str, type(None)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp`, or ConfigError naming `key`."""
    if isinstance(value, _CommandLineValue):
        as_text = _takes_text(tp) and not isinstance(value.parsed, (str, type(None)))
        value = value.text if as_text else value.parsed
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        value_type = args[1] if args else Any
        return {str(k): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads 1e-6 (no dot) as a string
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field without default
        raise ConfigError(f"{prefix or cls.__name__}: {error}") from None


def _plain(value: Any) -> Any:
    """`value` with tuples as lists and paths as strings, so that YAML's safe dumper takes it."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _apply_override(data: dict[str, Any], override: str) -> None:
    dotted, equals, raw = override.partition("=")
    if not equals or not all(part.strip() for part in dotted.split(".")):
        raise ConfigError(f"--set {override!r}: expected key=value, the key a dotted path such as algorithm.beta")
    text = raw.strip()
    try:
        parsed = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as error:
        if text[0] in "[\"'":  # meant as a YAML list or quoted string, and broken
            problem = str(error).splitlines()[0]
            raise ConfigError(f"--set {dotted.strip()}: {text!r} is not valid YAML ({problem})") from None
        parsed = text  # not YAML at all (a format string such as `{prompt}=?<think>`): the text
    parts = dotted.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if isinstance(child, _CommandLineValue) and isinstance(child.parsed, dict):
            child = node[part] = dict(child.parsed)  # a section set whole by an earlier --set
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = _CommandLineValue(text, parsed)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def stage_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> StageConfig:
    data = dict(data)
    for override in overrides:
        _apply_override(data, override)
    return _build(StageConfig, data).validate()


def expect_stage(config: Any, kind: str, user: str) -> StageConfig:
    """`config` if it is a stage of `kind`, for `user` (a trainer); otherwise an
    InvalidInputError that says what was given and what runs it."""
    if isinstance(config, StageConfig) and config.kind == kind:
        return config
    if isinstance(config, PipelineConfig):
        given = f"a pipeline of {len(config.stages)} stages (run it with reasonrl.run_pipeline)"
    elif isinstance(config, StageConfig):
        given = f"a {config.kind!r} stage (run it with {'GRPOTrainer' if config.kind == 'grpo' else 'SFTTrainer'})"
    else:
        given = f"a {type(config).__name__}"
    raise InvalidInputError(f"invalid `config`: {user} takes a StageConfig of kind {kind!r} (load_stage_config), got {given}")


def load_stage_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StageConfig:
    """`load_config` for a file that holds one stage: what `GRPOTrainer` and `SFTTrainer` take.

    Raises:
        ConfigError: as `load_config`, or the file is a pipeline.
    """
    config = load_config(path, overrides)
    if isinstance(config, PipelineConfig):
        raise ConfigError(
            f"stages: {path} is a pipeline of {len(config.stages)} stages, not one stage; load it with load_config "
            "and run it with reasonrl.run_pipeline (or `reasonrl train`)"
        )
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StageConfig | PipelineConfig:
    """A stage or a pipeline from a YAML file, with ``key=value`` overrides applied.

    Relative data paths in the file are taken relative to the current directory, as a user
    typing them on the command line would expect. In a pipeline, ``key=value`` applies to every
    stage (``run.seed=1``), ``stages.I.key=value`` (or ``stages[I].key=value``) to stage I only
    (``stages.0.data.train=cold.jsonl``), and ``output_dir=…`` moves the whole pipeline.
    """
    path = Path(path)
    data = _read_yaml(path)
    if "stages" in data:
        data = dict(data)
        every_stage, per_stage = _pipeline_overrides(data, overrides, len(data["stages"]) if isinstance(data["stages"], list) else 0)
        unknown = sorted(set(data) - {"stages", "output_dir"})
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key in a pipeline (known: output_dir, stages)")
        if not isinstance(data["stages"], list) or not data["stages"]:
            raise ConfigError("stages: expected a non-empty list of stages")
        stages = []
        for i, stage in enumerate(data["stages"]):
            if isinstance(stage, str):  # a path to another stage file
                stage = _read_yaml(path.parent / stage)
            if not isinstance(stage, dict):
                raise ConfigError(f"stages[{i}]: expected a mapping or a file name")
            try:
                stages.append(_stage_for_pipeline(stage, [*every_stage, *per_stage.get(i, [])], first=(i == 0)))
            except ConfigError as error:
                raise ConfigError(f"stages[{i}].{error}") from None
        output_dir = os.path.expanduser(_coerce(data.get("output_dir", "runs/pipeline"), str, "output_dir"))
        check_folder_path("output_dir", output_dir)
        return PipelineConfig(stages=stages, output_dir=output_dir)
    return stage_from_dict(data, overrides)


def _pipeline_overrides(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...], n_stages: int
) -> tuple[list[str], dict[int, list[str]]]:
    """Sorts a pipeline's overrides: `output_dir=` is applied to `data`; the rest go to every
    stage or, as ``stages.I.key=value`` / ``stages[I].key=value``, to stage I alone."""
    every_stage: list[str] = []
    per_stage: dict[int, list[str]] = {}
    for override in overrides:
        dotted = override.split("=", 1)[0].strip()
        if dotted == "output_dir":
            _apply_override(data, override)
            continue
        if dotted == "run.output_dir":
            raise ConfigError(
                "--set run.output_dir: in a pipeline each stage writes to <output_dir>/<stage name>; "
                "set output_dir instead"
            )
        if dotted.startswith(("stages.", "stages[")):
            head, _, rest = override.removeprefix("stages").lstrip(".[").partition(".")
            index = head.rstrip("]")
            if not index.isdigit() or not rest:
                raise ConfigError(f"--set {dotted}: expected stages.I.key=value with I a stage number")
            if int(index) >= n_stages:
                raise ConfigError(f"--set {dotted}: there are {n_stages} stages (0 to {n_stages - 1})")
            per_stage.setdefault(int(index), []).append(rest)
            continue
        every_stage.append(override)
    return every_stage, per_stage


def _stage_for_pipeline(stage: dict[str, Any], overrides: list[str] | tuple[str, ...], first: bool) -> StageConfig:
    stage = dict(stage)
    if not first:
        # Later stages start from the previous stage's model; a placeholder passes validation and
        # the pipeline runner fills in the real path.
        stage.setdefault("model", {})
        stage["model"] = {**stage["model"], "name_or_path": stage["model"].get("name_or_path") or "<previous stage>"}
    return stage_from_dict(stage, overrides)
