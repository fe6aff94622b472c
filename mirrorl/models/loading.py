"""Load any Hugging Face model folder (the tiny demo models or a real checkpoint) as a policy.

Text models load through `AutoModelForCausalLM`; vision-language models (a config with a
`vision_config`: LLaVA, Qwen2-VL, ...) through `AutoModelForImageTextToText`, with their processor
from `load_processor`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin)


class ModelLoadError(RuntimeError):
    """A model folder is missing or cannot be loaded; the message names the folder and the cause."""


def _checked(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a model folder (no config.json); pass a folder written by "
                             "save_pretrained, e.g. one made by `mirrorl tiny-model --out DIR`")
    return path


def is_vision_language(path: str | Path) -> bool:
    """Whether the model folder holds a vision-language model (its config has a `vision_config`)."""
    return getattr(AutoConfig.from_pretrained(_checked(path)), "vision_config", None) is not None


def attention_kernel(attn_implementation: str, device: str) -> str | None:
    """The `attn_implementation` to load with: "auto" is "eager" on CPU (for the demo's models 1.15-1.25x
    faster than "sdpa" in both generation and the update step, whose CPU flash-attention backward is slow
    at these sizes: bench/README.md) and transformers' own default (None) on accelerators; any other
    value is passed through."""
    if attn_implementation != "auto":
        return attn_implementation
    return "eager" if str(device).startswith("cpu") else None


def load_policy(path: str | Path, dtype: str = "float32", device: str = "cpu", attn_implementation: str = "auto"
                ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM or vision-language model and its tokenizer from a local folder (safetensors weights).

    Args:
        path: a folder with `config.json`, weights and tokenizer files, as written by `save_pretrained`.
        dtype: parameter dtype, "float32" or "bfloat16". Training keeps float32 master weights and
            uses bf16 autocast where the device runs it natively (see `mirrorl.trainer.precision`).
        device: "cpu", "cuda", "cuda:1", ...
        attn_implementation: "auto" (see `attention_kernel`), "eager", "sdpa", "flash_attention_2", ...
    Returns: (model in train mode on `device`, tokenizer with a pad token and left padding).
    Raises: ModelLoadError naming the folder when it is missing or transformers cannot load it.
    """
    path = _checked(path)
    tokenizer = load_tokenizer(path)
    kernel = attention_kernel(attn_implementation, device)
    try:
        auto = AutoModelForImageTextToText if is_vision_language(path) else AutoModelForCausalLM
        model = auto.from_pretrained(path, dtype=getattr(torch, dtype),
                                     **({"attn_implementation": kernel} if kernel else {}))
    except Exception as err:  # transformers raises many types; the user needs the folder and the cause
        raise ModelLoadError(f"{path}: cannot load model or tokenizer: {type(err).__name__}: {err}") from err
    return model.to(device).train(), tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder, with a pad token (eos if it has none) and left padding.

    Raises: ModelLoadError naming the folder when it is missing or transformers cannot load it.
    """
    path = _checked(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises many types; the user needs the folder and the cause
        raise ModelLoadError(f"{path}: cannot load model or tokenizer: {type(err).__name__}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_processor(path: str | Path) -> ProcessorMixin | None:
    """The multimodal processor (image preprocessing + tokenizer) of a vision-language model folder,
    None for a text-only model. Image processors load in their PIL/numpy variant (`backend="pil"`),
    which needs no torchvision.

    Raises: ModelLoadError naming the folder when the processor cannot be loaded.
    """
    path = _checked(path)
    if not is_vision_language(path):
        return None
    try:
        return AutoProcessor.from_pretrained(path, backend="pil")
    except Exception as err:
        raise ModelLoadError(f"{path}: cannot load the processor: {type(err).__name__}: {err}") from err
