"""Code problems in RL: HumanEval/MBPP rows load as code problems, their reward runs the tests in the
sandbox, and user reward functions plug in by dotted path."""

import doctest
import json
from pathlib import Path

import pytest
from conftest import shared_data

import mirrorl.rewards.code as code_reward
import mirrorl.rl as rl_module
import mirrorl.tasks.code
from mirrorl.config import ConfigError, load_config
from mirrorl.rewards import score
from mirrorl.rewards.custom import custom_rewards, load_reward_fn
from mirrorl.rl import train_rl
from mirrorl.tasks.datasets import build_datasets
from mirrorl.tasks.jsonl import load_problems
from mirrorl.tasks.problem import DataError


def test_doctests():
    assert doctest.testmod(mirrorl.tasks.code).failed == 0


def test_humaneval_and_mbpp_load_as_code_problems():
    humaneval = load_problems(shared_data("humaneval", "HumanEval.jsonl"))
    mbpp = load_problems(shared_data("mbpp", "mbpp.jsonl"))
    assert len(humaneval) == 164 and len(mbpp) == 974
    assert {p.kind for p in humaneval + mbpp} == {"code"}
    first = humaneval[0]
    assert first.id == "HumanEval/0" and "def has_close_elements" in first.prompt and "```python" in first.prompt
    assert first.meta["tests"][0].rstrip().endswith("check(has_close_elements)")
    assert mbpp[0].meta["tests"][0] in mbpp[0].prompt  # the first test shows the signature
    assert all(p.meta["entry_point"] for p in mbpp[:50])


def test_mbpp_row_without_tests_is_a_data_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"task_id": 1, "text": "Write f.", "code": "", "test_list": []}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl line 1: field 'test_list'"):
        load_problems(path)


@pytest.fixture
def humaneval(sandbox, monkeypatch):
    monkeypatch.setattr(code_reward, "_client", sandbox)  # score() uses the test session's service
    rows = [json.loads(line) for line in open(shared_data("humaneval", "HumanEval.jsonl"))][:8]
    return rows, load_problems(shared_data("humaneval", "HumanEval.jsonl"), limit=8)


def test_reward_runs_the_tests_on_the_code_block(humaneval):
    rows, problems = humaneval
    for row, problem in zip(rows, problems):
        body = f"Sure.\n```python\n{row['canonical_solution']}```\n"
        whole = f"```python\n{row['prompt']}{row['canonical_solution']}```"
        wrong = "```python\n    return None\n```"
        assert score(problem, body).correct, problem.id            # the body after the given signature
        assert score(problem, whole).correct, problem.id           # or the whole function
        verdict = score(problem, wrong)
        assert not verdict.correct and verdict.reason in ("wrong_answer", "runtime_error")
    assert score(problems[0], rows[0]["canonical_solution"]).reason == "no_answer"  # no code block


def length_parity(prompts, completions, **columns):
    assert set(columns) == {"answer", "id", "level", "kind"} and len(prompts) == len(completions)
    return [float(len(c) % 2) for c in completions]


def test_reward_fn_loads_by_dotted_path_and_is_checked():
    assert load_reward_fn("test_code_rewards:length_parity") is length_parity
    assert load_reward_fn("test_code_rewards.length_parity") is length_parity
    for bad, message in [("no_such_module_xyz:f", "cannot import"), ("test_code_rewards:nope", "has no 'nope'"),
                         ("justaname", "not a dotted path")]:
        with pytest.raises(ConfigError, match=message):
            load_reward_fn(bad)
    problems = load_problems(shared_data("gsm8k", "test.jsonl"), limit=2)
    with pytest.raises(ValueError, match="returned 1 rewards for 2"):
        custom_rewards(lambda prompts, completions, **kw: [1.0], problems, ["a", "b"])
    with pytest.raises(ValueError, match="finite numbers"):
        custom_rewards(lambda prompts, completions, **kw: [1.0, float("nan")], problems, ["a", "b"])


def test_rl_loop_uses_the_reward_fn_instead_of_the_verifier(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setattr(rl_module, "score", lambda *a: pytest.fail("the verifier must not score RL rollouts"))
    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"run.out_dir={tmp_path}", "rl.iterations=1",
                             "rl.prompts_per_iteration=4", "rl.samples_per_prompt=4", "rl.max_response_tokens=12",
                             "eval.max_response_tokens=4", "task.heldout_size=4", "task.dev_size=4",
                             "task.rl_prompts=8", "task.warmup_size=4", "run.precision=fp32",
                             "rl.reward_fn=test_code_rewards:length_parity"])
    train_rl(cfg, build_datasets(cfg.task, cfg.run.seed), tmp_path)
    record = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert 0 < record["reward"] < 1 and record["informative_groups"] > 0

