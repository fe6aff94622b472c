"""Atomic checkpoints: Hugging Face weights (safetensors) + trainer state, resumable after kill -9.

A checkpoint is written into a hidden temporary folder and renamed into place (an atomic rename on
POSIX file systems); the `latest` pointer file is then replaced atomically. A kill at any moment
therefore leaves either the previous checkpoint or the new one, never a half-written one.

Layout: `<run_dir>/checkpoints/iter_000010/{config.json, model.safetensors, tokenizer files, trainer_state.pt}`.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    """The state of every random generator a run draws from (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    with open(tmp) as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: str | Path, step: int, model, tokenizer, state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step` atomically and prune all but the `keep` newest.

    Args:
        run_dir: the run folder; checkpoints go under `run_dir/checkpoints`.
        step: iteration number (names the folder).
        model, tokenizer: saved with `save_pretrained` (safetensors); pass a vision-language model's
            processor as `tokenizer` (it saves its tokenizer too).
        state: trainer state (optimizer, sampler, RNG, counters), saved with `torch.save`.
    Returns: the checkpoint folder.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter_{step:06d}"
    tmp = root / f".tmp_iter_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save(state, tmp / "trainer_state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(root / "latest", final.name)
    for old in sorted(p for p in root.glob("iter_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The folder named by `checkpoints/latest`, or None when the run has no checkpoint yet."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


def load_trainer_state(checkpoint: Path) -> dict:
    return torch.load(checkpoint / "trainer_state.pt", weights_only=False)
