"""Loss functions as pure functions of tensors: k1.5 online mirror descent, SFT and DPO.

Shapes: B sequences, T token positions (targets, i.e. the input shifted by one). `mask` is 1.0 on the
response tokens that enter the loss and 0.0 on prompt and padding positions, so those positions get
exactly zero gradient. Each function returns `(loss, metrics)` where metrics are detached floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def group_mean_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """Advantage `r_j - mean(r)` over each group of k responses to one prompt (report section 2.3.2).

    The baseline is the plain mean of the k rewards, the sample itself included (not leave-one-out):
    the report's estimate of tau*log Z.

    Args:
        rewards: (B,) rewards, ordered group by group (B = num_prompts * group_size).
        group_size: k, responses per prompt.
    Returns: (B,) advantages; zero for every member of a group whose rewards are all equal.
    Raises: ValueError if B is not a multiple of group_size.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)


def k15_loss(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, advantages: Tensor, tau: float
             ) -> tuple[Tensor, dict]:
    """The k1.5 online mirror-descent surrogate (report section 2.3.2, squared form of eq. 3).

        rho_j  = log pi_theta(y_j|x) - log pi_theta_i(y_j|x)      (sums over response tokens)
        loss   = 1/(2 tau) * mean_j (r_j - rbar - tau * rho_j)^2

    Its negative gradient is exactly eq. 3,
        g = 1/k sum_j [ grad log pi_theta(y_j|x) (r_j - rbar) - tau/2 grad rho_j^2 ],
    so at theta = theta_i (rho = 0) one step is REINFORCE with the group-mean baseline, and from
    the second step of an iteration on, tau pulls the policy back toward the previous iterate.
    Sequence log-probabilities are plain sums over tokens (the report does not normalise by length).

    Args:
        logprobs: (B, T) token log-probabilities under the policy being trained (requires grad).
        ref_logprobs: (B, T) token log-probabilities under pi_theta_i, the weights that generated
            the rollouts (no grad).
        mask: (B, T) float, 1.0 on response tokens in the loss.
        advantages: (B,) r_j - rbar from `group_mean_advantages` (no grad).
        tau: regularisation strength, > 0.
    Returns: (scalar loss averaged over the B sequences, metrics).
    """
    log_ratio = ((logprobs - ref_logprobs.detach()) * mask).sum(dim=1)
    residual = advantages.detach() - tau * log_ratio
    loss = residual.pow(2).mean() / (2 * tau)
    return loss, {"log_ratio_abs": log_ratio.abs().mean().item(), "residual_abs": residual.abs().mean().item()}


def sft_loss(logprobs: Tensor, mask: Tensor, num_tokens: int | None = None) -> tuple[Tensor, dict]:
    """Token-mean negative log-likelihood of the response tokens (prompt tokens masked out).

    Args:
        logprobs: (B, T) token log-probabilities of the targets.
        mask: (B, T) float, 1.0 on response tokens.
        num_tokens: normaliser when a batch is split into micro-batches (total response tokens of the
            whole batch, so the pieces add up to the batch's token mean); default `mask.sum()`.
    """
    denom = num_tokens if num_tokens is not None else mask.sum().clamp(min=1)
    loss = -(logprobs * mask).sum() / denom
    return loss, {"nll_sum": -(logprobs.detach() * mask).sum().item()}


def dpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
             beta: float, num_pairs: int | None = None) -> tuple[Tensor, dict]:
    """Direct preference optimisation (Rafailov et al. 2023), the report's long2short DPO (section 2.4).

        margin = beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))]
        loss   = -mean log sigmoid(margin)

    Minimising it raises the chosen (shorter, correct) response's log-probability relative to the
    frozen reference and lowers the rejected one's: d loss / d chosen = -beta * sigmoid(-margin) / B.

    Args:
        chosen_logps, rejected_logps: (B,) sequence log-probabilities (sums over response tokens) under
            the policy being trained (require grad).
        ref_chosen_logps, ref_rejected_logps: (B,) the same under the frozen reference model (no grad).
        beta: strength of the implicit KL constraint to the reference, > 0.
        num_pairs: normaliser when a batch is split into micro-batches (pairs in the whole batch);
            default B.
    Returns: (scalar loss, {"margin": mean margin, "pair_accuracy": share of pairs with margin > 0}).
    """
    margin = beta * ((chosen_logps - ref_chosen_logps.detach()) - (rejected_logps - ref_rejected_logps.detach()))
    loss = -F.logsigmoid(margin).sum() / (num_pairs if num_pairs is not None else margin.numel())
    return loss, {"margin": margin.detach().mean().item(), "pair_accuracy": (margin > 0).float().mean().item()}
