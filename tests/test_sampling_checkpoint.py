import os

import torch

from mirrorl.models.loading import load_policy
from mirrorl.sampling import UniformSampler
from mirrorl.trainer.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint


def test_uniform_sampler_covers_pool_and_resumes():
    s = UniformSampler(10, seed=0)
    first = s.sample(6) + s.sample(4)
    assert sorted(first) == list(range(10))  # one pass = every prompt once
    state = s.state_dict()
    expected = s.sample(7)
    restored = UniformSampler(10, seed=123)
    restored.load_state_dict(state)
    assert restored.sample(7) == expected


def test_checkpoint_is_atomic_and_pruned(tiny_model_dir, tmp_path):
    model, tok = load_policy(tiny_model_dir)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, tok, {"iteration": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["iter_000002", "iter_000003", "latest"]
    assert load_trainer_state(latest_checkpoint(tmp_path))["iteration"] == 3
    # a kill during the next write leaves a hidden temp folder; the previous checkpoint stays the latest
    os.makedirs(tmp_path / "checkpoints" / ".tmp_iter_000004")
    assert latest_checkpoint(tmp_path).name == "iter_000003"
    reloaded, _ = load_policy(latest_checkpoint(tmp_path))
    for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)
