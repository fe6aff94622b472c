"""Does one step along the sampled policy gradient raise the expected reward? A check of the update's geometry.

    .venv/bin/python bench/policy_gradient_step.py runs/demo [--prompts 64] [--steps 0,0.005,0.02,0.05]

From a demo run's warm-up model: sample k = 8 responses to each of `--prompts` RL prompts, take the
policy gradient with the group-mean baseline (the k1.5 loss's gradient at theta = theta_i, report
eq. 3), then move the weights by each step length (L2 norm of the whole update) along two directions
and measure the mean reward of 16 fresh samples per prompt (the same seed for every step):

- `sgd`: the gradient itself, normalised, i.e. what a plain (clipped) SGD step does;
- `adam`: its sign, normalised, i.e. what Adam's first step does (m / sqrt(v) = g / |g|).

A true ascent direction raises the reward for small steps. A direction whose reward falls from the
smallest step on is dominated by sampling noise in the parameters where the estimate is largest.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
import transformers

from mirrorl.algorithms.losses import group_mean_advantages
from mirrorl.eval.evaluate import encode_problem
from mirrorl.models.loading import load_policy
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.datasets import load_run_datasets
from mirrorl.trainer.logprobs import pad_batch, token_logprobs
from mirrorl.trainer.precision import set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a demo run (uses its sft/model and data/)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--steps", default="0,0.005,0.02,0.05", help="step lengths (L2 norm of the update)")
    parser.add_argument("--max-tokens", type=int, default=224)
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    set_threads(0)
    model, tokenizer = load_policy(args.run_dir / "sft" / "model")
    problems = random.Random(0).sample(load_run_datasets(args.run_dir / "data").rl, args.prompts)
    prompts = [encode_problem(tokenizer, p)[0] for p in problems]
    engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)

    def sample(k: int, seed: int):
        torch.manual_seed(seed)
        segments = engine.generate([p for p in prompts for _ in range(k)], SamplingParams(1.0, 1.0, args.max_tokens))
        rewards = [float(score(problems[i // k], tokenizer.decode(s.token_ids, skip_special_tokens=True)).correct)
                   for i, s in enumerate(segments)]
        return segments, torch.tensor(rewards)

    segments, rewards = sample(8, 1)
    advantages = group_mean_advantages(rewards, 8)
    model.train()
    model.zero_grad()
    for start in range(0, len(segments), 64):
        batch = segments[start:start + 64]
        ids, attn, mask = pad_batch([s.prompt_ids for s in batch], [s.token_ids for s in batch], tokenizer.pad_token_id)
        logprobs, _ = token_logprobs(model, ids, attn, "fp32")
        (-(advantages[start:start + 64] * (logprobs * mask).sum(1)).sum() / len(segments)).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    largest = sorted(grads, key=lambda n: grads[n].norm().item(), reverse=True)[:3]
    print(f"{len(segments)} samples, reward {rewards.mean():.3f}; largest gradient blocks: {', '.join(largest)}")
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    print(f"{'step':>8} {'sgd':>8} {'adam':>8}")
    for step in [float(x) for x in args.steps.split(",")]:
        row = []
        for name in ("sgd", "adam"):
            direction = grads if name == "sgd" else {n: g.sign() for n, g in grads.items()}
            norm = torch.sqrt(sum((d ** 2).sum() for d in direction.values()))
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(base[n] - step * direction[n] / norm if n in direction else base[n])
            row.append(sample(16, 2)[1].mean().item())
        print(f"{step:>8g} {row[0]:>8.3f} {row[1]:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
