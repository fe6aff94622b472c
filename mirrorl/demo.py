"""The CPU demo: the k1.5 pipeline end to end on a tiny model that the project creates and trains.

    generated arithmetic task -> tiny Llama -> long-CoT warm-up SFT (early-stopped on dev)
    -> RL with the k1.5 loss -> continued-SFT control for the same training time
    -> long2short from the RL run (`demo.long2short`) -> report

With `task.generated=vision` (`configs/demo_vl.yaml`) the task is the generated vision tasks and the
model a tiny LLaVA (`mirrorl.models.tiny_vl`); the report adds accuracy per task, so arithmetic read
off a picture stands beside the same arithmetic given as text.

Each stage writes its result into the run folder and is skipped when that result already exists,
so running the same `mirrorl demo` command again after a crash or kill continues where it stopped
(RL from its last checkpoint); a folder holding a run with a different config is refused. Every stage uses the same functions as the `sft`, `rl` and `eval` commands.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

from mirrorl.config import Config, ConfigError, load_config, save_config
from mirrorl.eval.evaluate import evaluate, evaluate_folder
from mirrorl.eval.report import write_report
from mirrorl.long2short.run import choose_long_checkpoint, run_long2short
from mirrorl.models.loading import load_policy, load_processor
from mirrorl.models.tiny import create_tiny_model
from mirrorl.models.tiny_vl import create_tiny_vl_model
from mirrorl.rl import train_rl
from mirrorl.rollout.hf import HFEngine
from mirrorl.sft import run_sft
from mirrorl.tasks.datasets import build_datasets, save_datasets


def _stage(path: Path, compute) -> dict:
    """Return the stage result stored at `path`, computing and storing it first if missing."""
    if path.exists():
        print(f"[demo] reusing {path}")
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
    return result


def _sft_stage(cfg: Config, start: Path, examples, eval_set, heldout, out: Path, stage: str,
               max_seconds: float | None = None) -> dict:
    """Warm-up SFT (`max_seconds` None) or the continued-SFT control (time-limited, last weights kept)."""
    model, tokenizer = load_policy(start, device=cfg.run.device)
    processor = load_processor(start)
    control = max_seconds is not None
    info = run_sft(model, tokenizer, examples, eval_set, cfg, out, stage, early_stopping=not control,
                   max_seconds=max_seconds, continued=control, processor=processor)
    model.save_pretrained(out / "model", safe_serialization=True)
    (processor or tokenizer).save_pretrained(out / "model")
    engine = HFEngine.from_config(model, tokenizer, cfg)
    result = evaluate(engine, tokenizer, heldout, cfg.eval, cfg.model.chat_template, processor)
    if control:  # the control's curve ends with its final held-out accuracy, as RL's does
        info["curve"].append((info["train_seconds"], info["steps"], result.accuracy))
    return info | {"heldout_accuracy": result.accuracy, "heldout_per_level": result.per_level,
                   "heldout_per_task": result.per_task, "mean_response_tokens": result.mean_response_tokens}


def _greedy_stage(cfg: Config, models: dict[str, Path], heldout) -> dict:
    """Greedy pass@1 (overall and per level) of each model folder, reported beside a sampled evaluation."""
    greedy = dataclasses.replace(cfg.eval, temperature=0.0)
    scored = {name: evaluate_folder(folder, heldout, cfg, greedy) for name, folder in models.items()}
    return {name: {"accuracy": r.accuracy, "per_level": _by_level(r.per_level)} for name, r in scored.items()}


def _by_level(per_level: dict) -> dict[str, float]:
    return {str(k): v for k, v in per_level.items()}


def run_demo(cfg: Config) -> dict:
    """Run (or resume) every stage under `cfg.run.out_dir` and return the summary written to summary.json."""
    start_time = time.time()
    out = Path(cfg.run.out_dir)
    saved = out / "config.yaml"
    if saved.exists() and load_config(saved) != cfg:
        raise ConfigError(f"{out}: holds a demo run with a different config; rerun with the same settings "
                          "to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    data = build_datasets(cfg.task, cfg.run.seed)
    save_datasets(data, out / "data")
    per_level = Counter(row["level"] for row in data.warmup)
    print(f"[demo] {len(data.warmup)} warm-up traces (per level: "
          f"{', '.join(f'{level}: {n}' for level, n in sorted(per_level.items()))}), "
          f"{len(data.rl)} RL prompts, {len(data.heldout)} held-out, {len(data.dev)} dev")

    base = Path(cfg.model.path) if cfg.model.path else out / "base_model"
    if not cfg.model.path and not (base / "config.json").exists():
        create = create_tiny_vl_model if cfg.task.generated == "vision" else create_tiny_model
        create(base, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.num_heads, seed=cfg.run.seed)

    print("[demo] warm-up SFT (stops when dev accuracy stops improving)")
    sft = _stage(out / "sft" / "result.json", lambda: _sft_stage(
        cfg, base, data.warmup, data.dev, data.heldout, out / "sft", "sft"))
    print(f"[demo] SFT held-out accuracy {sft['heldout_accuracy']:.3f}")

    print("[demo] RL with the k1.5 loss")
    rl_cfg = copy.deepcopy(cfg)
    rl_cfg.model.path = str(out / "sft" / "model")
    rl = _stage(out / "rl" / "result.json", lambda: train_rl(rl_cfg, data, out / "rl", resume=True))
    print(f"[demo] RL held-out accuracy {rl['heldout_accuracy']:.3f} after {rl['train_seconds']:.0f} s")

    control = {}
    if cfg.demo.control:
        print(f"[demo] control: continued warm-up SFT for RL's {rl['train_seconds']:.0f} training seconds")
        # about as many held-out evaluations as RL made, spread over the same training time
        control_cfg = copy.deepcopy(cfg)
        seconds_per_step = sft["train_seconds"] / max(1, sft["steps"])
        evals = max(1, len(rl["curve"]) - 1)
        control_cfg.sft.eval_every = max(1, int(rl["train_seconds"] / seconds_per_step / evals))
        control = _stage(out / "sft_control" / "result.json", lambda: _sft_stage(
            control_cfg, out / "sft" / "model", data.warmup, data.heldout, data.heldout, out / "sft_control",
            "sft_control", rl["train_seconds"]))
        print(f"[demo] continued-SFT held-out accuracy {control['heldout_accuracy']:.3f}")

    greedy = {}
    if cfg.eval.temperature > 0:  # sampled pass@1 is the headline (as the report's); greedy is shown beside it
        models = {"sft": out / "sft" / "model", "rl": out / "rl" / "final"} | (
            {"sft_continued": out / "sft_control" / "model"} if control else {})
        greedy = _stage(out / "greedy.json", lambda: _greedy_stage(cfg, models, data.heldout))

    long2short = {}
    if cfg.demo.long2short and cfg.task.generated == "arithmetic" and not cfg.task.data:
        print("[demo] long2short from the RL run")
        long2short = _stage(out / "long2short" / "eval.json", lambda: run_long2short(
            cfg, data, choose_long_checkpoint(out / "rl", cfg.long2short.checkpoint_tolerance), None,
            out / "long2short", base_model=out / "sft" / "model"))
    summary = {
        "sft_accuracy": sft["heldout_accuracy"],
        "rl_accuracy": rl["heldout_accuracy"],
        "sft_continued_accuracy": control.get("heldout_accuracy"),
        "rl_gain": rl["heldout_accuracy"] - sft["heldout_accuracy"],
        "rl_gain_over_control": (rl["heldout_accuracy"] - control["heldout_accuracy"]) if control else None,
        **{f"{name}_greedy_accuracy": g["accuracy"] for name, g in greedy.items()},
        **({"greedy_per_level": {name: g["per_level"] for name, g in greedy.items()}} if greedy else {}),
        "heldout_size": len(data.heldout),
        "decoding": "greedy" if cfg.eval.temperature <= 0 else f"sampled (T={cfg.eval.temperature}, n={cfg.eval.samples})",
        "mean_response_tokens": rl["mean_response_tokens"],
        "sft_mean_response_tokens": sft["mean_response_tokens"],
        "sft_per_level": _by_level(sft["heldout_per_level"]),
        "rl_per_level": _by_level(rl["heldout_per_level"]),
        "sft_continued_per_level": _by_level(control.get("heldout_per_level", {})),
        "sft_per_task": sft.get("heldout_per_task", {}),
        "rl_per_task": rl.get("heldout_per_task", {}),
        "warmup_traces": len(data.warmup),
        "sft_steps": sft["steps"],
        "sft_train_seconds": sft["train_seconds"],
        "rl_iterations": rl["iterations"],
        "rl_train_seconds": rl["train_seconds"],
        "rl_curve": rl["curve"],
        "sft_continued_curve": control.get("curve", []),
        "rl_samples": rl["samples"],
        "long2short": {label: {k: row[k] for k in ("accuracy", "mean_response_tokens")}
                       for label, row in long2short.get("models", {}).items()},
        **({"long2short_merge_weight": long2short["merge_weight"]} if "merge_weight" in long2short else {}),
        "wall_seconds": time.time() - start_time,
    }
    write_report(out, summary)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=2))
    for task in summary["sft_per_task"]:  # vision: arithmetic as a picture (read) beside the same as text (read_text)
        print(f"[demo] {task:>10}: SFT {summary['sft_per_task'][task]:.3f} -> RL {summary['rl_per_task'][task]:.3f}")
    print(f"[demo] report: {out / 'report.md'}")
    return summary
