"""Model merging (report section 2.4): the weighted average of two checkpoints, with no training.

    theta = (1 - weight) * theta_A + weight * theta_B          (the report uses weight = 0.5)

Works on the safetensors files directly, one shard at a time, so it needs no model class and about
one shard of memory. Tied weights need no special case: `save_pretrained` stores a tied tensor once,
and both models must agree on `tie_word_embeddings`, so they hold the same keys. The output folder
gets A's config, tokenizer and shard layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# config.json fields that define the architecture; both models must agree on each one present
_ARCH_FIELDS = ("architectures", "model_type", "tie_word_embeddings", "vocab_size", "hidden_size",
                "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")


class MergeError(ValueError):
    """The two checkpoints cannot be averaged; the message names the folder and the differing field or tensor."""


def _weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file holding it (single file or sharded with an index)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return {k: folder / f for k, f in json.loads(index.read_text())["weight_map"].items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise MergeError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    with safe_open(single, "pt") as f:
        return {k: single for k in f.keys()}


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise MergeError(f"{folder}: not a model folder (no config.json)")
    return json.loads(path.read_text())


def merge_models(model_a: str | Path, model_b: str | Path, out_dir: str | Path, weight: float = 0.5) -> Path:
    """Write `(1 - weight) * A + weight * B`, tensor by tensor, into `out_dir`.

    Each floating-point tensor is averaged in at least float32 and stored in A's dtype (bf16 stays
    bf16); integer buffers are copied from A.

    Args:
        model_a, model_b: Hugging Face model folders with safetensors weights (`save_pretrained`).
        out_dir: output folder; receives A's non-weight files (config, tokenizer) and the merged shards.
        weight: weight of B in [0, 1].
    Returns: `out_dir` as a Path.
    Raises: MergeError when a folder is not a model, the architectures (config fields in
        `_ARCH_FIELDS`), the tensor names or any tensor's shape differ, or weight is outside [0, 1].
    """
    a, b, out = Path(model_a), Path(model_b), Path(out_dir)
    if not 0.0 <= weight <= 1.0:
        raise MergeError(f"weight must be in [0, 1], got {weight}")
    config_a, config_b = _config(a), _config(b)
    for key in _ARCH_FIELDS:
        if config_a.get(key) != config_b.get(key):
            raise MergeError(f"{a} and {b} have different architectures: config.json {key} is "
                             f"{config_a.get(key)!r} vs {config_b.get(key)!r}")
    files_a, files_b = _weight_files(a), _weight_files(b)
    if set(files_a) != set(files_b):
        only = sorted(set(files_a) ^ set(files_b))
        raise MergeError(f"{a} and {b} hold different tensors, e.g. {only[:3]} (different architectures)")
    for name, file_a in files_a.items():
        with safe_open(file_a, "pt") as fa, safe_open(files_b[name], "pt") as fb:
            shape_a, shape_b = fa.get_slice(name).get_shape(), fb.get_slice(name).get_shape()
        if shape_a != shape_b:
            raise MergeError(f"{a} and {b}: tensor {name} has shape {tuple(shape_a)} vs {tuple(shape_b)}")
    out.mkdir(parents=True, exist_ok=True)
    for item in a.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copy2(item, out / item.name)
    for shard in sorted(set(files_a.values())):
        tensors = load_file(shard)
        for name, ta in tensors.items():
            if ta.is_floating_point():
                with safe_open(files_b[name], "pt") as f:
                    tb = f.get_tensor(name)
                dtype = torch.promote_types(ta.dtype, torch.float32)
                tensors[name] = ((1 - weight) * ta.to(dtype) + weight * tb.to(dtype)).to(ta.dtype)
        save_file(tensors, out / shard.name, metadata={"format": "pt"})
    return out
