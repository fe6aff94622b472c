"""DPO for long2short (report section 2.4): prefer the shortest correct response over longer ones.

Pairs are built from n judged samples of the long-CoT model per prompt (`sample_groups`): the
positive is the shortest correct response; the negatives are the incorrect responses longer than it
and the correct ones longer than `length_ratio` (1.5) times it. The report leaves open whether the
1.5x rule also applies to incorrect responses; here it does not (recipe section 9).

Training follows the SFT loop's style (AdamW, micro-batches, gradient clipping at 1.0, a progress bar,
metrics.jsonl + TensorBoard). The frozen reference is the starting model: its sequence
log-probabilities are computed once before the first step, so no second copy of the model is kept.
"""

from __future__ import annotations

import math
import random

import torch
from tqdm import tqdm

from mirrorl.algorithms.losses import dpo_loss
from mirrorl.config import Config
from mirrorl.eval.evaluate import encode_prompt
from mirrorl.long2short.shortest import Sample, shortest_correct
from mirrorl.metrics import MetricsLogger
from mirrorl.sft import TrainingError
from mirrorl.tasks.problem import Problem
from mirrorl.trainer.logprobs import pad_batch, token_logprobs


def build_pairs(problem: Problem, group: list[Sample], length_ratio: float = 1.5) -> list[dict]:
    """Preference pairs `{"prompt", "chosen", "rejected", "id", "chosen_tokens", "rejected_tokens"}` for one prompt.

    chosen = the shortest correct sample; one pair per negative: an incorrect sample with more tokens
    than the chosen one, or a correct sample with more than `length_ratio` times its tokens.
    Returns [] when no sample is correct.
    """
    best = shortest_correct(group)
    if best is None:
        return []
    negatives = [s for s in group
                 if (not s.correct and s.tokens > best.tokens) or (s.correct and s.tokens > length_ratio * best.tokens)]
    return [{"prompt": problem.prompt, "chosen": best.text, "rejected": s.text, "id": problem.id,
             "chosen_tokens": best.tokens, "rejected_tokens": s.tokens} for s in negatives]


def sequence_logprobs(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                      precision: str) -> torch.Tensor:
    """(B,) log pi(response | prompt), summed over response tokens; grad flows when enabled."""
    device = next(model.parameters()).device
    ids, attn, mask = pad_batch(prompts, responses, pad_id)
    logprobs, _ = token_logprobs(model, ids.to(device), attn.to(device), precision)
    return (logprobs * mask.to(device)).sum(dim=1)


def _pair_logprobs(model, pairs: list[tuple], pad_id: int, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) sequence log-probabilities, (B,) each, from one forward pass over 2B sequences."""
    prompts = [p for p, _, _ in pairs] * 2
    responses = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    both = sequence_logprobs(model, prompts, responses, pad_id, precision)
    return both[:len(pairs)], both[len(pairs):]


def train_dpo(model, tokenizer, pairs: list[dict], cfg: Config, run_dir, stage: str = "dpo") -> dict:
    """Train `model` in place with the DPO loss on `pairs` (rows from `build_pairs`), for `cfg.dpo.steps` steps.

    Each optimizer step draws `cfg.dpo.batch_size` pairs (reshuffled every pass) and takes one AdamW
    step at the constant rate `cfg.dpo.lr`; the loss adds `cfg.dpo.nll_weight` times the chosen
    responses' per-token NLL (`dpo_loss`). Metrics per step (loss, margin, pair_accuracy, chosen_nll,
    grad_norm) go to `run_dir/metrics.jsonl` under `stage`.

    Returns: {"steps", "pairs", "final_loss", "final_pair_accuracy"}.
    Raises: ValueError when `pairs` is empty; TrainingError on a non-finite loss (naming the step).
    """
    if not pairs:
        raise ValueError("no DPO pairs (no prompt had a correct response to prefer)")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]

    data = [(encode_prompt(tokenizer, row["prompt"], cfg.model.chat_template), encode(row["chosen"]),
             encode(row["rejected"])) for row in pairs]
    micro = cfg.dpo.micro_batch_size
    model.train()
    with torch.no_grad():  # the frozen reference = the weights before the first step
        refs = [_pair_logprobs(model, data[i:i + micro], pad, cfg.run.precision) for i in range(0, len(data), micro)]
    ref_chosen, ref_rejected = torch.cat([c for c, _ in refs]), torch.cat([r for _, r in refs])

    logger = MetricsLogger(run_dir, stage)
    logger.truncate_after(-1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.dpo.lr, weight_decay=0.0)
    rng, order, stats = random.Random(cfg.run.seed), [], {}
    for step in tqdm(range(1, cfg.dpo.steps + 1), desc=stage, unit="step"):
        if len(order) < cfg.dpo.batch_size:
            order += rng.sample(range(len(data)), len(data))
        batch, order = order[:cfg.dpo.batch_size], order[cfg.dpo.batch_size:]
        optimizer.zero_grad(set_to_none=True)
        stats = {"loss": 0.0, "margin": 0.0, "pair_accuracy": 0.0}
        for start in range(0, len(batch), micro):
            idx = batch[start:start + micro]
            chosen, rejected = _pair_logprobs(model, [data[i] for i in idx], pad, cfg.run.precision)
            chosen_tokens = torch.tensor([len(data[i][1]) for i in idx], dtype=chosen.dtype, device=chosen.device)
            loss, metrics = dpo_loss(chosen, rejected, ref_chosen[idx].to(chosen.device),
                                     ref_rejected[idx].to(chosen.device), cfg.dpo.beta, num_pairs=len(batch),
                                     chosen_tokens=chosen_tokens, nll_weight=cfg.dpo.nll_weight)
            loss.backward()
            stats["loss"] += loss.item()
            for key in metrics:
                stats[key] = stats.get(key, 0.0) + metrics[key] * len(idx) / len(batch)
        if not math.isfinite(stats["loss"]):
            raise TrainingError(f"{stage} step {step}: loss is {stats['loss']}; the model folder on disk is unchanged")
        stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        optimizer.step()
        logger.log(step, stats)
    logger.close()
    return {"steps": cfg.dpo.steps, "pairs": len(pairs), "final_loss": stats["loss"],
            "final_pair_accuracy": stats["pair_accuracy"]}
