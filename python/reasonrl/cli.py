"""The ``reasonrl`` command line.

    reasonrl demo [--output-dir runs/demo] [--seed N] [--threads N]   offline R1 story in miniature (CPU, minutes)
    reasonrl train CONFIG.yaml [--set key=value ...] [--resume]   a GRPO stage or a pipeline
    torchrun --nproc_per_node=8 -m reasonrl train CONFIG.yaml      the same on 8 GPUs (docs/scaling.md)
    reasonrl sft CONFIG.yaml [--set key=value ...] [--resume]     a supervised cold-start stage
    reasonrl eval --model PATH --data FILE [--format gsm8k] [--samples 4 --ks 1 4] [--json out.json]
    reasonrl info                                           version, threads, sandbox, kernels
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import reasonrl
from reasonrl.config import ConfigError, PipelineConfig, StageConfig, load_config
from reasonrl.errors import ReasonRLError, named_by


def quiet_transformers() -> None:
    """Only errors from transformers, and no download progress bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _temperature(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value} (for greedy decoding use --greedy)")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:  # what torch.manual_seed takes (with room for a rank added)
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {value}")
    return value


def _demo(args: argparse.Namespace) -> int:
    quiet_transformers()
    from reasonrl.demo import DemoSettings, run_demo

    from reasonrl.config import check_folder_path

    check_folder_path("--output-dir", args.output_dir)
    threads = {} if args.threads is None else {"threads": args.threads}
    run_demo(args.output_dir, DemoSettings(seed=args.seed, **threads))
    return 0


def _load(args: argparse.Namespace, kind: str) -> StageConfig | PipelineConfig:
    """The config, checked against the command: `reasonrl train` runs a GRPO stage or any
    pipeline, `reasonrl sft` an SFT stage or a pipeline of SFT stages."""
    config = load_config(args.config, overrides=args.set or [])
    if isinstance(config, StageConfig) and config.kind != kind:
        command = {"grpo": "reasonrl train", "sft": "reasonrl sft"}[config.kind]
        raise ConfigError(f"kind: this is a {config.kind!r} stage; run it with `{command}`")
    if isinstance(config, PipelineConfig) and kind == "sft":
        for index, stage in enumerate(config.stages):
            if stage.kind != "sft":
                raise ConfigError(
                    f"stages.{index}.kind: a {stage.kind!r} stage; `reasonrl sft` runs SFT stages only, "
                    "run this pipeline with `reasonrl train`"
                )
    return config


def _train(args: argparse.Namespace, kind: str = "grpo") -> int:
    config = _load(args, kind)  # every config error surfaces here, before any model loads
    quiet_transformers()
    from reasonrl.pipeline import run_pipeline, run_stage
    from reasonrl.trainer.distributed import close_distributed, is_main_process

    try:
        if isinstance(config, PipelineConfig):
            result: object = run_pipeline(config, resume=args.resume)
        else:
            result = run_stage(config, resume=args.resume)
        prints = is_main_process()  # asked before the group is gone: then every rank is "rank 0"
    finally:
        close_distributed()  # torchrun: leave the process group cleanly, even on an error
    if prints:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _eval(args: argparse.Namespace) -> int:
    quiet_transformers()
    from reasonrl.config import ModelConfig
    from reasonrl.data import get_template, load_examples
    from reasonrl.rollout import HFRollout, SamplingParams
    from reasonrl.trainer.grpo import evaluate_policy
    from reasonrl.trainer.models import load_model_and_tokenizer

    if any(k > args.samples for k in args.ks):
        raise ConfigError(f"--ks: every k must be <= --samples ({args.samples})")
    if args.greedy and args.samples > 1:
        raise ConfigError(f"--samples: greedy decoding gives one completion per problem, not {args.samples}; "
                          "drop --greedy to sample them")
    if args.json:
        # Before the evaluation, not after it: a folder that cannot be made loses no results.
        target = Path(args.json)
        if target.is_dir():
            raise ConfigError(f"--json: {args.json} is a folder; give a file name, such as {target / 'eval.json'}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--json: cannot create the folder for {args.json}: {error.strerror}") from error
        if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
            raise ConfigError(f"--json: {args.json} cannot be written (permission denied)")
    # Problems with the flags are named by the flag, and found before the model loads.
    with named_by({"name_or_format": "--template", "system_prompt": "--system-prompt"}):
        template = get_template(args.template, system_prompt=args.system_prompt)
    with named_by({"source": "--data", "split": "--split", "format": "--format", "limit": "--limit"}):
        examples = load_examples(args.data, format=args.format, split=args.split, limit=args.limit)
    model, tokenizer = load_model_and_tokenizer(ModelConfig(name_or_path=args.model, dtype=args.dtype, device=args.device))
    sampling = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, greedy=args.greedy,
    )
    result = evaluate_policy(
        HFRollout(model, tokenizer, batch_size=args.batch_size), tokenizer, template, examples,
        samples=args.samples, ks=args.ks, sampling=sampling, batch_prompts=args.batch_size, answer_tag=args.answer_tag,
    )
    print(result.table())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


def _info(_: argparse.Namespace) -> int:
    import importlib.util

    print(f"reasonrl {reasonrl.__version__}")
    print(f"threads: {reasonrl.get_num_threads()}")
    if importlib.util.find_spec("reasonrl.code") is not None:
        from reasonrl import code

        print(f"sandbox: {code.sandbox_capabilities()}")
    try:
        import torch

        print(f"torch {torch.__version__}, cuda: {torch.cuda.is_available()}")
    except ImportError:
        print("torch: not installed")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("config", help="a stage or pipeline YAML file (see recipes/)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=f"override a config key, e.g. {example}")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.output_dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonrl", description="RL with verifiable rewards for reasoning LLMs.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="offline R1 / Kimi k1.5 recipe on a tiny model (CPU, minutes)")
    demo.add_argument("--output-dir", default="runs/demo", help="where the stages, the report and the final model go (default runs/demo)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the task, the model and the training (default 0, the README's tables)")
    demo.add_argument(
        "--threads", type=_positive_int, default=None,
        help="torch CPU threads (default 2, as in the README's tables; another count gives other, equally valid figures)",
    )
    demo.set_defaults(run=_demo)

    train = commands.add_parser("train", help="run a GRPO stage or a pipeline from a YAML config")
    _add_config_arguments(train, "algorithm.beta=0.04")
    train.set_defaults(run=lambda a: _train(a, "grpo"))

    sft = commands.add_parser("sft", help="run a supervised cold-start stage (or a pipeline of them) from a YAML config")
    _add_config_arguments(sft, "sft.epochs=2")
    sft.set_defaults(run=lambda a: _train(a, "sft"))

    ev = commands.add_parser("eval", help="pass@k, maj@k, mean tokens and format rate of a model")
    ev.add_argument("--model", required=True, help="a local model folder or hub id")
    ev.add_argument("--data", required=True, help="a local data file (jsonl/json/parquet/csv) or data set name")
    ev.add_argument("--format", default=None, help="a data preset: gsm8k, math, math500, aime, humaneval, mbpp, mmlu")
    ev.add_argument("--split", default=None, help="a split of a folder of split files or of a hub data set (e.g. test)")
    ev.add_argument("--template", default="r1_zero",
                    help="r1_zero, chat (the tokenizer's chat template), plain, or a format string with {prompt} (default: r1_zero)")
    ev.add_argument("--system-prompt", default=None, help="a system message (with --template chat)")
    ev.add_argument("--limit", type=_positive_int, default=None, help="the first N problems only")
    ev.add_argument("--samples", type=_positive_int, default=1, help="completions per problem")
    ev.add_argument("--ks", type=_positive_int, nargs="+", default=[1], help="k of pass@k and maj@k (each <= --samples)")
    ev.add_argument("--greedy", action="store_true", help="greedy decoding (one completion per problem)")
    ev.add_argument("--answer-tag", action="store_true", help="count only answers inside <answer>...</answer>")
    ev.add_argument("--temperature", type=_temperature, default=0.6, help="sampling temperature (default: 0.6)")
    ev.add_argument("--top-p", type=_probability, default=0.95, help="nucleus sampling (default: 0.95)")
    ev.add_argument("--max-new-tokens", type=_positive_int, default=1024, help="completion length limit (default: 1024)")
    ev.add_argument("--batch-size", type=_positive_int, default=32, help="prompts per generate call")
    ev.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", default=None, help="also write the result as JSON here: the summary and, per problem, its samples, verdicts, scores and token counts")
    ev.set_defaults(run=_eval)

    info = commands.add_parser("info", help="version and runtime settings")
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as error:
        print(f"reasonrl: config error: {error}", file=sys.stderr)
        return 2
    except ReasonRLError as error:
        print(f"reasonrl: {error}", file=sys.stderr)
        return 1
    except ImportError as error:
        if "pip install" not in str(error):  # not one of ours naming a missing optional package
            raise
        print(f"reasonrl: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # training has saved what it had (see GRPOTrainer.train)
        print("reasonrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
