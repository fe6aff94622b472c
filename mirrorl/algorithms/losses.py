"""Loss and advantage functions as pure functions of tensors: k1.5 online mirror descent, the
baselines it is compared with (GRPO, RLOO, ReST), SFT and DPO (long2short).

Shapes: B sequences, T token positions (targets, i.e. the input shifted by one). `mask` is 1.0 on the
response tokens that enter the loss and 0.0 on prompt and padding positions (and on tokens left out
of the loss, e.g. stale partial-rollout segments), so those positions get exactly zero gradient. Every
loss takes `(logprobs, ref_logprobs, mask, advantages, ...)` and returns `(loss, metrics)` where the
loss is a mean over the B sequences and metrics are detached floats. Every advantage function maps
`(rewards, group_size)` to advantages, rewards ordered group by group (k responses per prompt).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """(B,) -> (B / k, k); raises ValueError if B is not a multiple of k."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)


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
    grouped = _grouped(rewards, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)


def group_normalized_advantages(rewards: Tensor, group_size: int, eps: float = 1e-6) -> Tensor:
    """GRPO advantage `(r_j - mean(r)) / (std(r) + eps)` over each group (Shao et al. 2024, DeepSeekMath
    section 4.1.2). Not part of the k1.5 report: a common baseline to compare its eq. 3 against.

    `std` is the sample standard deviation (Bessel-corrected, as in common GRPO implementations).

    Args:
        rewards: (B,) rewards, ordered group by group.
        group_size: k >= 2, responses per prompt.
        eps: added to the standard deviation, so groups with equal rewards get 0 rather than 0/0.
    Returns: (B,) advantages in units of the group's reward standard deviation.
    Raises: ValueError if B is not a multiple of group_size.
    """
    grouped = _grouped(rewards, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    return (centred / (grouped.std(dim=1, keepdim=True) + eps)).view(-1)


def leave_one_out_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """RLOO advantage `r_j - mean_{i != j} r_i`: each response is judged against the mean of the other
    k-1 (Kool et al. 2019; Ahmadian et al. 2024). The baseline does not depend on the sample itself,
    so the policy gradient stays unbiased; algebraically it equals `k/(k-1) * (r_j - mean(r))`.

    Args:
        rewards: (B,) rewards, ordered group by group.
        group_size: k >= 2, responses per prompt.
    Returns: (B,) advantages; they sum to zero within each group.
    Raises: ValueError if B is not a multiple of group_size.
    """
    grouped = _grouped(rewards, group_size)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).view(-1)


def correct_only_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """ReST weights: 1 for a correct response (reward > 0), 0 otherwise (report section 3.5, Fig. 10:
    fitting only good samples, i.e. no negative gradients).

    Args:
        rewards: (B,) rewards, ordered group by group; a task reward of 1 plus a length penalty of
            weight < 2 stays positive, a wrong response's reward is <= 0.
        group_size: k, responses per prompt (only checked).
    Returns: (B,) float weights in {0, 1}.
    Raises: ValueError if B is not a multiple of group_size.
    """
    return (_grouped(rewards, group_size) > 0).to(rewards.dtype).view(-1)


def _sequence_log_ratio(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor) -> Tensor:
    """(B,) sum over masked tokens of log pi_theta - log pi_ref."""
    return ((logprobs - ref_logprobs.detach()) * mask).sum(dim=1)


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
    log_ratio = _sequence_log_ratio(logprobs, ref_logprobs, mask)
    residual = advantages.detach() - tau * log_ratio
    loss = residual.pow(2).mean() / (2 * tau)
    return loss, {"log_ratio_abs": log_ratio.abs().mean().item(), "residual_abs": residual.abs().mean().item()}


def grpo_loss(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, advantages: Tensor, clip_eps: float
              ) -> tuple[Tensor, dict]:
    """GRPO's PPO-clipped surrogate (DeepSeekMath eq. 3); not in the k1.5 report, a baseline for it.

        ratio_jt = pi_theta(y_jt | ...) / pi_old(y_jt | ...)
        loss     = -mean_j  1/|y_j| sum_t  min(ratio_jt A_j, clip(ratio_jt, 1 - eps, 1 + eps) A_j)

    Token mean within each response, then mean over responses. `pi_old` is the rollout policy
    theta_i. The clip removes the gradient of a token once its ratio has left [1 - eps, 1 + eps] in
    the direction its advantage pushes (above 1 + eps for A > 0, below 1 - eps for A < 0). GRPO's
    KL penalty to a frozen reference model is left out (beta = 0, as in DAPO and Dr. GRPO): the clip
    against theta_i is the only trust region, and the comparison with k1.5 stays one of objectives.

    Args:
        logprobs: (B, T) token log-probabilities under the policy being trained (requires grad).
        ref_logprobs: (B, T) token log-probabilities under the rollout policy theta_i (no grad).
        mask: (B, T) float, 1.0 on response tokens in the loss.
        advantages: (B,) from `group_normalized_advantages` (no grad).
        clip_eps: clip range eps > 0 (0.2 in PPO and GRPO).
    Returns: (scalar loss, metrics incl. `clip_fraction`, the share of masked tokens whose ratio is clipped).
    """
    log_ratio = logprobs - ref_logprobs.detach()
    ratio = torch.exp(log_ratio)
    adv = advantages.detach().unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    tokens = mask.sum(dim=1).clamp(min=1)
    loss = -((surrogate * mask).sum(dim=1) / tokens).mean()
    clipped = ((ratio - 1).abs() > clip_eps).to(mask.dtype) * mask
    return loss, {"log_ratio_abs": (log_ratio.detach() * mask).sum(dim=1).abs().mean().item(),
                  "clip_fraction": (clipped.sum() / mask.sum().clamp(min=1)).item()}


def reinforce_loss(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, advantages: Tensor
                   ) -> tuple[Tensor, dict]:
    """Plain policy gradient on whole-response log-probabilities: `loss = -mean_j A_j log pi_theta(y_j|x)`.

    With `leave_one_out_advantages` this is RLOO; with `correct_only_advantages` it is ReST (report
    section 3.5: maximum likelihood on the correct responses only, so wrong responses get exactly zero
    gradient). Sequence log-probabilities are sums over tokens, as in `k15_loss`, so at theta = theta_i
    the three differ only in their advantages. There is no importance ratio or regulariser: steps after
    the first in an iteration are slightly off-policy and uncorrected.

    Args:
        logprobs: (B, T) token log-probabilities under the policy being trained (requires grad).
        ref_logprobs: (B, T) token log-probabilities under theta_i (no grad; only for the log-ratio metric).
        mask: (B, T) float, 1.0 on response tokens in the loss.
        advantages: (B,) per-response weights (no grad).
    Returns: (scalar loss averaged over the B sequences, metrics).
    """
    sequence_logprob = (logprobs * mask).sum(dim=1)
    loss = -(advantages.detach() * sequence_logprob).mean()
    return loss, {"log_ratio_abs": _sequence_log_ratio(logprobs, ref_logprobs, mask).abs().mean().item()}


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
             beta: float, num_pairs: int | None = None, chosen_tokens: Tensor | None = None,
             nll_weight: float = 0.0) -> tuple[Tensor, dict]:
    """Direct preference optimisation (Rafailov et al. 2023), the report's long2short DPO (section 2.4).

        margin = beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))]
        loss   = -mean log sigmoid(margin)  +  nll_weight * mean(-log pi(y_w|x) / |y_w|)

    Minimising it raises the chosen (shorter, correct) response's log-probability relative to the
    frozen reference and lowers the rejected one's: d loss / d chosen = -beta * sigmoid(-margin) / B
    (plus -nll_weight / (|y_w| B) from the second term). The second term is the per-token negative
    log-likelihood of the chosen response (RPO, Pang et al. 2024, "Iterative Reasoning Preference
    Optimization"): without it, pairs that share most of their tokens (a chosen and a rejected trace
    differing in one step) let DPO lower both, and the chosen answers with them.

    Args:
        chosen_logps, rejected_logps: (B,) sequence log-probabilities (sums over response tokens) under
            the policy being trained (require grad).
        ref_chosen_logps, ref_rejected_logps: (B,) the same under the frozen reference model (no grad).
        beta: strength of the implicit KL constraint to the reference, > 0.
        num_pairs: normaliser when a batch is split into micro-batches (pairs in the whole batch);
            default B.
        chosen_tokens: (B,) response tokens of each chosen response |y_w|; needed when nll_weight > 0.
        nll_weight: weight of the chosen response's per-token NLL (0 = plain DPO).
    Returns: (scalar loss, {"margin": mean margin, "pair_accuracy": share of pairs with margin > 0,
        "chosen_nll": mean per-token NLL of the chosen responses (only when nll_weight > 0)}).
    Raises: ValueError when nll_weight > 0 without chosen_tokens.
    """
    normaliser = num_pairs if num_pairs is not None else chosen_logps.numel()
    margin = beta * ((chosen_logps - ref_chosen_logps.detach()) - (rejected_logps - ref_rejected_logps.detach()))
    loss = -F.logsigmoid(margin).sum() / normaliser
    metrics = {"margin": margin.detach().mean().item(), "pair_accuracy": (margin > 0).float().mean().item()}
    if nll_weight > 0:
        if chosen_tokens is None:
            raise ValueError("dpo_loss: nll_weight > 0 needs chosen_tokens (response tokens per chosen response)")
        nll = -chosen_logps / chosen_tokens
        loss = loss + nll_weight * nll.sum() / normaliser
        metrics["chosen_nll"] = nll.detach().mean().item()
    return loss, metrics
