"""Partial rollouts (report section 2.6.2): segments continue exactly, versions are recorded, stale
segments get no gradient, rewards are computed once, and the buffer survives a checkpoint."""

import io

import pytest
import torch

import mirrorl.rl as rl_module
from mirrorl.algorithms.losses import grpo_loss, k15_loss, reinforce_loss
from mirrorl.config import load_config
from mirrorl.models.loading import load_policy
from mirrorl.rewards.math import Verdict
from mirrorl.rl import _fresh_mask, _logprobs, score_finished
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.rollout.replay_buffer import Group, ReplayBuffer, Trajectory, extend_rollouts
from mirrorl.tasks.problem import Problem

TEXTS = ["1+2=?\n", "13+5-2=?\n", "7=?\n", "99-9+1-3=?\n", "5*5=?\n", "8-1=?\n"]


@pytest.fixture(scope="module")
def varied(tiny_model_dir):
    """The tiny model with large random weights: its greedy output is varied text that depends on the
    context (at the default init it writes one token over and over), and some rows end early."""
    model, tok = load_policy(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return HFEngine(model, tok.eos_token_id, tok.pad_token_id, precision="fp32"), tok


@pytest.mark.parametrize("repeat_window", [0, 8])
def test_segments_concatenate_to_one_uninterrupted_greedy_generation(varied, repeat_window):
    engine, tok = varied
    prompts = [tok(t)["input_ids"] for t in TEXTS]
    greedy = SamplingParams(temperature=0, max_new_tokens=60, repeat_window_tokens=repeat_window,
                            repeat_max_period_tokens=repeat_window // 2)
    engine.update_weights(None, 0)
    whole = engine.generate(prompts, greedy)
    assert len({s.finish_reason for s in whole}) >= 2  # the check covers rows that stop and rows that run on
    assert len({tuple(s.token_ids[:20]) for s in whole}) == len(whole)

    budget = 7
    trajectories = [Trajectory(p) for p in prompts]
    for version in range(20):
        engine.update_weights(None, version)  # frozen weights, new version number each iteration
        before = [len(t.response_ids) for t in trajectories]
        generated = extend_rollouts(engine, trajectories, greedy, budget, max_response_tokens=60)
        grown = [len(t.response_ids) - b for t, b in zip(trajectories, before)]
        assert generated == sum(grown) and max(grown) <= budget
    for t, s in zip(trajectories, whole):
        assert t.response_ids == s.token_ids  # no token lost, duplicated or regenerated differently
        assert t.finish_reason == s.finish_reason
        assert t.token_versions == [j // budget for j in range(len(t.response_ids))]
        assert t.prompt_ids == s.prompt_ids


def test_responses_end_as_truncated_at_the_overall_cap(varied):
    engine, tok = varied
    trajectories = [Trajectory(tok(t)["input_ids"]) for t in TEXTS[2:5]]  # rows that run past 10 tokens
    sampling = SamplingParams(temperature=0)
    assert [extend_rollouts(engine, trajectories, sampling, 4, 10) for _ in range(4)] == [12, 12, 6, 0]
    assert all(len(t.response_ids) == 10 and t.finish_reason == "length" for t in trajectories)


def test_groups_leave_the_buffer_when_all_k_finished_and_state_round_trips():
    buffer = ReplayBuffer()
    for i in range(3):
        buffer.add(i, [1, 2, i], k=2)
    for j, t in enumerate(buffer.trajectories()):
        t.response_ids, t.token_versions = [5, 6], [0, 1]
        t.finish_reason = None if j in (1, 4) else "stop"  # groups 0 and 2 each wait for one response
    assert buffer.pop_finished()[0].prompt_index == 1
    assert [g.prompt_index for g in buffer.groups] == [0, 2]
    saved = io.BytesIO()
    torch.save(buffer.state_dict(), saved)  # as in a checkpoint
    saved.seek(0)
    restored = ReplayBuffer()
    restored.load_state_dict(torch.load(saved, weights_only=False))
    assert restored.groups == buffer.groups
    restored.groups[0].trajectories[1].finish_reason = "length"
    assert [g.prompt_index for g in restored.pop_finished()] == [0] and len(restored) == 1


def test_rewards_are_computed_once_when_a_response_finishes(tiny_model_dir, monkeypatch):
    _, tok = load_policy(tiny_model_dir)
    calls = []
    monkeypatch.setattr(rl_module, "score", lambda problem, text: calls.append(text) or Verdict(True, "equal", None))
    group = Group(0, [Trajectory([1], tok("ab", add_special_tokens=False)["input_ids"], [0, 0], "stop"),
                      Trajectory([1], [7], [0], None)])
    pool = [Problem("p", "q", "1")]
    score_finished([group], pool, tok)
    assert calls == ["ab"] and group.trajectories[1].reward is None
    group.trajectories[1].response_ids += tok("c", add_special_tokens=False)["input_ids"]
    group.trajectories[1].finish_reason = "stop"
    score_finished([group], pool, tok)
    assert len(calls) == 2 and group.trajectories[0].reward == group.trajectories[1].reward == 1.0


@pytest.mark.parametrize("loss", ["k15", "grpo", "reinforce"])
def test_stale_segments_get_exactly_zero_gradient(tiny_model_dir, loss):
    model, tok = load_policy(tiny_model_dir)
    cfg = load_config(None, ["run.precision=fp32"])
    batch = [Trajectory(tok("1+2=?\n")["input_ids"], list(range(10, 16)), [3, 3, 3, 4, 4, 4], "stop"),
             Trajectory(tok("7=?\n")["input_ids"], list(range(20, 24)), [4, 4, 4, 4], "stop")]
    logprobs, mask, _ = _logprobs(model, batch, cfg)
    fresh = _fresh_mask(batch, mask, version=4)
    assert fresh.sum() == 3 + 4 and mask.sum() == 6 + 4
    ref = logprobs.detach() - 0.1  # a policy that has moved: the log-ratio term is active too
    adv = torch.tensor([0.5, -0.5])
    fn = {"k15": lambda *a: k15_loss(*a, tau=1.0), "grpo": lambda *a: grpo_loss(*a, clip_eps=0.2),
          "reinforce": reinforce_loss}[loss]
    (grad,) = torch.autograd.grad(fn(logprobs, ref, fresh, adv)[0], logprobs)
    stale = (mask == 1) & (fresh == 0)
    assert stale.sum() == 3 and torch.all(grad[stale] == 0)
    assert torch.all(grad[fresh == 1] != 0)
