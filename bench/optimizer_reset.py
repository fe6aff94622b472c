"""RL with and without resetting the optimizer state every iteration, from the same warm-up model.

    .venv/bin/python bench/optimizer_reset.py runs/demo [--iterations 15] [overrides ...]

The report resets the optimizer at each iteration (section 2.3.2). With one Adam step per iteration
that turns every update into a sign step (m / sqrt(v) = g / |g| on the first step); with several
steps it restarts the moment estimates. This runs both settings with the demo's config and data
(only `rl.reset_optimizer` differs), then prints reward and held-out accuracy side by side.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import transformers

from mirrorl.config import load_config
from mirrorl.rl import train_rl
from mirrorl.tasks.datasets import load_run_datasets
from mirrorl.trainer.precision import set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished demo run (uses its sft/model and data/)")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    base = load_config(args.run_dir / "config.yaml", args.overrides + [f"rl.iterations={args.iterations}",
                                                                        f"rl.eval_every={args.iterations}"])
    set_threads(base.run.threads)
    data = load_run_datasets(args.run_dir / "data")
    rows = {}
    for reset in (False, True):
        cfg = copy.deepcopy(base)
        cfg.rl.reset_optimizer = reset
        cfg.model.path = str(args.run_dir / "sft" / "model")
        out = args.run_dir / "bench_optimizer_reset" / f"reset_{str(reset).lower()}"
        rows[reset] = train_rl(cfg, data, out)
    print(f"{'reset_optimizer':>16} {'held-out acc':>13} {'train s':>8}")
    for reset, summary in rows.items():
        print(f"{str(reset):>16} {summary['heldout_accuracy']:>13.3f} {summary['train_seconds']:>8.0f}")


if __name__ == "__main__":
    main()
