"""Supervised fine-tuning on (prompt, response) pairs: the long-CoT warm-up of report section 2.2.

The loss covers response tokens only (prompt tokens, image placeholders included, are masked out);
examples with an ``image`` are encoded through the model's processor. Training stops by a held-out
criterion: every `eval_every` steps the dev set is answered greedily, the best weights are kept, and
training ends after `patience` evaluations without improvement (or at `max_seconds` / `max_steps`).
With `early_stopping=False` the same loop is the "continued SFT" control that the demo runs for RL's
wall time, evaluating the held-out set instead.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time

import torch
from tqdm import tqdm

from mirrorl.algorithms.losses import sft_loss
from mirrorl.config import Config
from mirrorl.eval.evaluate import encode_problem, evaluate
from mirrorl.metrics import MetricsLogger
from mirrorl.models.multimodal import collate, freeze_vision_tower, trainable_parameters
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.problem import Problem
from mirrorl.trainer.logprobs import pad_batch, token_logprobs


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the stage and step."""


def encode_examples(tokenizer, examples: list[dict], chat_template: bool, processor=None
                    ) -> list[tuple[list[int], list[int], dict | None]]:
    """(prompt ids, response ids + eos, image tensors or None) per example; an example's optional
    ``image`` (path or data URI) needs the model's `processor` (see `encode_problem`)."""
    out = []
    for ex in examples:
        prompt = Problem(id=str(ex.get("id", "")), prompt=ex["prompt"], answer="", image=ex.get("image", ""))
        ids, images = encode_problem(tokenizer, prompt, chat_template, processor)
        out.append((ids, tokenizer(ex["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
                    images))
    return out


def sft_step(model, batch, optimizer, cfg: Config, pad_id: int) -> dict:
    """One optimizer step on `batch` (list of (prompt ids, response ids, image tensors or None)), micro-batched."""
    device = next(model.parameters()).device
    num_tokens = sum(len(r) for _, r, _ in batch)
    total = 0.0
    optimizer.zero_grad(set_to_none=True)
    for start in range(0, len(batch), cfg.sft.micro_batch_size):
        micro = batch[start:start + cfg.sft.micro_batch_size]
        ids, attn, mask = pad_batch([p for p, _, _ in micro], [r for _, r, _ in micro], pad_id)
        logprobs, _ = token_logprobs(model, ids.to(device), attn.to(device), cfg.run.precision,
                                     multimodal=collate([m for _, _, m in micro], device))
        loss, _ = sft_loss(logprobs, mask.to(device), num_tokens)
        loss.backward()
        total += loss.item()
    if not math.isfinite(total):
        raise TrainingError(f"loss is {total}")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    optimizer.step()
    return {"loss": total, "grad_norm": grad_norm, "tokens": num_tokens}


def lr_factor(step: int, cfg: Config) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear warm-up, then cosine to `min_lr_ratio`."""
    if step < cfg.sft.warmup_steps:
        return (step + 1) / cfg.sft.warmup_steps
    progress = min(1.0, (step - cfg.sft.warmup_steps) / max(1, cfg.sft.max_steps - cfg.sft.warmup_steps))
    return cfg.sft.min_lr_ratio + (1 - cfg.sft.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def run_sft(model, tokenizer, examples: list[dict], eval_problems, cfg: Config, run_dir, stage: str = "sft",
            early_stopping: bool = True, max_seconds: float | None = None, continued: bool = False,
            processor=None) -> dict:
    """Fine-tune `model` in place on `examples` and return a summary.

    Args:
        examples: rows with "prompt" and "response" (text), and optionally "image" (path or data URI).
        eval_problems: Problems answered greedily every `cfg.sft.eval_every` steps (dev set for
            early stopping, held-out set for the control).
        run_dir: where `metrics.jsonl` and TensorBoard events go (stage name `stage`).
        early_stopping: keep the best weights by eval accuracy and stop after `patience` evaluations
            without improvement; otherwise train until the time/step limit and keep the last weights.
        max_seconds: training wall seconds (evaluation excluded); default `cfg.sft.max_seconds` (0 = none).
        continued: continue a finished warm-up: constant learning rate `min_lr_ratio * lr` (where the
            warm-up's schedule ended) instead of warm-up + cosine decay.
        processor: a vision-language model's processor, for examples and problems with images.
    Returns: {"steps", "train_seconds", "best_eval_accuracy", "curve": [(train_seconds, step, accuracy)]}.
    Raises: TrainingError on a non-finite loss (naming the step); ValueError on empty examples or a
        continued run without a time limit.
    """
    if not examples:
        raise ValueError("no SFT examples")
    if continued and not (max_seconds or cfg.sft.max_seconds):
        raise ValueError("continued SFT needs a time limit (max_seconds)")
    max_seconds = cfg.sft.max_seconds if max_seconds is None else max_seconds
    logger = MetricsLogger(run_dir, stage)
    logger.truncate_after(-1)  # SFT always starts over: drop records of an earlier, unfinished attempt
    data = encode_examples(tokenizer, examples, cfg.model.chat_template, processor)
    rng = random.Random(cfg.run.seed)
    if cfg.model.freeze_vision_tower:
        freeze_vision_tower(model)
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=cfg.sft.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, (lambda s: cfg.sft.min_lr_ratio) if continued else (lambda s: lr_factor(s, cfg)))
    engine = HFEngine.from_config(model, tokenizer, cfg)

    # early stopping compares greedy accuracy (less noisy on a small dev set); the control samples as RL does
    eval_cfg = dataclasses.replace(cfg.eval, temperature=0.0) if early_stopping else cfg.eval

    def eval_accuracy() -> float:
        return evaluate(engine, tokenizer, eval_problems, eval_cfg, cfg.model.chat_template, processor).accuracy

    best_acc, best_state, bad_evals = eval_accuracy(), copy.deepcopy(model.state_dict()), 0
    curve = [(0.0, 0, best_acc)]
    logger.log(0, {"eval_accuracy": best_acc})
    train_seconds, order, step = 0.0, [], 0
    bar = tqdm(total=cfg.sft.max_steps, desc=stage, unit="step")
    model.train()
    while (continued or step < cfg.sft.max_steps) and not (max_seconds and train_seconds >= max_seconds):
        if len(order) < cfg.sft.batch_size:
            order += rng.sample(range(len(data)), len(data))
        batch = [data[i] for i in order[: cfg.sft.batch_size]]
        order = order[cfg.sft.batch_size:]
        start = time.perf_counter()
        try:
            stats = sft_step(model, batch, optimizer, cfg, tokenizer.pad_token_id)
        except TrainingError as err:
            raise TrainingError(f"{stage} step {step + 1}: {err}; the model folder on disk is unchanged") from None
        schedule.step()
        train_seconds += time.perf_counter() - start
        step += 1
        bar.update(1)
        metrics = {"loss": stats["loss"], "grad_norm": stats["grad_norm"], "lr": schedule.get_last_lr()[0],
                   "train_seconds": train_seconds}
        if step % cfg.sft.eval_every == 0:
            acc = eval_accuracy()
            metrics["eval_accuracy"] = acc
            curve.append((train_seconds, step, acc))
            bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{acc:.3f}")
            # ties keep the later (longer-trained) weights but still count toward patience
            bad_evals = 0 if acc > best_acc else bad_evals + 1
            if acc >= best_acc:
                best_acc, best_state = acc, copy.deepcopy(model.state_dict())
            if early_stopping and bad_evals >= cfg.sft.patience:
                logger.log(step, metrics)
                break
        logger.log(step, metrics)
    bar.close()
    logger.close()
    if early_stopping:
        model.load_state_dict(best_state)
    return {"steps": step, "train_seconds": train_seconds, "best_eval_accuracy": best_acc, "curve": curve}
