"""`mirrorl curate`: build an RL prompt set as the report's section 2.1 does, from any prompt dataset.

    rules (question type) -> pass rate of n samples -> drop too easy -> answer-only guesses -> drop guessable
    -> tags -> curated.jsonl + report

Stages, in order (each prompt leaves at the first that drops it):

1. `filters.question_type`: multiple-choice, true/false and proof questions (`curate.drop_types`) are dropped.
2. `difficulty.sample_correct`: the model answers each remaining prompt `curate.samples` times at
   `curate.temperature`; the share judged correct is its pass rate. Above `curate.max_pass_rate`: dropped.
3. Math prompts still in are answered `curate.guess_samples` times with the response prefilled by
   `curate.guess_prefix` and `curate.guess_max_tokens` to write the answer; one correct guess drops the prompt.
4. `tags.tags` labels domain, subject, level and difficulty bucket.

Outputs in the run folder: ``curated.jsonl`` (mirrorl rows with ``pass_rate`` and ``meta.tags``; ``mirrorl rl --data
curated.jsonl rl.sampler=curriculum`` reads the pass rates), ``dropped.jsonl`` (id, reason, pass rate, prompt),
``report.md``, ``report.json`` and ``pass_rate_histogram.png``. Per-prompt samples are appended to
``difficulty.jsonl`` and ``guess.jsonl`` as they are judged: a rerun with the same settings skips the prompts
already there (an interrupted run continues; new thresholds re-curate without sampling again). The settings they
were measured with are kept in ``settings.json``; a rerun with other ones is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from mirrorl.config import Config, ConfigError
from mirrorl.curation.difficulty import sample_correct
from mirrorl.curation.filters import question_type
from mirrorl.curation.report import summarize, write_report
from mirrorl.curation.tags import tags
from mirrorl.models.loading import load_policy
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.problem import DataError, Problem, write_jsonl

_MEASURED = ("samples", "temperature", "max_response_tokens", "guess_prefix", "guess_instruction", "guess_max_tokens",
             "guess_temperature")


def _settings(cfg: Config, model: str, guess_model: str) -> dict:
    """What the stored samples depend on (must match on resume), plus the thresholds (free to change)."""
    c = cfg.curate
    measured = {"model": model, "guess_model": guess_model, "instruction": cfg.task.instruction,
                "chat_template": cfg.model.chat_template} | {k: getattr(c, k) for k in _MEASURED}
    return measured | {"max_pass_rate": c.max_pass_rate, "drop_types": list(c.drop_types),
                       "guess_samples": c.guess_samples}


def _check_settings(out: Path, settings: dict) -> None:
    path = out / "settings.json"
    measured = {k: v for k, v in settings.items() if k not in ("max_pass_rate", "drop_types", "guess_samples")}
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), v) for k, v in measured.items() if old.get(k) != v}
        if changed:
            raise ConfigError(f"{path}: the samples in {out} were measured with other settings "
                              f"({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())}); "
                              "choose another --out or delete difficulty.jsonl, guess.jsonl and settings.json")
    path.write_text(json.dumps(measured, indent=2))


def _read_done(path: Path) -> dict[str, list[bool]]:
    """The rows of a results file; a last line cut off by a kill is removed so appending can continue."""
    if not path.exists():
        return {}
    lines = path.read_text().split("\n")
    if lines[-1]:  # no newline at the end: an interrupted write
        lines[-1] = ""
        path.write_text("\n".join(lines))
    done = {}
    for number, line in enumerate(lines[:-1], start=1):
        try:
            row = json.loads(line)
            done[row["id"]] = [bool(x) for x in row["correct"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path} line {number}: not a results row ({err}); delete the file to measure again") from None
    return done


def measure(path: Path, problems: list[Problem], chunk: int, judge: Callable[[list[Problem]], list[list[bool]]],
            desc: str) -> tuple[dict[str, list[bool]], int]:
    """Judge every problem not yet in `path`, `chunk` prompts per call of `judge`, appending each result row
    (``{"id", "correct": [bool, ...]}``) as soon as its chunk is done.

    Returns: id -> flags for all `problems`, and how many of them were judged in this call (not read back).
    """
    done = _read_done(path)
    todo = [p for p in problems if p.id not in done]
    with open(path, "a") as f, tqdm(total=len(problems), initial=len(problems) - len(todo), desc=desc,
                                    unit="prompt") as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            results = judge(part)
            f.write("".join(json.dumps({"id": p.id, "correct": flags}) + "\n" for p, flags in zip(part, results)))
            f.flush()
            done.update((p.id, flags) for p, flags in zip(part, results))
            bar.update(len(part))
    return {p.id: done[p.id] for p in problems}, len(todo)


def load_models(cfg: Config) -> tuple[tuple, tuple | None]:
    """(engine, tokenizer, name) of `model.path`, and of `curate.guess_model` when set (None = the same).

    Raises: mirrorl.models.loading.ModelLoadError for a bad model folder.
    """
    loaded = []
    for path in filter(None, (cfg.model.path, cfg.curate.guess_model)):
        model, tokenizer = load_policy(path, device=cfg.run.device)
        loaded.append((HFEngine.from_config(model, tokenizer, cfg), tokenizer, str(path)))
    return loaded[0], loaded[1] if len(loaded) > 1 else None


def curate(cfg: Config, problems: list[Problem], out: str | Path, policy: tuple, guesser: tuple | None = None) -> dict:
    """Curate `problems` into the folder `out` (see the module docstring).

    Args:
        policy: (engine, tokenizer, model name) that measures pass rates (`load_models`).
        guesser: the same for the answer-only guesses; None = `policy`.
    Returns: the report summary (`report.summarize`) with ``"seconds"`` and ``"sampled"`` (prompts sampled in this
        call, not read back from an earlier run) per stage.
    Raises: DataError when two problems share an id; ConfigError when `out` holds samples measured with other
        settings; mirrorl.sandbox.client.SandboxError when code problems cannot reach a sandbox.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = Counter(p.id for p in problems)
    if len(counts) != len(problems):
        twice = sorted(i for i, n in counts.items() if n > 1)[:5]
        raise DataError(f"prompt ids must be unique to curate and resume, repeated: {twice}")
    c = cfg.curate
    engine, tokenizer, name = policy
    guess_engine, guess_tokenizer, guess_name = guesser or policy
    settings = _settings(cfg, name, guess_name)
    _check_settings(out, settings)
    seconds: dict[str, float] = {}
    sampled: dict[str, int] = {}
    reason: dict[str, str] = {}
    for p in problems:
        kind = question_type(p)
        if kind in c.drop_types:
            reason[p.id] = kind

    start = time.monotonic()
    torch.manual_seed(cfg.run.seed)
    chunk = max(1, cfg.eval.batch_size // c.samples)
    sampling = SamplingParams(c.temperature, 1.0, c.max_response_tokens)
    pool = [p for p in problems if p.id not in reason]
    flags, sampled["pass_rate"] = measure(out / "difficulty.jsonl", pool, chunk, lambda part: sample_correct(
        engine, tokenizer, part, c.samples, sampling, cfg.model.chat_template, cfg.task.instruction), "pass rate")
    rate = {i: sum(f) / len(f) for i, f in flags.items()}
    reason.update((p.id, "too_easy") for p in pool if rate[p.id] > c.max_pass_rate)
    seconds["pass_rate"] = time.monotonic() - start

    guessed: dict[str, list[bool]] = {}
    suspects = [p for p in pool if p.id not in reason and p.kind == "math"]
    if c.guess_samples and suspects:
        start = time.monotonic()
        guess = SamplingParams(c.guess_temperature, 1.0, c.guess_max_tokens)
        guessed, sampled["answer_only"] = measure(out / "guess.jsonl", suspects, max(1, cfg.eval.batch_size // c.guess_samples),
                          lambda part: sample_correct(guess_engine, guess_tokenizer, part, c.guess_samples, guess,
                                                      cfg.model.chat_template, c.guess_instruction, c.guess_prefix,
                                                      require_stop=False), "answer-only")
        reason.update((i, "answer_guessed") for i, f in guessed.items() if any(f))
        seconds["answer_only"] = time.monotonic() - start

    records, kept, dropped = [], [], []
    for p in problems:
        r = rate.get(p.id)
        record = {"id": p.id, "reason": reason.get(p.id, "kept"), "pass_rate": r, "tags": tags(p, r)}
        if p.id in guessed:
            record["guessed"] = sum(guessed[p.id])
        records.append(record)
        if record["reason"] == "kept":
            kept.append(dataclasses.replace(p, pass_rate=r, meta={**p.meta, "tags": record["tags"]}))
        else:
            dropped.append({**record, "prompt": p.prompt})
    write_jsonl(kept, out / "curated.jsonl")
    (out / "dropped.jsonl").write_text("".join(json.dumps(row) + "\n" for row in dropped))
    summary = summarize(records, c.samples)
    examples = [next(d for d in dropped if d["reason"] == why) for why in summary["dropped"]]
    write_report(out, summary, settings, seconds, sampled, examples)
    return summary | {"seconds": seconds, "sampled": sampled}
