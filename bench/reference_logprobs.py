"""The RL update with the reference log-probs from a trainer forward pass or from the rollout engine.

    .venv/bin/python bench/reference_logprobs.py runs/demo [--prompts 32] [--repeats 3]

From a demo run's warm-up model: sample k = 8 responses to each of `--prompts` RL prompts with the HF
engine (which returns each sampled token's log-prob), then time `mirrorl.rl.policy_update` with the demo's
RL settings (AdamW, two minibatch steps) under `rl.reference_logprobs=trainer` and `=engine`, alternating
A B A B (after an untimed round) from the same starting weights and a fresh optimizer. Prints the median
seconds of each, their ratio, and how far apart the two updates leave the weights (largest absolute
difference; in fp32 the engine's log-probs equal the trainer's to about 1e-7 nats, but Adam's steps on
parameters whose gradient is near zero can still differ by up to the learning rate).
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from pathlib import Path

import torch
import transformers

from mirrorl.algorithms.losses import group_mean_advantages
from mirrorl.config import load_config
from mirrorl.eval.evaluate import encode_problem
from mirrorl.models.loading import load_policy
from mirrorl.rewards import score
from mirrorl.rl import policy_update
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.rollout.replay_buffer import Trajectory
from mirrorl.tasks.datasets import load_run_datasets
from mirrorl.trainer.precision import set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a demo run (uses its sft/model, data/ and config.yaml)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    set_threads(0)
    cfgs = {source: load_config(args.run_dir / "config.yaml",
                                ["rollout.logprob_parity=false", f"rl.reference_logprobs={source}"])
            for source in ("trainer", "engine")}
    cfg = cfgs["trainer"]
    model, tokenizer = load_policy(args.run_dir / "sft" / "model")
    problems = random.Random(0).sample(load_run_datasets(args.run_dir / "data").rl, args.prompts)
    k = cfg.rl.samples_per_prompt
    prompts = [encode_problem(tokenizer, p)[0] for p in problems for _ in range(k)]
    torch.manual_seed(0)
    engine = HFEngine.from_config(model, tokenizer, cfg)
    segments = engine.generate(prompts, SamplingParams(1.0, 1.0, cfg.rl.max_response_tokens, logprobs=True))
    batch = [Trajectory(s.prompt_ids, s.token_ids, [0] * len(s.token_ids), s.finish_reason,
                        float(score(problems[i // k], tokenizer.decode(s.token_ids, skip_special_tokens=True)).correct),
                        token_logprobs=s.logprobs) for i, s in enumerate(segments)]
    advantages = group_mean_advantages(torch.tensor([t.reward for t in batch]), k)
    tokens = sum(len(t.response_ids) for t in batch)
    print(f"{len(batch)} responses, {tokens} response tokens, reward {sum(t.reward for t in batch) / len(batch):.3f}")
    start = copy.deepcopy(model.state_dict())
    seconds, weights = {source: [] for source in cfgs}, {}
    for repeat in range(args.repeats + 1):  # the first round warms up allocations and is not timed
        for source, run_cfg in cfgs.items():
            model.load_state_dict(start)
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.rl.lr, weight_decay=cfg.rl.weight_decay)
            began = time.perf_counter()
            policy_update(model, optimizer, batch, advantages, run_cfg, torch.Generator().manual_seed(0), len(batch), 0)
            if repeat:
                seconds[source].append(time.perf_counter() - began)
            weights[source] = torch.cat([p.detach().flatten() for p in model.parameters()])
    trainer, from_engine = statistics.median(seconds["trainer"]), statistics.median(seconds["engine"])
    print(f"{'reference':>10} {'update s':>9}")
    print(f"{'trainer':>10} {trainer:>9.2f}\n{'engine':>10} {from_engine:>9.2f}")
    print(f"engine / trainer: {from_engine / trainer:.2f}; "
          f"largest weight difference after the update: {(weights['trainer'] - weights['engine']).abs().max():.2e}")


if __name__ == "__main__":
    main()
