"""The RL loop: iterative synchronous online mirror descent (report sections 2.3.2 and 2.6.1).

One iteration reads like the algorithm:

    sample prompts -> k rollouts each (policy theta_i) -> rewards -> advantages r - mean(r)
    -> reference log-probs under theta_i -> optimizer steps on the k1.5 loss -> theta_{i+1}
    -> push weights to the rollout engine -> theta_{i+1} is the next iteration's reference

Rollouts go through a replay buffer of response groups. With `rl.partial_rollout_tokens` set, a
response gets that many tokens per iteration and an unfinished one is continued in the next (report
section 2.6.2), beside the new prompts of that iteration; a group enters the update once its k
responses have finished, so an iteration trains on the groups that finished in it. Without it every
group finishes in its iteration, as in the picture above. `rl.loss` swaps the advantage and loss
functions for a baseline (GRPO, RLOO, ReST); see `LOSSES`. `rl.sampler`, `rl.length_penalty_*` and
`rl.repeat_*` select the report's sampling strategies (2.3.4), length penalty (2.3.3) and repeat
detection (2.6.2); `rl.reward` adds the chain-of-thought reward model (2.3.5, `judge.*`).
Prompts with a picture (vision-language policies, section 2.3.5) go through the
same loop: their image tensors travel with the trajectories into generation and the log-prob passes.

The master runs this loop; the rollout engines and the trainer are the workers of a backend
(`distributed.backend`, see `mirrorl.distributed.backend`): in this process, sharing one module
(local), or Ray actors with data-parallel trainers and bucketed weight transfer (ray). Sampler, replay
buffer, rewards and advantages stay with the master either way.

`rollout.engine` picks the backend: "hf" shares the trainer's module (weight sync is free), "vllm" holds
its own copy that receives the trainer's state dict after every update. With `rollout.colocate` the
engine releases its memory for the training phase and takes it back after (section 2.6.3); the memory
freed is logged. With `rollout.logprob_parity` the engine's log-probs of the sampled tokens are compared
with the trainer's under the same weights theta_i (`logprob_parity`), every iteration.

Every phase is timed. Checkpoints (HF weights + optimizer, sampler, replay buffer, RNG and counters)
are written atomically every `save_every` iterations, so `mirrorl rl --resume RUN_DIR` continues a
killed run and, with fixed seeds, reproduces the metrics an uninterrupted run would have logged.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from mirrorl.algorithms.length_penalty import length_penalty_weight, length_rewards
from mirrorl.algorithms.losses import (correct_only_advantages, group_mean_advantages, group_normalized_advantages,
                                       grpo_loss, k15_loss, leave_one_out_advantages, reinforce_loss)
from mirrorl.config import Config, ConfigError, RLConfig, save_config
from mirrorl.eval.evaluate import encode_problem, evaluate
from mirrorl.metrics import MetricsLogger, PhaseTimer
from mirrorl.models.loading import load_processor
from mirrorl.models.multimodal import collate
from mirrorl.rewards import score
from mirrorl.rewards.cot_judge import make_judged_rewards
from mirrorl.rewards.custom import custom_rewards, load_reward_fn
from mirrorl.rollout.engine import SamplingParams, memory_in_use_bytes
from mirrorl.rollout.replay_buffer import Group, ReplayBuffer, Trajectory, extend_rollouts
from mirrorl.sampling import make_sampler
from mirrorl.sft import TrainingError
from mirrorl.tasks.datasets import Datasets
from mirrorl.tasks.problem import Problem
from mirrorl.trainer.checkpoint import latest_checkpoint, load_trainer_state, rng_state, set_rng_state
from mirrorl.trainer.logprobs import pad_batch, token_logprobs

# rl.loss -> (advantages from rewards, loss, the rl.* hyperparameters the loss takes by name)
LOSSES = {
    "k15": (group_mean_advantages, k15_loss, ("tau",)),
    "grpo": (group_normalized_advantages, grpo_loss, ("clip_eps",)),
    "rloo": (leave_one_out_advantages, reinforce_loss, ()),
    "rest": (correct_only_advantages, reinforce_loss, ()),
}


def score_finished(groups: list[Group], pool: list[Problem], tokenizer, reward_fn=None, judged=None) -> None:
    """Give every finished, not yet scored response its task reward, in place: once, when it finishes,
    from the whole response (every segment). A response cut at the length limit ("truncated") or
    stopped in a loop ("repeat") scores 0: it has no final answer.

    Args:
        groups: response groups; `pool[group.prompt_index]` is the problem they answer.
        reward_fn: a user reward function (`mirrorl.rewards.custom`) used instead of `score`, or None.
        judged: a `mirrorl.rewards.cot_judge.JudgedRewards` (``rl.reward`` judge or rules_then_judge) that
            scores the batch instead of `score`, or None.
    """
    pending = []
    for group in groups:
        for t in group.trajectories:
            if t.finish_reason is None or t.reward is not None:
                continue
            if t.finish_reason in ("length", "repeat"):
                t.reward, t.verdict = 0.0, {"length": "truncated", "repeat": "repeat"}[t.finish_reason]
            else:
                pending.append((t, pool[group.prompt_index], tokenizer.decode(t.response_ids, skip_special_tokens=True)))
    if reward_fn is not None and pending:
        rewards = custom_rewards(reward_fn, [p for _, p, _ in pending], [text for _, _, text in pending])
        for (t, _, _), reward in zip(pending, rewards):
            t.reward, t.verdict = reward, "custom"
        return
    if judged is not None:
        verdicts = judged([p for _, p, _ in pending], [text for _, _, text in pending]) if pending else []
    else:
        verdicts = [score(problem, text) for _, problem, text in pending]
    for (t, _, _), verdict in zip(pending, verdicts):
        t.reward, t.verdict = float(verdict.correct), verdict.reason


def shaped_rewards(trajectories: list[Trajectory], k: int, cfg: RLConfig, iteration: int
                   ) -> tuple[torch.Tensor, dict]:
    """The rewards advantages are taken from: task reward (0/1) + w * len_reward (report section 2.3.3),
    with w = `cfg.length_penalty_weight` from 0-based iteration `cfg.length_penalty_warmup` on and 0 before,
    minus `cfg.repeat_penalty` for a response stopped in a loop (section 2.6.2).

    Returns: (B,) rewards, ordered group by group like `trajectories`, and {"length_reward": mean
    len_reward} (logged even while w = 0; empty when there are no trajectories).
    """
    task = torch.tensor([t.reward for t in trajectories])
    bonus = length_rewards(torch.tensor([len(t.response_ids) for t in trajectories]), task > 0, k)
    weight = length_penalty_weight(iteration, cfg.length_penalty_weight, cfg.length_penalty_warmup)
    looped = torch.tensor([t.finish_reason == "repeat" for t in trajectories], dtype=task.dtype)
    metrics = {"length_reward": bonus.mean().item()} if trajectories else {}
    return task + weight * bonus - cfg.repeat_penalty * looped, metrics


def rollout_metrics(trajectories: list[Trajectory], problems: list, informative: int) -> dict:
    """Mean reward (overall and per difficulty level, `reward/level_L`), mean response length
    (tokens) and the shares of truncated, loop-stopped, unparseable and informative (in a group with a
    nonzero advantage, i.e. trained on) responses. `problems[i]` is the problem that `trajectories[i]`
    answers. Empty when there are no trajectories (every group still in the replay buffer)."""
    n = len(trajectories)
    if not n:
        return {}
    by_level: dict[int, list[float]] = {}
    for t, p in zip(trajectories, problems):
        if p.level:
            by_level.setdefault(p.level, []).append(t.reward)
    return {f"reward/level_{level}": sum(r) / len(r) for level, r in sorted(by_level.items())} | {
        "reward": sum(t.reward for t in trajectories) / n,
        "response_tokens": sum(len(t.response_ids) for t in trajectories) / n,
        "truncated": sum(t.finish_reason == "length" for t in trajectories) / n,
        "repeats": sum(t.finish_reason == "repeat" for t in trajectories) / n,
        "parse_failures": sum(t.verdict in ("no_answer", "parse_error", "timeout") for t in trajectories) / n,
        "informative_groups": informative / n,
    }


def _logprobs(model, batch: list[Trajectory], cfg: Config, with_entropy: bool = False):
    """Token log-probs (B, T), response mask (B, T) and entropy of a batch of trajectories (with the
    image tensors their prompts were generated with)."""
    device = next(model.parameters()).device
    config = getattr(model, "module", model).config  # DDP wraps the model as `.module`
    pad_id = config.pad_token_id if config.pad_token_id is not None else 0
    ids, attn, mask = pad_batch([t.prompt_ids for t in batch], [t.response_ids for t in batch], pad_id)
    logprobs, entropy = token_logprobs(model, ids.to(device), attn.to(device), cfg.run.precision, with_entropy,
                                       collate([t.multimodal for t in batch], device))
    return logprobs, mask.to(device), entropy


def length_sorted(batch: list[Trajectory], indices: list[int]) -> list[int]:
    """`indices` ordered by prompt + response length (tokens), so that consecutive micro-batches pad little.

    Every loss averages per sequence, so how a minibatch is split into micro-batches changes no
    gradient (up to float summation order); sorting only removes padding work.
    """
    return sorted(indices, key=lambda i: len(batch[i].prompt_ids) + len(batch[i].response_ids))


@torch.no_grad()
def reference_logprobs(model, batch: list[Trajectory], cfg: Config) -> list[torch.Tensor]:
    """Per-trajectory token log-probs under the current weights theta_i (1-D tensors, response positions)."""
    out: list[torch.Tensor | None] = [None] * len(batch)
    order = length_sorted(batch, list(range(len(batch))))
    for start in range(0, len(order), cfg.rl.micro_batch_size):
        idx = order[start:start + cfg.rl.micro_batch_size]
        logprobs, mask, _ = _logprobs(model, [batch[i] for i in idx], cfg)
        for i, row, m in zip(idx, logprobs, mask):
            out[i] = row[m.bool()]
    return out


def engine_logprobs(batch: list[Trajectory], version: int) -> list[torch.Tensor]:
    """Per-trajectory reference log-probs (1-D tensors, response positions) from the rollout engine: the
    log-probs it returned while sampling with theta_i (`rl.reference_logprobs=engine`).

    Tokens of older policies (partial rollouts) get 0: they are left out of the loss (`_fresh_mask`).
    Raises: TrainingError when a token of policy `version` has no engine log-prob.
    """
    out = []
    for t in batch:
        values = torch.tensor(t.token_logprobs, dtype=torch.float32)
        fresh = torch.tensor([v == version for v in t.token_versions], dtype=torch.bool)
        if len(values) != len(fresh) or not values[fresh].isfinite().all():
            raise TrainingError("rl.reference_logprobs=engine, but the engine returned no log-prob for some "
                                f"tokens of policy {version}; use rl.reference_logprobs=trainer")
        out.append(torch.where(fresh, values, 0.0))
    return out


def _align(ref: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Scatter 1-D reference log-probs back into a (B, T) tensor shaped like `mask`."""
    full = torch.zeros_like(mask)
    for row, values in enumerate(ref):
        full[row, mask[row].bool()] = values.to(full)  # the engine's values arrive on the CPU
    return full


def _fresh_mask(batch: list[Trajectory], mask: torch.Tensor, version: int) -> torch.Tensor:
    """`mask` (B, T) restricted to the response tokens generated by policy `version` (theta_i).

    Partial rollouts leave earlier segments, generated by older policies, out of the loss: eq. 3's
    policy-gradient term and GRPO's ratio assume tokens sampled from pi_theta_i, and those segments
    were not (their own log-probs were not kept, so no importance weight can correct them). They
    still count as context and through the reward of the whole response.
    """
    flags = [torch.tensor([float(v == version) for v in t.token_versions], device=mask.device) for t in batch]
    return _align(flags, mask)


def logprob_parity(batch: list[Trajectory], trainer: list[torch.Tensor], version: int) -> dict:
    """How far the rollout engine's log-probs of the sampled tokens are from the trainer's (nats).

    Compares, token by token, `Trajectory.token_logprobs` with `trainer` (the trainer's log-probs under the
    same weights theta_i, `reference_logprobs`), over tokens generated by policy `version` that carry an
    engine log-prob. Both sides are log pi_theta(y_t | x, y_<t) at temperature 1 before top-p, so only
    numerics differ: kernels, batching, the engine's precision against the trainer's (`run.precision`).
    Returns: {"logprob_diff/mean_abs", "logprob_diff/max"}; empty when no token qualifies.
    """
    engine = torch.tensor([lp for t in batch for lp in t.token_logprobs])
    fresh = torch.tensor([v == version for t in batch for v in t.token_versions])
    diff = (engine - torch.cat(trainer).float().cpu()).abs()[fresh & engine.isfinite()]
    return {"logprob_diff/mean_abs": diff.mean().item(), "logprob_diff/max": diff.max().item()} if len(diff) else {}


def policy_update(model, optimizer, batch: list[Trajectory], advantages: torch.Tensor, cfg: Config,
                  generator: torch.Generator, nominal_size: float, version: int, rank: int = 0,
                  world_size: int = 1) -> dict:
    """`cfg.rl.epochs` passes over `batch`, each split into `cfg.rl.minibatches` optimizer steps,
    on the loss named by `cfg.rl.loss` (k1.5 by default).

    Reference log-probs are taken under the weights before the first step (theta_i): by a forward
    pass, or from the rollout engine (`rl.reference_logprobs=engine`, `engine_logprobs`). With a single
    step they equal the detached log-probs of that step's own forward pass, so neither is needed.
    From the second step on, the tau term pulls the policy back toward theta_i: each iteration
    approximately solves the report's eq. 2 rather than taking one gradient step.
    Each minibatch's loss is averaged over `nominal_size` sequences (its size before groups with
    all-zero advantages were dropped), so dropping them changes no gradient at theta_i.
    Only tokens generated by policy `version` enter the loss unless `cfg.rl.train_stale_tokens`
    (see `_fresh_mask`). Micro-batches are cut from length-sorted minibatches (`length_sorted`).
    With `cfg.rollout.logprob_parity` the reference pass is always run and compared with the engine's
    log-probs (`logprob_parity`).

    Data parallel (`world_size > 1`, `model` wrapped in DDP or FSDP): every rank gets the same
    `batch` and `generator`, takes the same minibatches and computes its slice `rank` of each; the
    wrapper averages gradients over ranks, so each rank scales its loss by `world_size` and the step
    equals the single-process one. Every rank runs the same number of micro-batches (a rank short of
    data runs one with weight 0), as DDP needs. Statistics are summed over ranks.
    Raises: TrainingError on a non-finite loss, before the optimizer step (on every rank).
    """
    steps = cfg.rl.minibatches * cfg.rl.epochs
    _, loss_fn, hyperparameters = LOSSES[cfg.rl.loss]
    hyper = {name: getattr(cfg.rl, name) for name in hyperparameters}
    from_engine = steps > 1 and cfg.rl.reference_logprobs == "engine"
    trainer_ref = reference_logprobs(model, batch, cfg) if cfg.rollout.logprob_parity or (
        steps > 1 and not from_engine) else None
    ref = engine_logprobs(batch, version) if from_engine else trainer_ref
    chunks = [chunk for _ in range(cfg.rl.epochs)
              for chunk in torch.tensor_split(torch.randperm(len(batch), generator=generator), cfg.rl.minibatches)]
    totals = {"loss": 0.0, "entropy": 0.0, "log_ratio_abs": 0.0, "grad_norm": 0.0}
    device = next(model.parameters()).device
    for step, chunk in enumerate(chunks):
        last_epoch = step >= steps - cfg.rl.minibatches  # entropy and log-ratio are reported for the last pass
        shard = length_sorted(batch, torch.tensor_split(chunk, world_size)[rank].tolist())
        micro_steps = math.ceil(math.ceil(len(chunk) / world_size) / cfg.rl.micro_batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for m in range(micro_steps):
            idx = shard[m * cfg.rl.micro_batch_size:(m + 1) * cfg.rl.micro_batch_size]
            weight = float(bool(idx))
            idx = idx or chunk[:1].tolist()  # a rank without data here still joins DDP's gradient reduction
            micro = [batch[i] for i in idx]
            with _gradient_sync(model, m == micro_steps - 1):
                logprobs, mask, entropy = _logprobs(model, micro, cfg, with_entropy=True)
                ref_lp = _align([ref[i] for i in idx], mask) if ref is not None else logprobs.detach()
                loss_mask = mask if cfg.rl.train_stale_tokens else _fresh_mask(micro, mask, version)
                loss, stats = loss_fn(logprobs, ref_lp, loss_mask, advantages[idx], **hyper)
                loss = loss * weight * len(micro) / nominal_size
                (loss * world_size).backward()
            loss_sum += loss.item()
            if last_epoch:
                totals["entropy"] += weight * ((entropy * mask).sum() / mask.sum()).item() * len(micro) / len(batch)
                totals["log_ratio_abs"] += weight * stats["log_ratio_abs"] * len(micro) / len(batch)
        loss_sum = _sum_over_ranks([loss_sum], world_size, device)[0]
        if not math.isfinite(loss_sum):
            raise TrainingError(f"loss is {loss_sum}")
        if cfg.rl.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.rl.grad_clip)
            totals["grad_norm"] += getattr(norm, "full_tensor", lambda: norm)().item() / steps  # FSDP: a DTensor
        optimizer.step()
        totals["loss"] += loss_sum / steps
    totals["entropy"], totals["log_ratio_abs"] = _sum_over_ranks([totals["entropy"], totals["log_ratio_abs"]],
                                                                 world_size, device)
    return totals | (logprob_parity(batch, trainer_ref, version) if cfg.rollout.logprob_parity else {})


def _gradient_sync(model, enabled: bool):
    """DDP's `no_sync()` while accumulating micro-batches (gradients reduced on the last one only);
    a no-op for a plain module or FSDP (which reduces on every backward)."""
    return contextlib.nullcontext() if enabled or not hasattr(model, "no_sync") else model.no_sync()


def _sum_over_ranks(values: list[float], world_size: int, device) -> list[float]:
    """`values` summed over the data-parallel group (unchanged when `world_size == 1`)."""
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def iteration_lr(cfg: RLConfig, iteration: int) -> float:
    """`cfg.lr`, ramped up linearly over the first `cfg.lr_warmup_iterations` iterations (0-based `iteration`)."""
    return cfg.lr * min(1.0, (iteration + 1) / max(1, cfg.lr_warmup_iterations))


def train_rl(cfg: Config, data: Datasets, run_dir: str | Path, resume: bool = False) -> dict:
    """Run (or resume) RL from the policy at `cfg.model.path`; returns the final summary.

    The workers live where `cfg.distributed.backend` puts them (`mirrorl.distributed.backend`): in
    this process (local) or as Ray actors (ray); the iteration below is the same for both.
    Writes to `run_dir`: config.yaml, data/*.jsonl, metrics.jsonl, tb/, checkpoints/, final/ (the
    last policy as an HF folder) and rl_summary.json.
    Raises: TrainingError naming the iteration on a non-finite loss (checkpoints on disk untouched);
        ConfigError when `run_dir` already holds a run and `resume` is False.
    """
    from mirrorl.distributed.backend import make_backend  # its workers import this module

    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise ConfigError(f"{run_dir}: already holds an RL run; continue it with --resume {run_dir} "
                          "or choose another --out")
    reward_fn = load_reward_fn(cfg.rl.reward_fn) if cfg.rl.reward_fn else None  # fail before any work
    run_dir.mkdir(parents=True, exist_ok=True)
    judged = make_judged_rewards(cfg, run_dir)
    save_config(cfg, run_dir / "config.yaml")
    checkpoint = latest_checkpoint(run_dir) if resume else None
    backend = make_backend(cfg, checkpoint or cfg.model.path)
    try:
        return _train(cfg, data, run_dir, backend, checkpoint, reward_fn, judged)
    finally:
        backend.close()


def _train(cfg: Config, data: Datasets, run_dir: Path, backend, checkpoint: Path | None, reward_fn,
           judged) -> dict:
    """The loop of `train_rl` on the workers of `backend` (a `mirrorl.distributed.backend.Backend`)."""
    engine, tokenizer = backend.engine, backend.tokenizer
    processor = load_processor(checkpoint or cfg.model.path)  # None for a text-only model
    sampler = make_sampler(cfg.rl, [p.level for p in data.rl], cfg.run.seed, [p.pass_rate for p in data.rl])
    buffer = ReplayBuffer()
    logger = MetricsLogger(run_dir, "rl")
    start_iteration, train_seconds, curve = 0, 0.0, []
    if checkpoint is not None:
        state = load_trainer_state(checkpoint)
        backend.load_optimizer_state(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        buffer.load_state_dict(state.get("replay_buffer", {"groups": []}))  # runs saved before partial rollouts
        set_rng_state(state["rng"])
        start_iteration, train_seconds, curve = state["iteration"], state["train_seconds"], state["curve"]
        backend.push_weights(start_iteration)
        logger.truncate_after(start_iteration)
        print(f"resuming {run_dir} from {checkpoint.name} (iteration {start_iteration})")
    else:
        torch.manual_seed(cfg.run.seed)
        logger.truncate_after(-1)
        result = evaluate(engine, tokenizer, data.heldout, cfg.eval, cfg.model.chat_template, processor)
        curve.append((0.0, 0, result.accuracy))
        logger.log(0, result.as_metrics("heldout") | {"train_seconds": 0.0})

    prompt_cache: dict[int, tuple[list[int], dict | None]] = {}  # prompt index -> ids, image tensors
    k = cfg.rl.samples_per_prompt
    advantage_fn = LOSSES[cfg.rl.loss][0]
    sampling = SamplingParams(cfg.rl.temperature, cfg.rl.top_p, cfg.rl.max_response_tokens,
                              cfg.rl.repeat_window_tokens, cfg.rl.repeat_max_period_tokens,
                              cfg.rollout.logprob_parity or cfg.rl.reference_logprobs == "engine")
    budget = cfg.rl.partial_rollout_tokens or cfg.rl.max_response_tokens
    timer = PhaseTimer()
    bar = tqdm(range(start_iteration, cfg.rl.iterations), desc="rl", unit="iter", initial=start_iteration,
               total=cfg.rl.iterations)
    iteration, final = start_iteration, None
    for iteration in bar:
        with timer("sample"):
            for i in sampler.sample(cfg.rl.prompts_per_iteration, iteration):
                if i not in prompt_cache:
                    prompt_cache[i] = encode_problem(tokenizer, data.rl[i], cfg.model.chat_template, processor)
                ids, images = prompt_cache[i]
                buffer.add(i, ids, k, images)
        with timer("rollout"):
            generated = extend_rollouts(engine, buffer.trajectories(), sampling, budget, cfg.rl.max_response_tokens)
        with timer("reward"):
            score_finished(buffer.groups, data.rl, tokenizer, reward_fn, judged)
            groups = buffer.pop_finished()  # all k responses finished: ready for advantages
            trajectories = [t for g in groups for t in g.trajectories]
            problems = [data.rl[g.prompt_index] for g in groups for _ in range(k)]
            rewards, shaping = shaped_rewards(trajectories, k, cfg.rl, iteration)
            advantages = advantage_fn(rewards, k)
            sampler.update([g.prompt_index for g in groups],
                           [sum(t.reward for t in g.trajectories) / k for g in groups])
        colocated = {}
        if cfg.rollout.colocate:  # the trainer gets the engine's memory for the training phase
            with timer("engine_sleep"):
                before = memory_in_use_bytes(cfg.run.device)
                engine.sleep()
                colocated = {"colocate/freed_mb": (before - memory_in_use_bytes(cfg.run.device)) / 2**20}
        keep = list(range(len(trajectories)))
        if cfg.rl.drop_uniform_groups:  # tolerance: a float mean of equal rewards may be off by rounding
            informative = advantages.view(-1, k).abs().amax(dim=1) > 1e-6
            keep = [i for i in keep if informative[i // k]]
        lr = iteration_lr(cfg.rl, iteration)
        with timer("update"):
            stats = {"loss": 0.0, "log_ratio_abs": 0.0, "grad_norm": 0.0}  # no update: every group uniform
            if keep:
                try:
                    stats = backend.update([trajectories[i] for i in keep], advantages[keep],
                                           len(trajectories) / cfg.rl.minibatches, iteration, lr)
                except TrainingError as err:
                    last = latest_checkpoint(run_dir)
                    raise TrainingError(f"RL iteration {iteration + 1}: {err}; last good checkpoint: "
                                        f"{last or 'none'} (untouched)") from None
        if cfg.rollout.colocate:
            with timer("engine_wake"):
                engine.wake_up()
        with timer("weight_sync"):
            transfer = backend.push_weights(iteration + 1)
        phases = timer.pop()
        train_seconds += sum(phases.values())
        metrics = (rollout_metrics(trajectories, problems, len(keep)) | shaping | stats | phases | transfer | colocated
                   | (judged.judge.pop_stats() if judged else {})
                   | {"lr": lr, "train_seconds": train_seconds,
                      "rollout_tokens": generated, "buffer_groups": len(buffer),
                      "rollout_tokens_per_s": generated / phases["time/rollout_s"]})
        step = iteration + 1
        out_of_time = bool(cfg.rl.max_seconds) and train_seconds >= cfg.rl.max_seconds
        final = None
        if step % cfg.rl.eval_every == 0 or step == cfg.rl.iterations or out_of_time:
            final = evaluate(engine, tokenizer, data.heldout, cfg.eval, cfg.model.chat_template, processor)
            metrics |= final.as_metrics("heldout")
            curve.append((train_seconds, step, final.accuracy))
        logger.log(step, metrics)
        bar.set_postfix(reward=f"{metrics.get('reward', math.nan):.3f}", len=f"{metrics.get('response_tokens', 0):.0f}")
        if step % cfg.rl.save_every == 0 or step == cfg.rl.iterations or out_of_time:
            backend.save_checkpoint(run_dir, step, {
                "iteration": step, "sampler": sampler.state_dict(), "replay_buffer": buffer.state_dict(),
                "rng": rng_state(), "train_seconds": train_seconds, "curve": curve,
            }, keep=cfg.rl.keep_checkpoints)
        if out_of_time:
            break
    bar.close()
    logger.close()
    backend.save_final(run_dir / "final")
    final = final or evaluate(engine, tokenizer, data.heldout, cfg.eval, cfg.model.chat_template, processor)
    summary = {"iterations": curve[-1][1], "train_seconds": train_seconds,
               "heldout_accuracy": final.accuracy, "heldout_per_level": final.per_level,
               "heldout_per_task": final.per_task,
               "mean_response_tokens": final.mean_response_tokens, "curve": curve, "samples": final.samples}
    (run_dir / "rl_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
