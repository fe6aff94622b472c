"""The update step: how a minibatch is cut into micro-batches (length-sorted) changes no weight."""

import pytest
import torch

from mirrorl.config import load_config
from mirrorl.models.loading import load_policy
from mirrorl.rl import length_sorted, policy_update
from mirrorl.rollout.replay_buffer import Trajectory


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
