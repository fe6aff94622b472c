"""The k1.5 loss against the report's eq. 3 on a toy categorical policy, the baseline losses (GRPO, RLOO,
ReST) against their definitions, and masking on a tiny LM."""

import pytest
import torch

from mirrorl.algorithms.losses import (correct_only_advantages, dpo_loss, group_mean_advantages,
                                       group_normalized_advantages, grpo_loss, k15_loss, leave_one_out_advantages,
                                       reinforce_loss, sft_loss)
from mirrorl.models.loading import load_policy
from mirrorl.trainer.logprobs import pad_batch, token_logprobs

K = 6  # responses of the toy policy


def _toy(seed=0, k=8):
    g = torch.Generator().manual_seed(seed)
    theta_i = torch.randn(K, generator=g, dtype=torch.float64)
    theta = (theta_i + 0.3 * torch.randn(K, generator=g, dtype=torch.float64)).requires_grad_()
    samples = torch.multinomial(torch.softmax(theta_i, 0), k, replacement=True, generator=g)
    rewards = (samples % 2 == 0).double()  # responses 0, 2, 4 are "correct"
    if rewards.std() == 0:
        rewards[0] = 1 - rewards[0]
    return theta_i, theta, samples, rewards


def _loss(theta, theta_i, samples, rewards, tau):
    logp = torch.log_softmax(theta, 0)[samples].unsqueeze(1)  # (k, T=1)
    ref = torch.log_softmax(theta_i, 0)[samples].unsqueeze(1)
    adv = group_mean_advantages(rewards, len(rewards))
    return k15_loss(logp, ref, torch.ones_like(logp), adv, tau)[0]


def _eq3(theta, theta_i, samples, rewards, tau):
    """Hand-coded report eq. 3: g = 1/k sum_j [grad log pi (r_j - rbar) - tau/2 grad rho_j^2]."""
    probs = torch.softmax(theta.detach(), 0)
    rho = torch.log_softmax(theta.detach(), 0)[samples] - torch.log_softmax(theta_i, 0)[samples]
    g = torch.zeros(K, dtype=torch.float64)
    for j, y in enumerate(samples):
        grad_logp = torch.nn.functional.one_hot(y, K).double() - probs
        g += grad_logp * (rewards[j] - rewards.mean()) - tau / 2 * 2 * rho[j] * grad_logp
    return g / len(samples)


@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
def test_gradient_matches_eq3_and_finite_differences(tau):
    theta_i, theta, samples, rewards = _toy(seed=int(tau * 10))
    loss = _loss(theta, theta_i, samples, rewards, tau)
    (grad,) = torch.autograd.grad(loss, theta)
    # minimising the loss moves along eq. 3's ascent direction g: -grad == g
    torch.testing.assert_close(-grad, _eq3(theta, theta_i, samples, rewards, tau), rtol=1e-9, atol=1e-12)
    eps, fd = 1e-6, torch.zeros(K, dtype=torch.float64)
    for i in range(K):
        e = torch.zeros(K, dtype=torch.float64)
        e[i] = eps
        with torch.no_grad():
            fd[i] = (_loss(theta + e, theta_i, samples, rewards, tau) - _loss(theta - e, theta_i, samples, rewards, tau)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
def test_at_reference_gradient_is_mean_baseline_policy_gradient(tau):
    theta_i, _, samples, rewards = _toy(seed=3)
    theta = theta_i.clone().requires_grad_()
    (grad,) = torch.autograd.grad(_loss(theta, theta_i, samples, rewards, tau), theta)
    probs = torch.softmax(theta_i, 0)
    pg = sum((torch.nn.functional.one_hot(y, K).double() - probs) * (r - rewards.mean())
             for y, r in zip(samples, rewards)) / len(samples)
    torch.testing.assert_close(-grad, pg, rtol=1e-9, atol=1e-12)


def test_group_with_equal_rewards_gives_zero_gradient():
    theta_i, _, samples, _ = _toy(seed=5)
    theta = theta_i.clone().requires_grad_()
    for value in (0.0, 1.0):
        rewards = torch.full((len(samples),), value, dtype=torch.float64)
        (grad,) = torch.autograd.grad(_loss(theta, theta_i, samples, rewards, 1.0), theta)
        assert torch.count_nonzero(grad) == 0


def test_group_mean_advantages_per_group():
    adv = group_mean_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), 3)
    torch.testing.assert_close(adv, torch.tensor([2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3]))
    with pytest.raises(ValueError):
        group_mean_advantages(torch.ones(5), 3)


def test_masked_positions_get_zero_gradient():
    logprobs = torch.randn(3, 7, dtype=torch.float64).requires_grad_()
    ref = logprobs.detach() + 0.1 * torch.randn(3, 7, dtype=torch.float64)
    mask = torch.zeros(3, 7, dtype=torch.float64)
    mask[:, 2:5] = 1.0
    loss, _ = k15_loss(logprobs, ref, mask, torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64), tau=0.7)
    loss.backward()
    assert torch.all(logprobs.grad[mask == 0] == 0)
    assert torch.all(logprobs.grad[:2][mask[:2] == 1] != 0)
    logprobs.grad = None
    sft_loss(logprobs, mask)[0].backward()
    assert torch.all(logprobs.grad[mask == 0] == 0)


def test_sequence_logprob_is_sum_over_response_tokens_with_padding(tiny_model_dir):
    model, tok = load_policy(tiny_model_dir)
    model.eval()
    prompts = [tok("12+3=?\n")["input_ids"], tok("4-1-2=?\n")["input_ids"]]
    responses = [tok("answer: \\boxed{15}", add_special_tokens=False)["input_ids"], tok("x", add_special_tokens=False)["input_ids"]]
    ids, attn, mask = pad_batch(prompts, responses, tok.pad_token_id)
    with torch.no_grad():
        batched, _ = token_logprobs(model, ids, attn, precision="fp32")
        seq = (batched * mask).sum(1)
        for row, (p, r) in enumerate(zip(prompts, responses)):
            alone = torch.tensor([p + r])
            logits = model(alone).logits[0, :-1].float().log_softmax(-1)
            expected = logits[torch.arange(len(p) - 1, len(p) + len(r) - 1), torch.tensor(r)].sum()
            torch.testing.assert_close(seq[row], expected, rtol=1e-4, atol=1e-4)
    assert mask.sum().item() == sum(len(r) for r in responses)


def test_leave_one_out_advantages_sum_to_zero_and_scale_the_mean_baseline():
    # [1, 0, 0]: 1 - mean(0, 0) = 1, 0 - mean(1, 0) = -0.5, -0.5
    torch.testing.assert_close(leave_one_out_advantages(torch.tensor([1.0, 0.0, 0.0]), 3),
                               torch.tensor([1.0, -0.5, -0.5]))
    rewards = torch.rand(5 * 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    adv = leave_one_out_advantages(rewards, 8)
    torch.testing.assert_close(adv.view(5, 8).sum(1), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(adv, 8 / 7 * group_mean_advantages(rewards, 8))
    with pytest.raises(ValueError):
        leave_one_out_advantages(torch.ones(5), 3)


def test_rloo_gradient_is_k_over_k_minus_1_times_k15_gradient_at_reference():
    theta_i, _, samples, rewards = _toy(seed=7)
    k = len(samples)
    theta = theta_i.clone().requires_grad_()
    logp = torch.log_softmax(theta, 0)[samples].unsqueeze(1)
    ref = logp.detach()
    loss, _ = reinforce_loss(logp, ref, torch.ones_like(logp), leave_one_out_advantages(rewards, k))
    (grad,) = torch.autograd.grad(loss, theta)
    (k15_grad,) = torch.autograd.grad(_loss(theta, theta_i, samples, rewards, 1.0), theta)
    torch.testing.assert_close(grad, k / (k - 1) * k15_grad, rtol=1e-9, atol=1e-12)


def test_group_normalized_advantages():
    # [1, 0, 0, 0]: mean 0.25, sample std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5 -> [1.5, -0.5, -0.5, -0.5]
    adv = group_normalized_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64), 4)
    torch.testing.assert_close(adv, torch.tensor([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0], dtype=torch.float64),
                               rtol=1e-5, atol=0)


def _grpo_grad(ratio: float, advantage: float, clip_eps: float = 0.2):
    """d loss / d logprob of one response of 2 tokens, both at the given ratio to the rollout policy."""
    ref = torch.log(torch.tensor([[0.3, 0.4]], dtype=torch.float64))
    logprobs = (ref + torch.log(torch.tensor(ratio, dtype=torch.float64))).requires_grad_()
    loss, stats = grpo_loss(logprobs, ref, torch.ones_like(ref), torch.tensor([advantage], dtype=torch.float64), clip_eps)
    loss.backward()
    return logprobs.grad[0], stats


@pytest.mark.parametrize("ratio, advantage, clipped", [
    (1.5, 1.0, True),    # pushed up past 1 + eps: no further push
    (0.5, 1.0, False),   # below 1 - eps with A > 0: the unclipped term is smaller, gradient stays
    (0.5, -1.0, True),   # pushed down past 1 - eps: no further push
    (1.5, -1.0, False),  # above 1 + eps with A < 0: gradient stays and pulls the ratio back
    (1.1, 1.0, False),   # inside the range
    (0.9, -1.0, False),
])
def test_grpo_clip_zeroes_gradient_only_outside_range_in_advantage_direction(ratio, advantage, clipped):
    grad, stats = _grpo_grad(ratio, advantage)
    if clipped:
        assert torch.count_nonzero(grad) == 0
    else:
        # loss = -1/2 sum_t ratio_t * A, and d ratio_t / d logprob_t = ratio_t
        torch.testing.assert_close(grad, torch.full((2,), -advantage * ratio / 2, dtype=torch.float64))
    assert stats["clip_fraction"] == (1.0 if abs(ratio - 1) > 0.2 else 0.0)


def test_rest_fits_correct_responses_only():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    weights = correct_only_advantages(rewards, 2)
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.0]
    logprobs = torch.randn(4, 5, dtype=torch.float64).requires_grad_()
    mask = torch.ones(4, 5, dtype=torch.float64)
    mask[2, 3:] = 0.0  # shorter response
    loss, _ = reinforce_loss(logprobs, logprobs.detach(), mask, weights.double())
    loss.backward()
    assert torch.count_nonzero(logprobs.grad[[1, 3]]) == 0  # wrong responses: exactly zero gradient
    # correct ones: gradient of -1/B sum_t log p on every response token (B = 4), as SFT with summed tokens
    torch.testing.assert_close(logprobs.grad[[0, 2]], -mask[[0, 2]] / 4)
def test_dpo_loss_hand_worked_value_and_gradient():
    chosen = torch.tensor([-1.0, -3.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-2.0, -1.0], dtype=torch.float64, requires_grad=True)
    ref_chosen = torch.tensor([-1.5, -3.0], dtype=torch.float64)
    ref_rejected = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    # pair 0: margin = 0.5 * ((-1 + 1.5) - (-2 + 1.5)) = 0.5 -> -log sigmoid(0.5) = log(1 + e^-0.5) = 0.474077
    # pair 1: policy == reference -> margin 0 -> log 2 = 0.693147; mean = 0.583612
    loss, metrics = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
    assert loss.item() == pytest.approx(0.583612, abs=1e-6)
    assert metrics["margin"] == pytest.approx(0.25) and metrics["pair_accuracy"] == pytest.approx(0.5)
    loss.backward()
    # d loss / d chosen_i = -beta * sigmoid(-margin_i) / B: sigmoid(-0.5) = 0.377541, sigmoid(0) = 0.5
    torch.testing.assert_close(chosen.grad, torch.tensor([-0.5 * 0.377541 / 2, -0.5 * 0.5 / 2], dtype=torch.float64),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(rejected.grad, -chosen.grad)  # descent lowers the rejected, raises the chosen
    # micro-batches with the whole batch's pair count add up to the full-batch loss
    halves = sum(dpo_loss(chosen[i:i + 1], rejected[i:i + 1], ref_chosen[i:i + 1], ref_rejected[i:i + 1], 0.5,
                          num_pairs=2)[0] for i in range(2))
    assert halves.item() == pytest.approx(loss.item())


def test_dpo_loss_chosen_nll_term_value_and_gradient():
    chosen = torch.tensor([-1.0, -3.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-2.0, -1.0], dtype=torch.float64, requires_grad=True)
    ref_chosen = torch.tensor([-1.5, -3.0], dtype=torch.float64)
    ref_rejected = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    tokens = torch.tensor([2.0, 3.0], dtype=torch.float64)
    # DPO part as above: 0.583612; per-token NLL of the chosen: 1/2 and 3/3 -> mean 0.75; weight 0.5 -> + 0.375
    loss, metrics = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, chosen_tokens=tokens,
                             nll_weight=0.5)
    assert loss.item() == pytest.approx(0.583612 + 0.375, abs=1e-6)
    assert metrics["chosen_nll"] == pytest.approx(0.75)
    loss.backward()
    # the NLL term adds -nll_weight / (|y_w| B) to each chosen gradient; the rejected gradient is unchanged
    torch.testing.assert_close(chosen.grad, torch.tensor([-0.5 * 0.377541 / 2 - 0.5 / (2 * 2),
                                                          -0.5 * 0.5 / 2 - 0.5 / (3 * 2)], dtype=torch.float64),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(rejected.grad, torch.tensor([0.5 * 0.377541 / 2, 0.5 * 0.5 / 2], dtype=torch.float64),
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="chosen_tokens"):
        dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, nll_weight=1.0)
