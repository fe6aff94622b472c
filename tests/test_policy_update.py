"""The update step: how a minibatch is cut into micro-batches (length-sorted) changes no weight; the
reference log-probs can come from the rollout engine instead of a forward pass."""

import pytest
import torch

from mirrorl import rl
from mirrorl.config import ConfigError, load_config
from mirrorl.models.loading import load_policy
from mirrorl.rl import length_sorted, policy_update
from mirrorl.rollout.replay_buffer import Trajectory
from mirrorl.sft import TrainingError


def _batch(n: int = 8) -> list[Trajectory]:
    gen = torch.Generator().manual_seed(0)
    batch = []
    for j in range(n):  # responses of 3..24 tokens, in no length order
        length = 3 + (j * 7) % 22
        response = torch.randint(4, 40, (length,), generator=gen).tolist()
        batch.append(Trajectory([1, 10, 11, 12], response, [0] * length, "stop", float(j % 2)))
    return batch


@pytest.mark.parametrize("loss", ["k15", "grpo", "rloo"])
def test_micro_batch_split_changes_no_weight(tiny_model_dir, loss):
    batch = _batch()
    advantages = torch.tensor([t.reward for t in batch]) - 0.5
    weights = []
    for micro in (1, 3, len(batch)):
        cfg = load_config(None, [f"rl.micro_batch_size={micro}", f"rl.loss={loss}", "rl.epochs=2",
                                 "rl.minibatches=2", "run.precision=fp32"])
        model, _ = load_policy(tiny_model_dir)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        policy_update(model, optimizer, batch, advantages, cfg, torch.Generator().manual_seed(1), len(batch), 0)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    start = torch.cat([p.detach().flatten() for p in load_policy(tiny_model_dir)[0].parameters()])
    assert not torch.allclose(weights[0], start)  # the update moved the weights
    for w in weights[1:]:
        torch.testing.assert_close(w, weights[0], rtol=1e-4, atol=1e-6)


def test_length_sorted_orders_by_prompt_plus_response():
    batch = _batch()
    order = length_sorted(batch, [5, 0, 3, 1])
    lengths = [len(batch[i].prompt_ids) + len(batch[i].response_ids) for i in order]
    assert sorted(order) == [0, 1, 3, 5] and lengths == sorted(lengths)


def _weights_after_update(model_dir, batch, overrides):
    cfg = load_config(None, ["rl.loss=k15", "rl.minibatches=2", "run.precision=fp32", "rl.micro_batch_size=4",
                             *overrides])
    model, _ = load_policy(model_dir)
    advantages = torch.tensor([t.reward for t in batch]) - 0.5
    policy_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, advantages, cfg,
                  torch.Generator().manual_seed(1), len(batch), 0)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_engine_reference_logprobs_replace_the_reference_pass(tiny_model_dir, monkeypatch):
    batch = _batch()
    cfg = load_config(None, ["run.precision=fp32"])
    for t, lp in zip(batch, rl.reference_logprobs(load_policy(tiny_model_dir)[0], batch, cfg)):
        t.token_logprobs = lp.tolist()  # what an engine computing exactly like the trainer returns
    with_pass = _weights_after_update(tiny_model_dir, batch, [])

    def no_pass(*args):
        raise AssertionError("the reference pass ran")
    monkeypatch.setattr(rl, "reference_logprobs", no_pass)
    from_engine = _weights_after_update(tiny_model_dir, batch, ["rl.reference_logprobs=engine"])
    torch.testing.assert_close(from_engine, with_pass, rtol=1e-4, atol=1e-6)

    for t in batch:  # the engine's values are what the tau term compares with
        t.token_logprobs = [lp - 0.5 for lp in t.token_logprobs]
    assert not torch.allclose(_weights_after_update(tiny_model_dir, batch, ["rl.reference_logprobs=engine"]),
                              with_pass, rtol=1e-4, atol=1e-6)

    batch[3].token_logprobs[1] = float("nan")
    with pytest.raises(TrainingError, match="no log-prob"):
        _weights_after_update(tiny_model_dir, batch, ["rl.reference_logprobs=engine"])


def test_engine_reference_logprobs_leave_stale_tokens_out():
    batch = _batch(2)
    batch[0].token_versions = [0, 0] + [1] * (len(batch[0].response_ids) - 2)
    batch[0].token_logprobs = [float("nan"), float("nan")] + [-0.25] * (len(batch[0].response_ids) - 2)
    batch[1].token_logprobs = [-1.0] * len(batch[1].response_ids)
    batch[1].token_versions = [1] * len(batch[1].response_ids)
    ref = rl.engine_logprobs(batch, version=1)
    assert ref[0][:2].tolist() == [0.0, 0.0] and (ref[0][2:] == -0.25).all() and (ref[1] == -1.0).all()
    with pytest.raises(ConfigError, match="train_stale_tokens"):
        load_config(None, ["rl.reference_logprobs=engine", "rl.train_stale_tokens=true"])
