"""The run report: `summary.json`, `report.md` and PNG plots a person can read at a glance."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mirrorl.metrics import read_metrics  # noqa: E402


def _plot(path: Path, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list, list]]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_report(run_dir: str | Path, summary: dict) -> Path:
    """Write summary.json, plots/*.png and report.md for a demo run folder; returns report.md's path.

    Reads `rl/metrics.jsonl` (reward, held-out accuracy and response length per iteration) and the
    accuracy-vs-training-seconds curves of RL and of the continued-SFT control from `summary`; with a
    `summary["long2short"]` (label -> accuracy, mean_response_tokens) it adds the token-efficiency table
    and the figure in `long2short/`.
    """
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    rl = [r for r in read_metrics(run_dir / "rl", "rl") if "reward" in r]
    images = []
    if rl:
        steps = [r["step"] for r in rl]
        images.append(_plot(plots / "reward.png", "RL: mean reward of the rollouts", "iteration", "reward",
                            {"reward": (steps, [r["reward"] for r in rl])}))
        images.append(_plot(plots / "response_length.png", "RL: mean response length", "iteration", "tokens",
                            {"rollouts": (steps, [r["response_tokens"] for r in rl])}))
    evals = [r for r in read_metrics(run_dir / "rl", "rl") if "heldout/accuracy" in r]
    if evals:
        images.append(_plot(plots / "heldout_accuracy.png", "RL: held-out accuracy (pass@1)", "iteration",
                            "accuracy", {"held-out": ([r["step"] for r in evals],
                                                      [r["heldout/accuracy"] for r in evals])}))
    curves = {name: ([c[0] for c in summary[key]], [c[2] for c in summary[key]])
              for name, key in (("RL (k1.5 loss)", "rl_curve"), ("continued SFT (control)", "sft_continued_curve"))
              if summary.get(key)}
    if curves:
        images.append(_plot(plots / "accuracy_vs_time.png", "Held-out accuracy against training time",
                            "training seconds after warm-up", "accuracy", curves))
    levels = sorted(summary.get("sft_per_level", {}), key=int)
    rows = "\n".join(f"| {lv} | {summary['sft_per_level'][lv]:.3f} | {summary.get('sft_continued_per_level', {}).get(lv, float('nan')):.3f} "
                     f"| {summary['rl_per_level'][lv]:.3f} |" for lv in levels)
    keys = ("sft_accuracy", "sft_continued_accuracy", "rl_accuracy", "sft_greedy_accuracy",
            "sft_continued_greedy_accuracy", "rl_greedy_accuracy", "heldout_size", "mean_response_tokens",
            "sft_mean_response_tokens", "rl_iterations", "rl_train_seconds", "sft_train_seconds", "wall_seconds")
    table = "\n".join(f"| {k} | {summary[k]:.4g} |" if isinstance(summary.get(k), float) else f"| {k} | {summary.get(k)} |"
                      for k in keys if k in summary)
    tasks = sorted(summary.get("sft_per_task", {}))
    task_rows = "\n".join(f"| {t} | {summary['sft_per_task'][t]:.3f} | {summary['rl_per_task'].get(t, float('nan')):.3f} |"
                          for t in tasks)
    task_table = f"""
## Accuracy per task

`read` is arithmetic rendered as a picture, `read_text` the same problems given as text.

| task | after warm-up SFT | after RL |
|---|---|---|
{task_rows}
""" if tasks else ""
    merge_weight = (f"; `merge` weighs the short model {summary['long2short_merge_weight']:g}"
                    if "long2short_merge_weight" in summary else "")
    long2short = f"""
## Long2short: accuracy against response length

Every model answers the same held-out prompts (`long2short/`, report section 2.4; `long` is the RL
checkpoint long2short starts from{merge_weight}).

{token_efficiency_table(summary["long2short"])}

![token efficiency](long2short/token_efficiency.png)
""" if summary.get("long2short") else ""
    samples = "\n\n".join(f"prompt `{s['prompt'].strip()}` (gold {s['gold']}, {'correct' if s['correct'] else 'wrong'}):\n"
                          f"```\n{s['response']}\n```" for s in summary.get("rl_samples", [])[:4])
    text = f"""# mirrorl run report

Held-out accuracy is pass@1 with {summary.get('decoding', 'greedy')} decoding on {summary.get('heldout_size')} prompts
that no training stage saw. The control continues warm-up SFT on its own data for the same training
wall time that RL took.

| metric | value |
|---|---|
{table}

## Accuracy per difficulty level

| level | after warm-up SFT | continued SFT | after RL |
|---|---|---|---|
{rows}
{task_table}{long2short}
## Plots

{chr(10).join(f'![{name}](plots/{name})' for name in images)}

## Sample responses after RL

{samples}
"""
    path = run_dir / "report.md"
    path.write_text(text)
    return path


def write_token_efficiency(out_dir: str | Path, models: dict[str, dict], heldout_size: int) -> tuple[Path, Path]:
    """The report's token-efficiency figure (Fig. 7): accuracy against mean response tokens, one point per model.

    Args:
        out_dir: folder that receives `token_efficiency.png` and `token_efficiency.md`.
        models: label -> {"accuracy": pass@1 in [0, 1], "mean_response_tokens": tokens}, all measured
            on the same `heldout_size` held-out prompts.
    Returns: (png path, markdown path). The table lists the models in the given order; the first is
        the reference for the "tokens vs first" column.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, row in models.items():
        ax.scatter(row["mean_response_tokens"], row["accuracy"])
        ax.annotate(label, (row["mean_response_tokens"], row["accuracy"]), textcoords="offset points", xytext=(5, 5))
    ax.set(title=f"Token efficiency ({heldout_size} held-out prompts)", xlabel="mean response tokens",
           ylabel="accuracy (pass@1)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out_dir / "token_efficiency.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    md = out_dir / "token_efficiency.md"
    md.write_text(f"# Token efficiency on {heldout_size} held-out prompts\n\n" + token_efficiency_table(models)
                  + "\n\n![token efficiency](token_efficiency.png)\n")
    return png, md


def token_efficiency_table(models: dict[str, dict]) -> str:
    """Markdown table of `models` (label -> {"accuracy", "mean_response_tokens"}) in the given order, with
    each model's tokens relative to the first one's."""
    first = next(iter(models.values()))["mean_response_tokens"]
    lines = ["| model | accuracy (pass@1) | mean response tokens | tokens vs first |", "|---|---|---|---|"]
    for label, row in models.items():
        change = f"{row['mean_response_tokens'] / first - 1:+.0%}" if first else "n/a"
        lines.append(f"| {label} | {row['accuracy']:.3f} | {row['mean_response_tokens']:.1f} | {change} |")
    return "\n".join(lines)
