"""Long2short (report section 2.4): turn a long-CoT model into shorter-answering ones, and compare them.

    long-CoT model --merge with the short model-----------------------------> merge/model
                   --n samples per prompt, judged--+--shortest correct, SFT--> shortest/model
                                                   +--DPO pairs, DPO--------> dpo/model
    then every model answers the same held-out prompts -> eval.json, token_efficiency.{png,md}

Shortest rejection sampling and DPO share one set of samples from the long model (the report
samples the long model for both). Not here: long2short RL (RL with the length penalty from the start
and a smaller response budget), which needs the length-penalty reward; nor the choice of the
long-CoT checkpoint by its accuracy/length trade-off: the caller passes the model folder.
"""

from __future__ import annotations

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
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.sft import run_sft
from mirrorl.tasks.datasets import Datasets


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def run_long2short(cfg: Config, data: Datasets, long_model: str | Path, short_model: str | Path,
                   out_dir: str | Path, scorer=score) -> dict:
    """Run merge, shortest rejection sampling + SFT and DPO from `long_model`, then evaluate them all.

    Args:
        data: the run's prompt sets: samples come from the first `cfg.long2short.prompts` RL prompts,
            SFT early-stops on `data.dev`, and every model is evaluated on `data.heldout`.
        long_model: the long-CoT model folder (e.g. a demo run's `rl/final`).
        short_model: the merge partner (e.g. the warm-up SFT model, `sft/model`), same architecture.
        out_dir: receives merge/, shortest/ and dpo/ (shortest.jsonl or pairs.jsonl, model/, metrics.jsonl,
            tb/), eval.json and token_efficiency.{png,md}.
        scorer: `scorer(problem, text) -> Verdict` that judges the samples (default: the task's reward).
    Returns: {"heldout_size", "models": label -> {"path", "accuracy", "mean_response_tokens", "per_level"},
        "sft_rows", "dpo_pairs"}; a method whose data came out empty (no correct sample) is left out.
    Raises: MergeError when the two models differ in architecture; ModelLoadError for a bad folder.
    """
    out = Path(out_dir)
    l2s = cfg.long2short
    models = {"long": Path(long_model), "short": Path(short_model)}
    print(f"[long2short] merge: {1 - l2s.merge_weight:g} * long + {l2s.merge_weight:g} * short")
    models["merge"] = merge_models(long_model, short_model, out / "merge", weight=l2s.merge_weight)

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
        run_sft(model, tokenizer, rows, data.dev, cfg, out / "shortest", stage="shortest_sft")
        models["shortest"] = _save(model, tokenizer, out / "shortest" / "model")
    if pairs:
        print("[long2short] DPO: shortest correct preferred over longer ones")
        model, tokenizer = load_policy(long_model, device=cfg.run.device)
        train_dpo(model, tokenizer, pairs, cfg, out / "dpo", stage="dpo")
        models["dpo"] = _save(model, tokenizer, out / "dpo" / "model")

    results = {}
    for label, path in models.items():
        result = evaluate_folder(path, data.heldout, cfg)
        results[label] = {"path": str(path), "accuracy": result.accuracy,
                          "mean_response_tokens": result.mean_response_tokens, "per_level": result.per_level}
        print(f"[long2short] {label}: accuracy {result.accuracy:.3f}  mean tokens {result.mean_response_tokens:.1f}")
    summary = {"heldout_size": len(data.heldout), "models": results, "sft_rows": len(rows), "dpo_pairs": len(pairs)}
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    write_token_efficiency(out, results, len(data.heldout))
    return summary
