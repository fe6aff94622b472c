"""The k1.5 techniques side by side: RL variants from the same warm-up model, seeds and iteration count.

    .venv/bin/python bench/ablations.py runs/demo [--iterations 12] [--only k15 grpo ...] [overrides ...]

Every variant starts from `RUN_DIR/sft/model` with the run's config and data and the same seed; only
the named overrides differ (see VARIANTS). With the same number of iterations and prompts per
iteration, the variants get about the same rollout budget; the table prints the rollout tokens each
actually used, so a variant that generated more is visible. Prints one table (held-out accuracy, mean
response tokens, seconds per iteration, rollout tokens and tokens/s) and saves
`RUN_DIR/bench_ablations/ablations.png`. Reruns reuse finished variants (delete their folder to redo).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import transformers  # noqa: E402

from mirrorl.config import load_config  # noqa: E402
from mirrorl.rl import train_rl  # noqa: E402
from mirrorl.tasks.datasets import load_run_datasets  # noqa: E402
from mirrorl.trainer.precision import set_threads  # noqa: E402

VARIANTS = {  # name -> overrides on top of the run's config (report sections in brackets)
    "k15": [],                                                            # eq. 3 (the baseline row)
    "grpo": ["rl.loss=grpo"],
    "rloo": ["rl.loss=rloo"],
    "rest": ["rl.loss=rest"],                                             # 3.5, no negative gradients
    "length_penalty": ["rl.length_penalty_weight=0.5"],                   # 2.3.3, on from the start
    "prioritized": ["rl.sampler=prioritized"],                            # 2.3.4
    "curriculum": ["rl.sampler=curriculum", "rl.curriculum_hard_levels=[3,4]"],  # 2.3.4, switch at half
    "partial_rollouts": ["rl.partial_rollout_tokens=64"],                 # 2.6.2
}


def _row(out: Path, iterations: int) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["step"] > 0]
    summary = json.loads((out / "rl_summary.json").read_text())
    tokens = sum(r.get("rollout_tokens", 0) for r in steps)
    return {"accuracy": summary["heldout_accuracy"], "response_tokens": summary["mean_response_tokens"],
            "s_per_iteration": summary["train_seconds"] / iterations, "rollout_tokens": tokens,
            "tokens_per_s": tokens / sum(r["time/rollout_s"] for r in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished demo run (uses its sft/model, config and data/)")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants only")
    parser.add_argument("overrides", nargs="*", help="section.key=value applied to every variant")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    n = args.iterations
    common = args.overrides + [f"rl.iterations={n}", f"rl.eval_every={n}", f"rl.save_every={n}",
                               f"rl.curriculum_switch_iteration={n // 2}",
                               f"model.path={args.run_dir / 'sft' / 'model'}"]
    base = load_config(args.run_dir / "config.yaml", common)
    set_threads(base.run.threads)
    data = load_run_datasets(args.run_dir / "data")
    rows = {}
    for name in args.only or VARIANTS:
        out = args.run_dir / "bench_ablations" / name
        if not (out / "rl_summary.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            cfg = load_config(args.run_dir / "config.yaml", common + VARIANTS[name])
            print(f"[ablations] {name}: {' '.join(VARIANTS[name]) or '(baseline)'}")
            train_rl(cfg, data, out)
        rows[name] = _row(out, n)
    print(f"\n{n} iterations from {args.run_dir / 'sft' / 'model'}; held-out pass@1 is greedy on "
          f"{len(data.heldout)} prompts (standard error about 0.025)")
    print(f"{'variant':>17} {'held-out acc':>12} {'resp. tokens':>12} {'s/iter':>7} {'rollout tokens':>14} {'tok/s':>6}")
    for name, r in rows.items():
        print(f"{name:>17} {r['accuracy']:>12.3f} {r['response_tokens']:>12.1f} {r['s_per_iteration']:>7.1f} "
              f"{r['rollout_tokens']:>14,} {r['tokens_per_s']:>6.0f}")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(list(rows), [r["accuracy"] for r in rows.values()], color="tab:blue")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"RL variants, {n} iterations from the same warm-up model")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(args.run_dir / "bench_ablations" / "ablations.png", dpi=110)
    print(f"plot: {args.run_dir / 'bench_ablations' / 'ablations.png'}")


if __name__ == "__main__":
    main()
