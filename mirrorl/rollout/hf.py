"""Rollout engine on Hugging Face `model.generate` (CPU or GPU), batched by prompt length.

In the default single-process mode the engine and the trainer hold the same `nn.Module`, so a weight
update is free (the colocated case of the report's section 2.6.3 with zero-copy transfer); when given
a separate model, `update_weights` copies a state dict in place.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from mirrorl.rollout.engine import SamplingParams, Segment
from mirrorl.trainer.precision import autocast


class HFEngine:
    """Generate with `transformers` `generate` in batches of at most `batch_size` prompts.

    Args:
        model: a causal LM (`PreTrainedModel`).
        eos_token_id, pad_token_id: token ids from the tokenizer.
        batch_size: prompts per `generate` call (memory knob).
        precision: "bf16" (autocast) or "fp32".
    """

    def __init__(self, model, eos_token_id: int, pad_token_id: int, batch_size: int = 256,
                 precision: str = "fp32", progress: bool = False):
        self.model, self.eos, self.pad = model, eos_token_id, pad_token_id
        self.batch_size, self.precision, self.progress = batch_size, precision, progress
        self.policy_version = 0

    @classmethod
    def from_config(cls, model, tokenizer, cfg, progress: bool = False) -> "HFEngine":
        """An engine with the run's generation batch size (`eval.batch_size`) and `run.generation_precision`."""
        return cls(model, tokenizer.eos_token_id, tokenizer.pad_token_id, cfg.eval.batch_size,
                   cfg.run.generation_precision, progress)

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        if state_dict is not None:
            self.model.load_state_dict(state_dict)
        self.policy_version = version

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], sampling: SamplingParams) -> list[Segment]:
        """Sample one response per prompt; see `RolloutEngine.generate`.

        Prompts are sorted by length and left-padded per batch, so a batch pads little.
        """
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Segment | None] = [None] * len(prompts)
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc="rollout", leave=False, disable=not self.progress):
            idx = order[start:start + self.batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(idx):
                ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]):] = 1
            greedy = sampling.temperature <= 0
            with autocast(self.precision, device):
                gen = self.model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device),
                    max_new_tokens=sampling.max_new_tokens, do_sample=not greedy,
                    temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p, top_k=None,
                    eos_token_id=self.eos, pad_token_id=self.pad,
                )
            for row, i in enumerate(idx):
                tokens = gen[row, width:].tolist()
                if self.eos in tokens:
                    out[i] = Segment(prompts[i], tokens[: tokens.index(self.eos) + 1], "stop", self.policy_version)
                else:
                    out[i] = Segment(prompts[i], tokens, "length", self.policy_version)
        self.model.train(was_training)
        return out
