"""The RL loop on a toy-sized model: weights move, resume reproduces an uninterrupted run, errors are clear."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mirrorl.rl as rl_module
from mirrorl.algorithms.length_penalty import length_rewards
from mirrorl.config import load_config
from mirrorl.models.loading import load_policy
from mirrorl.rewards.math import Verdict
from mirrorl.rl import train_rl
from mirrorl.sft import TrainingError
from mirrorl.tasks.datasets import build_datasets

TINY = ["rl.iterations=4", "rl.prompts_per_iteration=4", "rl.samples_per_prompt=4", "rl.max_response_tokens=16",
        "rl.eval_every=2", "rl.save_every=2", "rl.minibatches=2", "rl.micro_batch_size=8",
        "rl.lr=1e-2", "rl.lr_warmup_iterations=3", "rl.epochs=2", "eval.max_response_tokens=16", "task.heldout_size=8", "task.dev_size=4",
        "task.rl_prompts=40", "task.warmup_size=8", "run.precision=fp32"]


def varied_reward(problem, response):
    """A stand-in reward with variance for an untrained model: responses containing '1' are 'correct'."""
    ok = "1" in response
    return Verdict(ok, "equal" if ok else "not_equal", None)


def _setup(tiny_model_dir, out, extra=()):
    cfg = load_config(None, TINY + [f"model.path={tiny_model_dir}", f"run.out_dir={out}", *extra])
    return cfg, build_datasets(cfg.task, cfg.run.seed)


def _rl_records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["stage"] == "rl" and json.loads(line)["step"] > 0]


def _comparable(records):
    timing = ("train_seconds", "rollout_tokens_per_s", "weight_sync_gb_per_s")
    return [{k: v for k, v in r.items() if not k.startswith("time/") and k not in timing}
            for r in records]


def test_weights_change_and_resume_matches_straight_run(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg, data = _setup(tiny_model_dir, tmp_path / "straight")
    straight = train_rl(cfg, data, tmp_path / "straight")
    assert [r["lr"] for r in _rl_records(tmp_path / "straight")] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 1e-2])
    start, _ = load_policy(tiny_model_dir)
    end, _ = load_policy(tmp_path / "straight" / "final")
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))

    half, data = _setup(tiny_model_dir, tmp_path / "resumed", ["rl.iterations=2"])
    train_rl(half, data, tmp_path / "resumed")
    full, _ = _setup(tiny_model_dir, tmp_path / "resumed")
    resumed = train_rl(full, data, tmp_path / "resumed", resume=True)
    assert _comparable(_rl_records(tmp_path / "resumed")) == _comparable(_rl_records(tmp_path / "straight"))
    assert resumed["heldout_accuracy"] == straight["heldout_accuracy"]
    assert len(_rl_records(tmp_path / "resumed")) == 4
    a, _ = load_policy(tmp_path / "resumed" / "final")
    for x, y in zip(end.state_dict().values(), a.state_dict().values()):
        torch.testing.assert_close(x, y)


def test_nan_loss_names_iteration_and_keeps_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg, data = _setup(tiny_model_dir, tmp_path / "run", ["rl.iterations=2", "rl.save_every=1", "rl.epochs=1"])
    advantage_fn, real_loss, hyper = rl_module.LOSSES["k15"]
    calls = {"n": 0}

    def nan_on_second_iteration(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] > 2 else (loss, stats)

    monkeypatch.setitem(rl_module.LOSSES, "k15", (advantage_fn, nan_on_second_iteration, hyper))
    with pytest.raises(TrainingError, match="RL iteration 2: loss is nan.*iter_000001"):
        train_rl(cfg, data, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "iter_000001" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoints" / "iter_000002").exists()


DRIVER = """
import sys, mirrorl.rl as rl
from mirrorl.algorithms.length_penalty import length_rewards
from mirrorl.config import load_config
from mirrorl.tasks.datasets import build_datasets
from mirrorl.rewards.math import Verdict
rl.score = lambda p, r: Verdict("1" in r, "equal", None)
cfg = load_config(None, sys.argv[3:])
rl.train_rl(cfg, build_datasets(cfg.task, cfg.run.seed), sys.argv[1], resume=sys.argv[2] == "resume")
"""


def straight_and_killed_runs(tmp_path, args: list[str]) -> None:
    """`DRIVER` runs RL with `args` straight into tmp_path/straight, and into tmp_path/killed until its
    second checkpoint, where it gets SIGKILL, then `--resume`s it there to the end."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run([sys.executable, driver, tmp_path / "straight", "fresh", *args], check=True, env=env)
    victim = subprocess.Popen([sys.executable, driver, tmp_path / "killed", "fresh", *args], env=env)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    while not (latest.exists() and latest.read_text().strip() >= "iter_000002"):
        assert victim.poll() is None, "run ended before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    subprocess.run([sys.executable, driver, tmp_path / "killed", "resume", *args], check=True, env=env)


@pytest.mark.slow
def test_kill_9_then_resume_matches_straight_run(tiny_model_dir, tmp_path):
    straight_and_killed_runs(tmp_path, TINY + [f"model.path={tiny_model_dir}", "rl.iterations=6", "rl.save_every=1"])
    assert _comparable(_rl_records(tmp_path / "killed")) == _comparable(_rl_records(tmp_path / "straight"))


@pytest.mark.parametrize("loss", ["grpo", "rloo", "rest"])
def test_baseline_losses_train(tiny_model_dir, tmp_path, monkeypatch, loss):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg, data = _setup(tiny_model_dir, tmp_path / loss, ["rl.iterations=1", f"rl.loss={loss}"])
    train_rl(cfg, data, tmp_path / loss)
    start, _ = load_policy(tiny_model_dir)
    end, _ = load_policy(tmp_path / loss / "final")
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))
    assert _rl_records(tmp_path / loss)[0]["informative_groups"] > 0


def test_sgd_optimizer_trains_without_adam_state(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg, data = _setup(tiny_model_dir, tmp_path / "sgd", ["rl.iterations=1", "rl.optimizer=sgd", "rl.lr=0.5"])
    train_rl(cfg, data, tmp_path / "sgd")
    start, _ = load_policy(tiny_model_dir)
    end, _ = load_policy(tmp_path / "sgd" / "final")
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))
    state = torch.load(tmp_path / "sgd" / "checkpoints" / "iter_000001" / "trainer_state.pt", weights_only=False)
    assert not any("exp_avg" in s for s in state["optimizer"]["state"].values())


def test_loop_switches_the_penalty_on_after_warmup(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    seen = {"rewards": [], "bonus": []}
    advantage_fn, loss_fn, hyper = rl_module.LOSSES["k15"]

    def recording_advantages(rewards, k):
        seen["rewards"].append(rewards.clone())
        return advantage_fn(rewards, k)

    def recording_length_rewards(*args):
        seen["bonus"].append(length_rewards(*args))
        return seen["bonus"][-1]

    monkeypatch.setitem(rl_module.LOSSES, "k15", (recording_advantages, loss_fn, hyper))
    monkeypatch.setattr(rl_module, "length_rewards", recording_length_rewards)
    cfg, data = _setup(tiny_model_dir, tmp_path / "run", ["rl.iterations=3", "rl.length_penalty_weight=0.4",
                                                          "rl.length_penalty_warmup=1", "rl.max_response_tokens=12"])
    train_rl(cfg, data, tmp_path / "run")
    first, *later = seen["rewards"]
    assert set(first.tolist()) <= {0.0, 1.0}  # warm-up: task rewards only
    for rewards, bonus in zip(later, seen["bonus"][1:]):
        task = rewards.round()  # |0.4 * len_reward| <= 0.2, so rounding recovers the 0/1 task reward
        assert set(task.tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(rewards, task + 0.4 * bonus)
    assert any(b.abs().sum() > 0 for b in seen["bonus"][1:])  # lengths differed, so the penalty acted
    logged = [r["length_reward"] for r in _rl_records(tmp_path / "run")]
    assert logged == pytest.approx([b.mean().item() for b in seen["bonus"]])


def test_loop_stopped_responses_score_zero_minus_the_repeat_penalty(tiny_model_dir):
    from mirrorl.rl import score_finished, shaped_rewards
    from mirrorl.rollout.replay_buffer import Group, Trajectory
    from mirrorl.tasks.problem import Problem

    _, tok = load_policy(tiny_model_dir)
    answer = tok("\\boxed{4}\\boxed{4}\\boxed{4}", add_special_tokens=False)["input_ids"]
    trajectories = [Trajectory([1], answer, [0] * len(answer), reason) for reason in ("stop", "repeat", "length", "stop")]
    score_finished([Group(0, trajectories)], [Problem("p", "2+2=?\n", "4")], tok)
    assert [(t.reward, t.verdict) for t in trajectories][1:3] == [(0.0, "repeat"), (0.0, "truncated")]
    assert trajectories[0].reward == 1.0
    cfg = load_config(None, ["rl.repeat_window_tokens=64", "rl.repeat_penalty=0.5"]).rl
    rewards, _ = shaped_rewards(trajectories, 4, cfg, iteration=0)
    assert rewards.tolist() == [1.0, -0.5, 0.0, 1.0]


EVERY_FEATURE = ["rl.partial_rollout_tokens=6", "rl.sampler=prioritized", "rl.length_penalty_weight=0.2",
                 "rl.repeat_window_tokens=8", "rl.repeat_max_period_tokens=4", "rl.repeat_penalty=0.1",
                 "rl.reference_logprobs=engine", "rl.iterations=5"]


def test_partial_rollouts_and_samplers_resume_like_a_straight_run(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg, data = _setup(tiny_model_dir, tmp_path / "straight", EVERY_FEATURE)
    train_rl(cfg, data, tmp_path / "straight")
    records = _rl_records(tmp_path / "straight")
    assert records[0]["buffer_groups"] > 0 and "reward" not in records[0]  # 16 tokens take up to 3 iterations
    assert sum(r["rollout_tokens"] for r in records) > 0 and any(r.get("informative_groups", 0) > 0 for r in records)

    half, data = _setup(tiny_model_dir, tmp_path / "resumed", EVERY_FEATURE + ["rl.iterations=2"])
    train_rl(half, data, tmp_path / "resumed")
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "iter_000002" / "trainer_state.pt", weights_only=False)
    assert state["replay_buffer"]["groups"] and any(s != 0.5 for s in state["sampler"]["success"])
    full, _ = _setup(tiny_model_dir, tmp_path / "resumed", EVERY_FEATURE)
    train_rl(full, data, tmp_path / "resumed", resume=True)
    assert _comparable(_rl_records(tmp_path / "resumed")) == _comparable(records)
