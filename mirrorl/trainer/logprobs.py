"""Token log-probabilities of responses under a causal LM, from padded batches of (prompt, response).

Vision prompts add their image tensors (`multimodal`, batched by `mirrorl.models.multimodal.collate`),
the same ones the rollout engine generated with. Their placeholder tokens lie in the prompt, so
`pad_batch`'s response mask keeps them out of every loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mirrorl.trainer.precision import autocast


def pad_batch(prompts: list[list[int]], responses: list[list[int]], pad_id: int
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Right-pad `prompt + response` sequences into one batch.

    Returns:
        input_ids: (B, L) long, L = longest prompt + response.
        attention_mask: (B, L) long, 1 on real tokens.
        response_mask: (B, L-1) float, 1.0 where the *target* (input shifted by one) is a response
            token; aligned with the output of `token_logprobs`.
    """
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    response_mask = torch.zeros((len(prompts), width - 1))
    for row, (p, r) in enumerate(zip(prompts, responses)):
        n = len(p) + len(r)
        input_ids[row, :n] = torch.tensor(p + r)
        attention_mask[row, :n] = 1
        response_mask[row, len(p) - 1: n - 1] = 1.0
    return input_ids, attention_mask, response_mask


def token_logprobs(model, input_ids: Tensor, attention_mask: Tensor, precision: str = "bf16",
                   with_entropy: bool = False, multimodal: dict[str, Tensor] | None = None
                   ) -> tuple[Tensor, Tensor | None]:
    """Log-probability of each next token, computed in float32 from the model's logits.

    Args:
        input_ids, attention_mask: (B, L) from `pad_batch`, on the model's device.
        precision: "bf16" autocast, "fp32", or "auto" (`resolve_precision`) for the forward pass.
        with_entropy: also return the entropy of each next-token distribution (nats, no grad).
        multimodal: the batch's image tensors, e.g. ``pixel_values`` (N_images, 3, H, W), for the
            rows whose prompts hold image placeholders, in row order; None or {} for text.
    Returns: logprobs (B, L-1) with grad if enabled; entropy (B, L-1) or None.
    """
    with autocast(precision, input_ids.device):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                       **(multimodal or {})).logits
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:].unsqueeze(-1)
    picked = log_probs.gather(-1, targets).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(log_probs.exp() * log_probs).sum(-1)
    return picked, entropy
