"""The prompt sets of a run: RL prompts, held-out evaluation, dev (early stopping) and warm-up traces.

Generated arithmetic (the demo) follows the report's setting (section 2.2): verified long-CoT traces
are scarce (`warmup_size` traces, only the `warmup_levels`), while prompts with gold answers only are
plentiful for RL. Held-out and dev prompts are disjoint from each other and from every training prompt.
With `task.generated=vision` the same sets hold generated pictures (`mirrorl.tasks.vision`), and every
warm-up level gets traces. With `task.data` set, RL prompts come from that jsonl and the held-out set
from `task.heldout_data` or a fixed-seed split of the data.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

from mirrorl.config import ConfigError, TaskConfig
from mirrorl.rewards import score
from mirrorl.tasks.arithmetic import cot_trace, generate_arithmetic
from mirrorl.tasks.jsonl import load_problems
from mirrorl.tasks.problem import DataError, Problem, read_jsonl, write_jsonl
from mirrorl.tasks.vision import generate_vision, vision_trace


@dataclass
class Datasets:
    rl: list[Problem]
    heldout: list[Problem]
    dev: list[Problem]
    warmup: list[dict]  # {"prompt", "response"[, "image"]} verified chain-of-thought traces; empty for jsonl data


def _instructed(problems: list[Problem], instruction: str) -> list[Problem]:
    return [dataclasses.replace(p, prompt=p.prompt + instruction) for p in problems] if instruction else problems


def build_datasets(cfg: TaskConfig, seed: int) -> Datasets:
    """Generate or load the run's prompt sets (deterministic for a seed).

    Raises: DataError (from the loaders) naming the file, row and field of a malformed row, or when
    a set is empty.
    """
    if cfg.data:
        pool = _instructed(load_problems(cfg.data), cfg.instruction)
        shuffled = random.Random(seed).sample(pool, len(pool))
        if cfg.heldout_data:
            heldout = _instructed(load_problems(cfg.heldout_data), cfg.instruction)
        else:
            heldout, shuffled = shuffled[: min(cfg.heldout_size, len(pool) // 2)], shuffled[min(cfg.heldout_size, len(pool) // 2):]
        dev, rl = shuffled[: min(cfg.dev_size, len(shuffled) // 2)], shuffled[min(cfg.dev_size, len(shuffled) // 2):]
        if not rl or not heldout or not dev:
            raise DataError(f"{cfg.data}: {len(pool)} rows are too few to split into RL prompts, a held-out set "
                            "and a dev set; add rows or give task.heldout_data")
        return Datasets(rl=rl, heldout=heldout, dev=dev, warmup=[])
    try:
        return _generated_vision(cfg, seed) if cfg.generated == "vision" else _generated(cfg, seed)
    except ValueError as err:
        raise ConfigError(f"task: {err}; lower task.heldout_size, task.dev_size, task.warmup_size or "
                          "task.rl_prompts, or add levels") from None


def _generated(cfg: TaskConfig, seed: int) -> Datasets:
    levels = tuple(cfg.levels)
    heldout = generate_arithmetic(cfg.heldout_size, seed + 1, levels)
    dev = generate_arithmetic(cfg.dev_size, seed + 2, levels, exclude={p.id for p in heldout})
    excluded = {p.id for p in heldout + dev}
    warmup_problems = generate_arithmetic(cfg.warmup_size, seed + 3, tuple(cfg.warmup_levels), exclude=excluded)
    rng = random.Random(seed + 4)
    warmup = []
    for p in warmup_problems:
        response = cot_trace(p, rng, cfg.slip_rate, cfg.check_rate)
        if score(p, response).correct:  # keep only verified-correct traces (report section 2.2)
            warmup.append({"prompt": p.prompt, "response": response, "id": p.id, "level": p.level})
    rl = generate_arithmetic(cfg.rl_prompts, seed + 5, levels, exclude=excluded)
    return Datasets(rl=rl, heldout=heldout, dev=dev, warmup=warmup)


def _generated_vision(cfg: TaskConfig, seed: int) -> Datasets:
    levels, tasks = tuple(cfg.levels), tuple(cfg.vision_tasks)
    heldout = generate_vision(cfg.heldout_size, seed + 1, levels, tasks)
    dev = generate_vision(cfg.dev_size, seed + 2, levels, tasks, exclude={p.id for p in heldout})
    excluded = {p.id for p in heldout + dev}
    warmup = []
    for p in generate_vision(cfg.warmup_size, seed + 3, tuple(cfg.warmup_levels), tasks, exclude=excluded):
        response = vision_trace(p)
        if score(p, response).correct:  # verified traces only, as for arithmetic
            warmup.append({"prompt": p.prompt, "response": response, "image": p.image, "id": p.id, "level": p.level})
    rl = generate_vision(cfg.rl_prompts, seed + 5, levels, tasks, exclude=excluded)
    return Datasets(rl=rl, heldout=heldout, dev=dev, warmup=warmup)


def save_datasets(data: Datasets, folder: str | Path) -> None:
    """Write every set as jsonl under `folder` (rl_prompts, heldout, dev, warmup_sft)."""
    import json
    folder = Path(folder)
    write_jsonl(data.rl, folder / "rl_prompts.jsonl")
    write_jsonl(data.heldout, folder / "heldout.jsonl")
    write_jsonl(data.dev, folder / "dev.jsonl")
    with open(folder / "warmup_sft.jsonl", "w") as f:
        for row in data.warmup:
            f.write(json.dumps(row) + "\n")


def load_sft_examples(path: str | Path) -> list[dict]:
    """Read a jsonl of `{"prompt": str, "response": str}` rows (other fields kept).

    Raises: DataError naming the file, line and field for missing files, bad JSON, missing or
    non-string fields, and an empty file.
    """
    rows = []
    for number, row in read_jsonl(path):
        for field in ("prompt", "response"):
            if not isinstance(row.get(field), str) or not row[field]:
                raise DataError(f"{path} line {number}: field {field!r} missing or not a non-empty string")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_run_datasets(folder: str | Path) -> Datasets:
    """Read back the sets `save_datasets` wrote (used when resuming a run)."""
    folder = Path(folder)
    warmup_path = folder / "warmup_sft.jsonl"
    warmup = load_sft_examples(warmup_path) if warmup_path.exists() and warmup_path.stat().st_size else []
    return Datasets(rl=load_problems(folder / "rl_prompts.jsonl"), heldout=load_problems(folder / "heldout.jsonl"),
                    dev=load_problems(folder / "dev.jsonl"), warmup=warmup)
