"""Do the model's checks catch its own wrong steps? An audit of sampled chains of thought, step by step.

    .venv/bin/python bench/reflection_audit.py runs/demo [--samples 2] [--prompts 400]

For each model of a demo run that exists (warm-up `sft/model`, `rl/final`, control `sft_control/model`),
sample `--samples` responses per held-out prompt at temperature 1 (the seed fixed, the same for every
model), score them, and count what their steps do (`mirrorl.tasks.arithmetic.audit_steps`): how many
are wrong, how many are checked, and how often a check marks a wrong step ``no`` (caught) or a right
one (false alarm). The warm-up traces catch every slip (report section 2.2: reflection); this shows
whether the model learnt the habit of checking or the skill.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch
import transformers

from mirrorl.config import load_config
from mirrorl.eval.evaluate import encode_problem
from mirrorl.models.loading import load_policy
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.arithmetic import audit_steps
from mirrorl.tasks.datasets import load_run_datasets
from mirrorl.trainer.precision import set_threads

MODELS = {"warm-up SFT": "sft/model", "RL": "rl/final", "control": "sft_control/model"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a demo run on the generated arithmetic task")
    parser.add_argument("--samples", type=int, default=2, help="responses per held-out prompt")
    parser.add_argument("--prompts", type=int, default=400, help="held-out prompts (the first N)")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    cfg = load_config(args.run_dir / "config.yaml")
    set_threads(cfg.run.threads)
    problems = load_run_datasets(args.run_dir / "data").heldout[:args.prompts]
    print(f"{'model':<12} {'pass@1':>7} {'wrong steps':>12} {'checked':>8} {'caught':>7} {'false alarms':>13} "
          f"{'unchecked wrong':>16} {'check arith. wrong':>19}")
    for name, sub in MODELS.items():
        if not (args.run_dir / sub).is_dir():
            continue
        model, tokenizer = load_policy(args.run_dir / sub)
        engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id, batch_size=cfg.eval.batch_size)
        prompts = [encode_problem(tokenizer, p)[0] for p in problems for _ in range(args.samples)]
        torch.manual_seed(cfg.run.seed)
        segments = engine.generate(prompts, SamplingParams(1.0, 1.0, cfg.eval.max_response_tokens))
        counts, correct = Counter(), 0
        for i, segment in enumerate(segments):
            text = tokenizer.decode(segment.token_ids, skip_special_tokens=True)
            correct += score(problems[i // args.samples], text).correct
            counts.update(audit_steps(text))
        right_checked = counts["checked"] - counts["wrong_checked"]
        unchecked = counts["steps"] - counts["checked"]
        print(f"{name:<12} {correct / len(segments):>7.3f} {counts['wrong'] / counts['steps']:>12.3f} "
              f"{counts['checked'] / counts['steps']:>8.3f} {counts['wrong_caught'] / max(1, counts['wrong_checked']):>7.3f} "
              f"{counts['false_alarms'] / max(1, right_checked):>13.3f} "
              f"{counts['unchecked_wrong'] / max(1, unchecked):>16.3f} "
              f"{counts['check_arithmetic_wrong'] / max(1, counts['checked']):>19.3f}", flush=True)


if __name__ == "__main__":
    main()
