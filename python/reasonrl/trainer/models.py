"""Loading the policy and its tokenizer from a `ModelConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.models.auto.tokenization_auto import get_tokenizer_config

from reasonrl.config import ModelConfig
from reasonrl.errors import InvalidInputError
from reasonrl.trainer.distributed import local_rank

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Tokenizer classes that are only a `tokenizers` pipeline: the folder's tokenizer.json is the
# whole definition.
PLAIN_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def resolve_device(name: str) -> torch.device:
    """``auto``: this rank's GPU (cuda:LOCAL_RANK under torchrun), else the CPU; a bare ``cuda``
    also means this rank's GPU, so one config serves 1 or 8 processes."""
    if name == "auto" or name == "cuda":
        if name == "cuda" or torch.cuda.is_available():
            return torch.device("cuda", local_rank())
        return torch.device("cpu")
    return torch.device(name)


def usable_device(name: str) -> torch.device:
    """`resolve_device`, refusing a CUDA device torch cannot use (no GPU, no driver, or an index
    past the last GPU) with an error that says so, before any weights are read."""
    try:
        device = resolve_device(name)
    except RuntimeError as error:  # an unparsable name, e.g. "gpu"
        raise InvalidInputError(f"invalid device {name!r}: {error}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"invalid device {name!r}: torch sees no CUDA GPU here (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(f"invalid device {name!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def load_model_and_tokenizer(config: ModelConfig, *, name_or_path: str | None = None) -> tuple[Any, Any]:
    """A causal LM (local folder or hub id) on the configured device, and its tokenizer."""
    path = name_or_path or config.name_or_path
    device = usable_device(config.device)
    if path.startswith((".", "/", "~")):
        if not Path(path).expanduser().is_dir():
            raise InvalidInputError(f"cannot load the model: no such folder: {path}")
        path = str(Path(path).expanduser())  # from_pretrained takes "~/m" for a hub id
    dtype = "auto" if config.dtype == "auto" else DTYPES[config.dtype]
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=config.trust_remote_code)
        tokenizer = load_tokenizer(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:  # not a model folder, an unknown hub id, no network, ...
        raise InvalidInputError(f"cannot load the model {path!r}: {error}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
        model.config.use_cache = False  # the cache is useless with checkpointing during training
    return model.to(device), tokenizer


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward instead of storing them (non-reentrant
    checkpoints), under the name the installed transformers uses: `activation_checkpointing_enable`
    since 5.x (the old name warns that it goes away in v6), `gradient_checkpointing_enable` before."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def checkpoints_activations(model: Any) -> bool:
    """Whether the model recomputes activations in backward (transformers ≥ 5.2x names it
    `is_activation_checkpointing`, earlier versions `is_gradient_checkpointing`)."""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(flag if flag is not None else getattr(model, "is_gradient_checkpointing", False))


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved with a model (local folder or hub id).

    `AutoTokenizer`, except for a tokenizer saved as a plain `tokenizers` pipeline
    (`PLAIN_TOKENIZER_CLASSES`, what a custom tokenizer such as the demo's is saved as): that one
    loads from its tokenizer.json as it is. transformers 5 gives some model types (qwen2 among
    them) their own tokenizer class whatever the folder declares, and that class brings its own
    pre-tokenizer: a character-level tokenizer saved with a Qwen2 model came back without its
    spaces, so every later stage and evaluation read different tokens than training wrote.
    Hub models that declare such a class (the Llama 3 family) load as AutoTokenizer loads them."""
    declared = get_tokenizer_config(path)
    if declared.get("tokenizer_class") in PLAIN_TOKENIZER_CLASSES and "auto_map" not in declared:
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def turn_off_dropout(model: torch.nn.Module) -> int:
    """Sets the dropout rates in `model` to 0 (`nn.Dropout` modules, and float attributes named
    ``*dropout*`` or ``*pdrop``); returns how many were not 0. Layer drop and drop-path, which
    decoder LMs do not use, are left as they are.

    In RL the log-probs of the policy that sampled, of the policy being trained and of the
    reference must be those of one function: with dropout on, the importance ratio and the KL
    are noise before any update (the sampler and the reference run in eval mode, the training
    forward does not). Attention modules keep their rate as such an attribute
    (`attention_dropout`, `attn_pdrop`) and apply it themselves while training."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            changed += module.p > 0
            module.p = 0.0
            continue
        for name, value in vars(module).items():
            if "dropout" in name or name.endswith("pdrop"):
                if isinstance(value, float) and value > 0:
                    setattr(module, name, 0.0)
                    changed += 1
    return changed
