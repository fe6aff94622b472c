"""Long2short (report section 2.4): turn a long-CoT model into shorter-answering ones, and compare them.

    long-CoT RL run --choose the checkpoint (accuracy, then fewest tokens)--> long model
    warm-up model --SFT on short traces (unless a short model is given)-----> short/model
    long model --merge with the short model---------------------------------> merge/model
               --n samples per prompt, judged--+--shortest correct, SFT------> shortest/model
                                               +--DPO pairs, DPO------------> dpo/model
               --RL, length penalty from the start, smaller limit-----------> rl/final
    then every model answers the same held-out prompts -> eval.json, token_efficiency.{png,md}

Shortest rejection sampling and DPO share one set of samples from the long model (the report
samples the long model for both). The report merges the long-CoT model with its short-CoT sibling; for
the generated arithmetic task mirrorl trains that sibling from the long model's own starting point
(the warm-up SFT model) on traces that write one running total per line, without plans or checks.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from mirrorl.config import Config
from mirrorl.eval.evaluate import evaluate_folder
from mirrorl.eval.report import write_token_efficiency
from mirrorl.long2short.dpo import build_pairs, train_dpo
from mirrorl.long2short.merge import merge_models
from mirrorl.long2short.shortest import sample_groups, shortest_rejection_sampling, write_rows
from mirrorl.models.loading import load_policy
from mirrorl.rewards import score
from mirrorl.rl import train_rl
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.sft import run_sft
from mirrorl.tasks.arithmetic import short_trace
from mirrorl.tasks.datasets import Datasets


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def choose_long_checkpoint(rl_dir: str | Path, tolerance: float) -> Path:
    """The long-CoT checkpoint of an RL run that long2short starts from.

    The report takes "the checkpoint with the best trade-off between performance and token efficiency"
    (section 2.4) without a formula; here: among the run's kept checkpoints that have a held-out
    evaluation at their iteration (`rl.eval_every`, `rl.save_every`), those within `tolerance` of the
    best held-out accuracy, the one with the fewest mean response tokens (ties: the later one). The
    last iteration's checkpoint is returned as `final/`, which holds the same weights.

    Raises: FileNotFoundError when `rl_dir` has no evaluated checkpoint.
    """
    rl_dir = Path(rl_dir)
    evals = {}
    metrics = rl_dir / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.is_file() else []:
        record = json.loads(line)
        if "heldout/accuracy" in record:
            evals[record["step"]] = (record["heldout/accuracy"], record["heldout/mean_response_tokens"])
    last = max(evals, default=None)
    folders = {step: rl_dir / "checkpoints" / f"iter_{step:06d}" for step in evals}
    folders = {step: (rl_dir / "final" if step == last and (rl_dir / "final").is_dir() else folder)
               for step, folder in folders.items()}
    kept = {step: folder for step, folder in folders.items() if (folder / "config.json").is_file()}
    if not kept:
        raise FileNotFoundError(f"{rl_dir}: no RL checkpoint with a held-out evaluation (metrics.jsonl, checkpoints/)")
    best = max(evals[step][0] for step in kept)
    near = [step for step in kept if evals[step][0] >= best - tolerance]
    return kept[min(near, key=lambda step: (evals[step][1], -step))]


def train_short_cot(cfg: Config, data: Datasets, base_model: str | Path, out_dir: str | Path) -> Path:
    """The short-CoT merge partner: `base_model` fine-tuned on short traces (`short_trace`) of the first
    `long2short.short_sft_prompts` RL prompts, for `long2short.short_sft_steps` steps (dev early stopping).

    Returns: the model folder `out_dir/model`; the rows are in `out_dir/short.jsonl`.
    Raises: ValueError when the RL prompts are not generated arithmetic (give the short model instead).
    """
    out = Path(out_dir)
    problems = [p for p in data.rl if "steps" in p.meta][:cfg.long2short.short_sft_prompts]
    if not problems:
        raise ValueError("long2short: the RL prompts are not generated arithmetic, so no short traces can be "
                         "written; pass the short-CoT model with --short-model")
    rows = [{"prompt": p.prompt, "response": short_trace(p), "id": p.id} for p in problems]
    write_rows(rows, out / "short.jsonl")
    sft_cfg = copy.deepcopy(cfg)
    sft_cfg.sft.max_steps = cfg.long2short.short_sft_steps
    model, tokenizer = load_policy(base_model, device=cfg.run.device)
    run_sft(model, tokenizer, rows, data.dev, sft_cfg, out, stage="short_sft")
    return _save(model, tokenizer, out / "model")


def merge_on_dev(cfg: Config, data: Datasets, long_model: str | Path, short_model: str | Path, out_dir: str | Path
                 ) -> tuple[Path, float, list[dict]]:
    """Model merging (report section 2.4): `long_model` and `short_model` averaged into `out_dir` at the
    short model's weight that `long2short.merge_weights` gives.

    One weight: that merge (the report averages, weight 0.5). Several: the interpolation weight is a
    choice the report leaves open, made here on the dev prompts (never the held-out ones): weights are
    tried in increasing order (most of the long model first) and the first whose dev pass@1 (`cfg.eval`)
    is at least the long model's minus `long2short.merge_tolerance` is kept; if none is, the most
    accurate. Only the kept merge stays on disk.

    Returns: (the merged model folder, its weight, [{"weight", "dev_accuracy", "dev_mean_response_tokens"}]
        for the long model as weight 0 and each weight tried; empty for a single weight).
    Raises: MergeError when the two models differ in architecture.
    """
    weights = sorted(cfg.long2short.merge_weights)
    if len(weights) == 1:
        print(f"[long2short] merge: {1 - weights[0]:g} * long + {weights[0]:g} * short")
        return merge_models(long_model, short_model, out_dir, weight=weights[0]), weights[0], []

    def dev_point(weight: float, folder) -> dict:
        result = evaluate_folder(folder, data.dev, cfg)
        print(f"[long2short] merge weight {weight:g}: dev accuracy {result.accuracy:.3f}, "
              f"{result.mean_response_tokens:.1f} tokens")
        return {"weight": weight, "dev_accuracy": result.accuracy,
                "dev_mean_response_tokens": result.mean_response_tokens}

    sweep = [dev_point(0.0, long_model)]
    target = sweep[0]["dev_accuracy"] - cfg.long2short.merge_tolerance
    for weight in weights:
        sweep.append(dev_point(weight, merge_models(long_model, short_model, out_dir, weight=weight)))
        if sweep[-1]["dev_accuracy"] >= target:
            return Path(out_dir), weight, sweep
    best = max(sweep[1:], key=lambda point: point["dev_accuracy"])
    print(f"[long2short] no merge reached the long model's dev accuracy; keeping weight {best['weight']:g}")
    return merge_models(long_model, short_model, out_dir, weight=best["weight"]), best["weight"], sweep


def long2short_rl(cfg: Config, data: Datasets, long_model: str | Path, out_dir: str | Path) -> Path:
    """Long2short RL (report section 2.4): RL from `long_model` with the length penalty (section 2.3.3) at
    weight `long2short.rl_length_penalty_weight` from the first iteration and the smaller response limit
    `long2short.rl_max_response_tokens`, for `long2short.rl_iterations` iterations; every other RL setting
    is the run's. Resumes an interrupted run in `out_dir`. Returns the final policy folder.

    Raises: TrainingError on a non-finite loss and ModelLoadError for a bad `long_model` (see `train_rl`).
    """
    l2s, rl_cfg = cfg.long2short, copy.deepcopy(cfg)
    rl_cfg.model.path = str(long_model)
    rl_cfg.rl.iterations = rl_cfg.rl.eval_every = rl_cfg.rl.save_every = l2s.rl_iterations
    rl_cfg.rl.length_penalty_weight, rl_cfg.rl.length_penalty_warmup = l2s.rl_length_penalty_weight, 0
    rl_cfg.rl.max_response_tokens = l2s.rl_max_response_tokens
    train_rl(rl_cfg, data, out_dir, resume=True)
    return Path(out_dir) / "final"


def run_long2short(cfg: Config, data: Datasets, long_model: str | Path, short_model: str | Path | None,
                   out_dir: str | Path, scorer=score, base_model: str | Path | None = None) -> dict:
    """Run every long2short method from `long_model`, then evaluate them all on the held-out prompts.

    Args:
        data: the run's prompt sets: samples come from the first `cfg.long2short.prompts` RL prompts,
            SFT early-stops on `data.dev`, and every model is evaluated on `data.heldout`.
        long_model: the long-CoT model folder (e.g. `choose_long_checkpoint` of a demo run's rl/).
        short_model: the merge partner (same architecture), or None to train one with `train_short_cot`
            from `base_model`.
        out_dir: receives short/, merge/, shortest/, dpo/ and rl/ (data, model, metrics.jsonl, tb/),
            eval.json and token_efficiency.{png,md}.
        scorer: `scorer(problem, text) -> Verdict` that judges the samples (default: the task's reward).
        base_model: where short-CoT SFT starts (the warm-up SFT model the long model was trained from).
    Returns: {"heldout_size", "models": label -> {"path", "accuracy", "mean_response_tokens", "per_level"},
        "merge_weight", "merge_sweep" (see `merge_on_dev`), "sft_rows", "dpo_pairs"}; a method whose data
        came out empty (no correct sample) is left out.
    Raises: MergeError when the two models differ in architecture; ModelLoadError for a bad folder;
        ValueError when neither `short_model` nor `base_model` is given.
    """
    out = Path(out_dir)
    l2s = cfg.long2short
    if short_model is None:
        if base_model is None:
            raise ValueError("long2short: give the short-CoT model, or the warm-up model to train one from")
        print(f"[long2short] short-CoT SFT from {base_model}")
        short_model = train_short_cot(cfg, data, base_model, out / "short")
    models = {"long": Path(long_model), "short": Path(short_model)}
    models["merge"], merge_weight, merge_sweep = merge_on_dev(cfg, data, long_model, short_model, out / "merge")

    problems = data.rl[:l2s.prompts]
    print(f"[long2short] sampling {l2s.samples_per_prompt} responses to each of {len(problems)} prompts")
    torch.manual_seed(cfg.run.seed)
    model, tokenizer = load_policy(long_model, device=cfg.run.device)
    groups = sample_groups(HFEngine.from_config(model, tokenizer, cfg, progress=True), tokenizer, problems,
                           l2s.samples_per_prompt, SamplingParams(l2s.temperature, 1.0, l2s.max_response_tokens),
                           cfg.model.chat_template, scorer)
    rows = shortest_rejection_sampling(problems, groups)
    pairs = [pair for problem, group in zip(problems, groups) for pair in build_pairs(problem, group, cfg.dpo.length_ratio)]
    write_rows(rows, out / "shortest" / "shortest.jsonl")
    write_rows(pairs, out / "dpo" / "pairs.jsonl")
    print(f"[long2short] {len(rows)} shortest-correct SFT rows, {len(pairs)} DPO pairs")

    if rows:
        print("[long2short] SFT on the shortest correct responses")
        sft_cfg = copy.deepcopy(cfg)
        sft_cfg.sft.lr, sft_cfg.sft.max_steps = l2s.sft_lr, l2s.sft_steps
        sft_cfg.sft.eval_every = max(1, l2s.sft_steps // 4)
        run_sft(model, tokenizer, rows, data.dev, sft_cfg, out / "shortest", stage="shortest_sft")
        models["shortest"] = _save(model, tokenizer, out / "shortest" / "model")
    if pairs:
        print("[long2short] DPO: shortest correct preferred over longer ones")
        model, tokenizer = load_policy(long_model, device=cfg.run.device)
        train_dpo(model, tokenizer, pairs, cfg, out / "dpo", stage="dpo")
        models["dpo"] = _save(model, tokenizer, out / "dpo" / "model")

    if l2s.rl_iterations:
        print(f"[long2short] RL with the length penalty from the start, {l2s.rl_max_response_tokens}-token limit")
        models["rl"] = long2short_rl(cfg, data, long_model, out / "rl")

    results = {}
    for label, path in models.items():
        result = evaluate_folder(path, data.heldout, cfg)
        results[label] = {"path": str(path), "accuracy": result.accuracy,
                          "mean_response_tokens": result.mean_response_tokens, "per_level": result.per_level}
        print(f"[long2short] {label}: accuracy {result.accuracy:.3f}  mean tokens {result.mean_response_tokens:.1f}")
    summary = {"heldout_size": len(data.heldout), "models": results, "merge_weight": merge_weight,
               "merge_sweep": merge_sweep, "sft_rows": len(rows), "dpo_pairs": len(pairs)}
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    write_token_efficiency(out, results, len(data.heldout))
    return summary
