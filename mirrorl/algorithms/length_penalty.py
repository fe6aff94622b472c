"""The k1.5 length penalty (report section 2.3.3) as pure functions: a reward for short responses
within each group of k, and its warm-up schedule. It curbs the growth of response length
("overthinking") during RL; it is added to the task reward before advantages are taken.
"""

from __future__ import annotations

import torch
from torch import Tensor


def length_rewards(lengths: Tensor, correct: Tensor, group_size: int) -> Tensor:
    """len_reward of each response, from the lengths of the k responses to its prompt (section 2.3.3).

        lambda_i   = 0.5 - (len_i - min_len) / (max_len - min_len)     (min, max over all k, right or wrong)
        len_reward = lambda_i            if response i is correct
                     min(0, lambda_i)    otherwise
    and len_reward = 0 for the whole group when max_len == min_len. The shortest response gets lambda
    +0.5, the longest -0.5; a wrong response is never rewarded for being short, only penalised for
    being longer than the group's midpoint.

    Args:
        lengths: (B,) response lengths in tokens (the whole response, every segment), group by group.
        correct: (B,) bool, whether each response's final answer is right (task reward 1).
        group_size: k, responses per prompt.
    Returns: (B,) float32 rewards in [-0.5, 0.5]; permuting a group's members permutes its rewards.
    Raises: ValueError if B is not a multiple of group_size or the shapes differ.
    """
    if lengths.shape != correct.shape or lengths.numel() % group_size:
        raise ValueError(f"lengths {tuple(lengths.shape)} and correct {tuple(correct.shape)} must be equal "
                         f"(B,) shapes with B a multiple of {group_size}")
    grouped = lengths.view(-1, group_size).float()
    shortest = grouped.min(dim=1, keepdim=True).values
    span = grouped.max(dim=1, keepdim=True).values - shortest
    lam = torch.where(span > 0, 0.5 - (grouped - shortest) / span.clamp(min=1), torch.zeros_like(grouped)).view(-1)
    return torch.where(correct, lam, lam.clamp(max=0.0))


def length_penalty_weight(iteration: int, weight: float, warmup_iterations: int) -> float:
    """The weight w in r' = r + w * len_reward at a 0-based iteration: 0 during the first
    `warmup_iterations` iterations, then constant (section 2.3.3: the penalty slows early training,
    so standard RL runs first and the penalty is switched on for the rest of training)."""
    return weight if iteration >= warmup_iterations else 0.0
