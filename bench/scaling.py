"""How seconds per RL iteration grow with responses per iteration and with the maximum response length.

    .venv/bin/python bench/scaling.py runs/demo [--iterations 3] [--responses 64 256 1024] [--lengths 128 512 2048]

Every point is a fresh `train_rl` run from `RUN_DIR/sft/model` (the demo's warm-up model) with the demo
recipe, 8 responses per prompt and one optimizer step per iteration; the first iteration is a warm-up and
is not counted. The responses sweep uses at most 128 response tokens; the length sweep uses 256 responses
with partial rollouts on (`rl.partial_rollout_tokens` = 128 tokens per response per iteration, report
section 2.6.2), so a longer limit costs more iterations per long response rather than longer
iterations. Prints seconds per iteration (and per phase), rollout tokens/s and mean response tokens,
and writes `bench/results/scaling.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

K = 8


def run_point(run_dir: Path, config: Path, iterations: int, overrides: list[str]) -> dict:
    """One RL run; per-iteration means over iterations 2.. of seconds (total and per phase) and tokens."""
    from mirrorl.config import load_config
    from mirrorl.rl import train_rl
    from mirrorl.tasks.datasets import load_run_datasets

    cfg = load_config(config, overrides + [f"model.path={run_dir / 'sft' / 'model'}", f"rl.iterations={iterations}",
                                           f"rl.samples_per_prompt={K}", "rl.minibatches=1", "rl.epochs=1",
                                           f"rl.eval_every={10 ** 6}", f"rl.save_every={10 ** 6}"])
    data = load_run_datasets(run_dir / "data")
    data.heldout = data.heldout[:8]  # evaluation is not timed; keep it short
    with tempfile.TemporaryDirectory() as tmp:
        train_rl(cfg, data, Path(tmp) / "run")
        records = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if r["step"] > 1]
    mean = lambda key: sum(r.get(key, 0.0) for r in timed) / len(timed)  # noqa: E731
    phases = {p: mean(f"time/{p}_s") for p in ("rollout", "reward", "update")}
    seconds = sum(mean(k) for k in timed[0] if k.startswith("time/"))
    return {"s_per_iteration": seconds, **{f"{p}_s": v for p, v in phases.items()},
            "rollout_tokens_per_s": mean("rollout_tokens") / phases["rollout"],
            "response_tokens": mean("response_tokens")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished demo run (its sft/model and data/)")
    parser.add_argument("--config", type=Path, default=Path(__file__).parent.parent / "configs" / "demo.yaml")
    parser.add_argument("--iterations", type=int, default=3, help="iterations per point (the first is not counted)")
    parser.add_argument("--responses", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    args = parser.parse_args()
    import transformers

    from mirrorl.trainer.precision import set_threads
    transformers.utils.logging.disable_progress_bar()
    set_threads(0)
    points = {}
    for n in args.responses:
        points[f"responses={n}"] = run_point(args.run_dir, args.config, args.iterations, [
            f"rl.prompts_per_iteration={n // K}", "rl.max_response_tokens=128"])
    for length in args.lengths:
        points[f"max_tokens={length}"] = run_point(args.run_dir, args.config, args.iterations, [
            "rl.prompts_per_iteration=32", f"rl.max_response_tokens={length}", "rl.partial_rollout_tokens=128",
            f"eval.max_response_tokens={length}"])
    cols = ["s_per_iteration", "rollout_s", "reward_s", "update_s", "rollout_tokens_per_s", "response_tokens"]
    print(f"{'point':>16} " + " ".join(f"{c:>20}" for c in cols))
    for name, row in points.items():
        print(f"{name:>16} " + " ".join(f"{row[c]:>20.2f}" for c in cols))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(points, indent=2))


if __name__ == "__main__":
    main()
