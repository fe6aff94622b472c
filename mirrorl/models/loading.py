"""Load any Hugging Face causal-LM folder (the tiny demo model or a real checkpoint) as a policy."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


class ModelLoadError(RuntimeError):
    """A model folder is missing or cannot be loaded; the message names the folder and the cause."""


def load_policy(path: str | Path, dtype: str = "float32", device: str = "cpu"
                ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder (safetensors weights).

    Args:
        path: a folder with `config.json`, weights and tokenizer files, as written by `save_pretrained`.
        dtype: parameter dtype, "float32" or "bfloat16". Training keeps float32 master weights and
            uses bf16 autocast for speed (see `mirrorl.trainer.precision`).
        device: "cpu", "cuda", "cuda:1", ...
    Returns: (model in train mode on `device`, tokenizer with a pad token and left padding).
    Raises: ModelLoadError naming the folder when it is missing or transformers cannot load it.
    """
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as err:  # transformers raises many types; the user needs the folder and the cause
        raise ModelLoadError(f"{path}: cannot load model or tokenizer: {type(err).__name__}: {err}") from err
    return model.to(device).train(), tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder, with a pad token (eos if it has none) and left padding.

    Raises: ModelLoadError naming the folder when it is missing or transformers cannot load it.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a model folder (no config.json); pass a folder written by "
                             "save_pretrained, e.g. one made by `mirrorl tiny-model --out DIR`")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises many types; the user needs the folder and the cause
        raise ModelLoadError(f"{path}: cannot load model or tokenizer: {type(err).__name__}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer
