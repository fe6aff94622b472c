"""The curation report: `report.md`, `report.json` and `pass_rate_histogram.png` (pass rates of every measured
prompt, kept and dropped, beside the kept prompts' subjects and levels)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def summarize(records: list[dict], samples: int) -> dict:
    """Counts for the report from one record per input prompt (``id``, ``reason`` = ``kept`` or why it was dropped,
    ``pass_rate`` or None, ``tags``).

    Returns: ``{"prompts", "kept", "dropped": {reason: n}, "pass_rate_histogram": {"k/n": {"kept": a, "dropped": b}},
    "mean_pass_rate_kept", "mean_pass_rate_by_level": {level: mean over measured prompts},
    "kept_by": {tag: {value: n}}, "input_by": {tag: {value: n}}}``.
    """
    kept = [r for r in records if r["reason"] == "kept"]
    histogram = {f"{k}/{samples}": {"kept": 0, "dropped": 0} for k in range(samples + 1)}
    for r in records:
        if r["pass_rate"] is not None:
            histogram[f"{round(r['pass_rate'] * samples)}/{samples}"]["kept" if r["reason"] == "kept" else "dropped"] += 1
    rates = [r["pass_rate"] for r in kept if r["pass_rate"] is not None]
    by_level: dict[str, list[float]] = {}
    for r in records:
        if r["pass_rate"] is not None:
            by_level.setdefault(str(r["tags"]["level"]), []).append(r["pass_rate"])
    by = {name: lambda rows, name=name: dict(sorted(Counter(str(r["tags"][name]) for r in rows).items()))
          for name in ("subject", "level", "difficulty", "domain")}
    return {"prompts": len(records), "kept": len(kept),
            "dropped": dict(Counter(r["reason"] for r in records if r["reason"] != "kept").most_common()),
            "pass_rate_histogram": histogram, "mean_pass_rate_kept": sum(rates) / len(rates) if rates else None,
            "mean_pass_rate_by_level": {k: sum(v) / len(v) for k, v in sorted(by_level.items())},
            "kept_by": {name: f(kept) for name, f in by.items()}, "input_by": {name: f(records) for name, f in by.items()}}


def write_report(out: Path, summary: dict, settings: dict, seconds: dict[str, float], sampled: dict[str, int],
                 examples: list[dict]) -> Path:
    """Write report.json, report.md and pass_rate_histogram.png into `out`; return the markdown's path.

    Args:
        summary: from `summarize`.
        settings: the measurement settings (model, samples, temperature, thresholds).
        seconds: wall seconds per stage in this run.
        sampled: prompts sampled per stage in this run (the others were read back from an earlier run).
        examples: a few dropped rows ``{"id", "reason", "pass_rate", "prompt"}`` to show.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "report.json").write_text(json.dumps({"summary": summary, "settings": settings, "seconds": seconds,
                                                 "sampled": sampled, "dropped_examples": examples}, indent=2))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = list(summary["pass_rate_histogram"])
    kept = [summary["pass_rate_histogram"][k]["kept"] for k in labels]
    dropped = [summary["pass_rate_histogram"][k]["dropped"] for k in labels]
    left.bar(labels, kept, label="kept", color="tab:blue")
    left.bar(labels, dropped, bottom=kept, label="dropped", color="tab:gray")
    left.set(xlabel=f"pass rate (correct of {settings['samples']} samples at T={settings['temperature']:g})",
             ylabel="prompts", title="difficulty of measured prompts")
    left.tick_params(axis="x", labelrotation=45)
    left.legend()
    tag = "subject" if len(summary["input_by"]["subject"]) > 1 else "level"  # one subject: show the levels
    counts = summary["kept_by"][tag]
    right.barh([str(k) for k in counts], list(counts.values()), color="tab:green")
    right.set(xlabel="kept prompts", ylabel=tag, title=f"kept prompts by {tag}")
    fig.tight_layout()
    fig.savefig(out / "pass_rate_histogram.png", dpi=120)
    plt.close(fig)

    lines = ["# Curated prompt set", "",
             f"{summary['prompts']} prompts in, **{summary['kept']} kept**; model `{settings['model']}`, "
             f"{settings['samples']} samples per prompt at temperature {settings['temperature']:g}, dropped above "
             f"pass rate {settings['max_pass_rate']:g}; answer-only guesses: {settings['guess_samples']} "
             f"(model `{settings['guess_model']}`).", "",
             "## Dropped", ""]
    lines += _table(("reason", "prompts"), list(summary["dropped"].items()) or [("(none)", 0)])
    lines += ["", "## Pass rates", "", "![pass rates](pass_rate_histogram.png)", ""]
    lines += _table(("pass rate", "kept", "dropped"),
                    [(k, v["kept"], v["dropped"]) for k, v in summary["pass_rate_histogram"].items()])
    mean = summary["mean_pass_rate_kept"]
    lines += ["", f"Mean pass rate of the kept prompts: {'-' if mean is None else f'{mean:.3f}'}.", ""]
    lines += _table(("level", "mean pass rate (all measured prompts)"),
                    [(k, f"{v:.3f}") for k, v in summary["mean_pass_rate_by_level"].items()])
    lines += ["", "## Tags (input -> kept)", ""]
    for name in ("domain", "subject", "level", "difficulty"):
        values = summary["input_by"][name]
        lines += _table((name, "input", "kept"), [(v, n, summary["kept_by"][name].get(v, 0)) for v, n in values.items()])
        lines.append("")
    lines += ["## Time (this run)", ""] + _table(("stage", "prompts sampled", "seconds"),
                                                  [(k, sampled[k], f"{v:.1f}") for k, v in seconds.items()])
    if examples:
        lines += ["", "## Examples of dropped prompts", ""]
        lines += _table(("id", "reason", "pass rate", "prompt"),
                        [(e["id"], e["reason"], "-" if e["pass_rate"] is None else f"{e['pass_rate']:.1f}",
                          e["prompt"][:80].replace("\n", " ").replace("|", "\\|")) for e in examples])
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
