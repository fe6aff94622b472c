"""The Ray backend on toy models: data-parallel updates equal the single-process one, rollouts use the
weights of their iteration, a killed rollout worker loses no prompt, and Ray runs resume exactly."""

import threading

import pytest
import torch

ray = pytest.importorskip("ray")

import mirrorl.rl as rl_module  # noqa: E402
from mirrorl.config import ConfigError, load_config  # noqa: E402
from mirrorl.distributed.backend import LocalBackend  # noqa: E402
from mirrorl.distributed.ray_backend import RayBackend, _split  # noqa: E402
from mirrorl.models.loading import load_policy  # noqa: E402
from mirrorl.rl import train_rl  # noqa: E402
from mirrorl.rollout.engine import SamplingParams  # noqa: E402
from mirrorl.rollout.replay_buffer import Trajectory  # noqa: E402
from mirrorl.tasks.datasets import build_datasets  # noqa: E402

from test_rl_loop import TINY, _comparable, _rl_records, straight_and_killed_runs, varied_reward  # noqa: E402

# 2 rollout + 2 trainer actors at 0.5 CPU each fit the 4 logical CPUs of the test instance. Every test that
# starts actors takes 30-60 s on 2 busy cores (Ray start-up, one torch import per actor), hence `slow`.
RAY = ["distributed.backend=ray", "distributed.rollout_workers=2", "distributed.trainer_workers=2",
       "distributed.cpus_per_worker=0.5", "distributed.bucket_mb=0.05"]


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _cfg(tiny_model_dir, extra=()):
    return load_config(None, TINY + RAY + [f"model.path={tiny_model_dir}", *extra])


def test_workers_that_do_not_fit_the_cluster_are_a_config_error(tiny_model_dir, ray_instance):
    with pytest.raises(ConfigError, match="4 workers x 2 CPU do not fit the Ray cluster's 4 CPU"):
        RayBackend(_cfg(tiny_model_dir, ["distributed.cpus_per_worker=2"]), tiny_model_dir)


def test_split_is_contiguous_and_balanced():
    assert _split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert _split([4], 2) == [[4], []]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_data_parallel_update_equals_single_process(tiny_model_dir, tmp_path, ray_instance, strategy):
    # 11 trajectories, minibatches of 5-6, micro-batches of 2: uneven shards and a rank that runs out of
    # data first; two epochs, so the tau term and the reference log-probs are exercised too.
    cfg = _cfg(tiny_model_dir, ["rl.micro_batch_size=2", "rl.epochs=2", "rl.minibatches=2", "rl.lr=1e-2",
                                "rl.prompts_per_iteration=11", "rl.samples_per_prompt=2",
                                f"distributed.trainer_strategy={strategy}"])
    gen = torch.Generator().manual_seed(0)
    batch = [Trajectory(torch.randint(4, 60, (5,), generator=gen).tolist(),
                        torch.randint(4, 60, (3 + i % 4,), generator=gen).tolist(), [0] * (3 + i % 4), "stop")
             for i in range(11)]
    advantages = torch.randn(11, generator=gen)
    local = LocalBackend(cfg, tiny_model_dir)
    local_stats = local.update(batch, advantages, 11 / 2, 0, 1e-2)
    local.save_final(tmp_path / "local")
    backend = RayBackend(cfg, tiny_model_dir)
    try:
        ray_stats = backend.update(batch, advantages, 11 / 2, 0, 1e-2)
        backend.save_final(tmp_path / "ray")
    finally:
        backend.close()
    # entropy is a token mean per micro-batch, so it depends on how the batch was split; the rest does not
    assert ray_stats.pop("entropy") == pytest.approx(local_stats.pop("entropy"), rel=1e-3)
    assert ray_stats == pytest.approx(local_stats, rel=1e-4, abs=1e-6)
    start, _ = load_policy(tiny_model_dir)
    a, _ = load_policy(tmp_path / "local")
    b, _ = load_policy(tmp_path / "ray")
    assert any(not torch.equal(x, y) for x, y in zip(start.parameters(), a.parameters()))
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_rollouts_use_the_weights_of_their_iteration(tiny_model_dir, ray_instance):
    backend = RayBackend(_cfg(tiny_model_dir), tiny_model_dir)
    try:
        pool, trainer = backend.pool, backend.trainers[0]
        before = ray.get(trainer.weights_digest.remote())
        assert ray.get([w.weights_digest.remote() for w in pool.workers]) == [before, before]
        prompts = [[1, 10 + i] for i in range(6)]
        sampling = SamplingParams(max_new_tokens=4)
        for version in (1, 2):
            segments = pool.generate(prompts, sampling)
            batch = [Trajectory(s.prompt_ids, s.token_ids, [s.policy_version] * len(s.token_ids), "stop")
                     for s in segments]
            backend.update(batch, torch.linspace(-1, 1, 6), 3.0, version - 1, 0.05)
            stats = backend.push_weights(version)
            after = ray.get(trainer.weights_digest.remote())
            assert after != before and stats["weight_sync_bytes"] > 0
            assert ray.get([w.weights_digest.remote() for w in pool.workers]) == [after, after]
            assert {s.policy_version for s in pool.generate(prompts, sampling)} == {version}
            before = after
        pool.policy_version = 7  # the master expects weights the workers do not have
        with pytest.raises(RuntimeError, match="version 2, expected 7"):
            pool.generate(prompts, sampling)
    finally:
        backend.close()


@pytest.mark.slow
def test_killed_rollout_worker_loses_no_prompt_and_rejoins(tiny_model_dir, ray_instance):
    cfg = _cfg(tiny_model_dir, ["distributed.rollout_workers=3", "distributed.max_restarts=1",
                                "distributed.cpus_per_worker=0.4"])
    backend = RayBackend(cfg, tiny_model_dir)
    try:
        pool = backend.pool
        prompts = [[1, 4 + i % 50, 4 + i // 50] for i in range(240)]  # all different
        victim = pool.workers[0]
        killer = threading.Timer(0.2, lambda: ray.kill(victim, no_restart=False))  # Ray restarts it; a kill before
        # its call starts fails that call just the same, so firing early keeps the test independent of machine speed
        killer.start()
        segments = pool.generate(prompts, SamplingParams(max_new_tokens=200))
        killer.join()
        assert pool.alive == [False, True, True]
        assert pool.reissued_prompts == 80  # worker 0's whole shard went to the two others
        assert [s.prompt_ids for s in segments] == prompts  # every prompt back, once, in order
        assert all(s.token_ids for s in segments)
        # the restarted worker rejoins at the next weight push, with the pushed weights
        backend.update([Trajectory(s.prompt_ids, s.token_ids, [0] * len(s.token_ids), "stop") for s in segments[:4]],
                       torch.tensor([1.0, -1.0, 1.0, -1.0]), 2.0, 0, 0.05)
        backend.push_weights(1)
        assert pool.alive == [True, True, True]
        expected = ray.get(backend.trainers[0].weights_digest.remote())
        assert ray.get([w.weights_digest.remote() for w in pool.workers]) == [expected] * 3
        assert {s.policy_version for s in pool.generate(prompts[:6], SamplingParams(max_new_tokens=2))} == {1}
    finally:
        backend.close()


@pytest.mark.slow
def test_ray_run_trains_and_resumes_like_a_straight_run(tiny_model_dir, tmp_path, monkeypatch, ray_instance):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    data = build_datasets(_cfg(tiny_model_dir).task, 0)
    train_rl(_cfg(tiny_model_dir), data, tmp_path / "straight")
    records = _rl_records(tmp_path / "straight")
    assert len(records) == 4 and all(r["weight_sync_bytes"] > 0 for r in records)
    assert any(r["informative_groups"] > 0 for r in records)
    start, _ = load_policy(tiny_model_dir)
    end, _ = load_policy(tmp_path / "straight" / "final")
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), end.parameters()))

    train_rl(_cfg(tiny_model_dir, ["rl.iterations=2"]), data, tmp_path / "resumed")
    train_rl(_cfg(tiny_model_dir), data, tmp_path / "resumed", resume=True)
    assert _comparable(_rl_records(tmp_path / "resumed")) == _comparable(records)


@pytest.mark.slow
def test_kill_9_then_resume_with_ray(tiny_model_dir, tmp_path):
    """The master killed with SIGKILL mid-run; --resume on a fresh Ray instance logs what a straight run logs."""
    straight_and_killed_runs(tmp_path, TINY + RAY + [f"model.path={tiny_model_dir}", "rl.iterations=5",
                                                     "rl.save_every=1", "distributed.num_cpus=4"])
    assert _comparable(_rl_records(tmp_path / "killed")) == _comparable(_rl_records(tmp_path / "straight"))
