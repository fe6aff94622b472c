"""The chain-of-thought reward model (report section 2.3.5): strict verdict parsing, a stub OpenAI-compatible judge on
loopback (scripted replies, malformed ones included), the cache, rules-then-judge, the local HF path and RL."""

import doctest
import json
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

import mirrorl.rewards.cot_judge
from mirrorl.config import ConfigError, load_config
from mirrorl.models.loading import load_policy
from mirrorl.rewards.cot_judge import (CoTJudge, HFJudge, HTTPJudge, JudgedRewards, JudgeError, parse_verdict)
from mirrorl.rollout.hf import HFEngine
from mirrorl.sandbox.client import free_port
from mirrorl.tasks.problem import Problem


def test_doctests():
    assert doctest.testmod(mirrorl.rewards.cot_judge).failed == 0


@pytest.mark.parametrize("reply, verdict", [
    ('Both equal 1/2.\n{"correct": true}', True),
    ('Different.\n{"correct": false}\n\n', False),
    ('```json\n{"correct": true}\n```', True),
    ('{"correct": true, "notes": {"a": [1, {"b": 2}]}}', True),
    ('{"correct": true}\nWait, I made an error.', None),  # the verdict must end the reply
    ('{"correct": "true"}', None),                          # a string is not a JSON boolean
    ('{"correct": 1}', None),
    ('{"verdict": true}', None),
    ('{"correct": tru', None),                              # cut off
    ('The answer is correct.', None),
    ('', None),
])
def test_parse_verdict_is_strict(reply, verdict):
    assert parse_verdict(reply) is verdict


REPLIES = {"RESP-OK": 'The final answers agree.\n{"correct": true}',
           "RESP-BAD": 'They differ.\n{"correct": false}',
           "RESP-MALFORMED": "Looks right to me. Verdict: correct",
           "RESP-STRING": '{"correct": "yes"}'}


@pytest.fixture(scope="module")
def stub():
    """A scripted OpenAI-compatible judge on loopback; `stub.seen` lists (model, prompt) of every request, and a
    response containing RESP-FLAKY gets an HTTP 500 on its first request."""
    app = FastAPI()
    app.seen, flaky = [], set()

    @app.post("/v1/chat/completions")
    async def complete(body: dict):
        prompt = body["messages"][0]["content"]
        app.seen.append((body["model"], prompt))
        response = prompt.rpartition("Response:\n")[2]
        if "RESP-FLAKY" in response and prompt not in flaky:
            flaky.add(prompt)
            raise HTTPException(500, "try again")
        if "RESP-FORBIDDEN" in response:
            raise HTTPException(403, "no")
        reply = next((r for key, r in REPLIES.items() if key in response),
                     '{"correct": true}' if "1" in response else '{"correct": false}')
        return {"choices": [{"message": {"role": "assistant", "content": reply}}]}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    app.url = f"http://127.0.0.1:{server.config.port}"
    yield app
    server.should_exit = True
    thread.join(timeout=10)


def _judge(stub, tmp_path, name="stub-judge"):
    return CoTJudge(HTTPJudge(stub.url, name, concurrency=4), tmp_path / "cache.jsonl")


def test_http_judge_batches_counts_parse_errors_and_caches(stub, tmp_path):
    stub.seen.clear()
    judge = _judge(stub, tmp_path)
    responses = ["RESP-OK", "RESP-BAD", "RESP-MALFORMED", "RESP-STRING", "RESP-OK", "RESP-FLAKY"]
    verdicts = judge.judge(["What is 1/2?"] * 6, ["0.5"] * 6, responses)
    assert [(v.correct, v.reason) for v in verdicts] == [
        (True, "judge_equal"), (False, "judge_not_equal"), (False, "parse_error"), (False, "parse_error"),
        (True, "judge_equal"), (False, "judge_not_equal")]  # FLAKY: retried after the 500, then judged
    assert len(stub.seen) == 6  # 5 distinct prompts (the repeated one asked once) + 1 retry
    assert all(model == "stub-judge" and "Reference answer:\n0.5" in prompt for model, prompt in stub.seen)
    assert judge.pop_stats() == {"judge/calls": 5, "judge/cache_hits": 1, "judge/parse_errors": 2, "judge/correct": 2}

    again = _judge(stub, tmp_path)  # a new process reading the same cache file
    assert [v.reason for v in again.judge(["What is 1/2?"], ["0.5"], ["RESP-MALFORMED"])] == ["parse_error"]
    assert len(stub.seen) == 6 and again.stats["cache_hits"] == 1
    other = _judge(stub, tmp_path, name="another-judge")  # the judge's name is part of the key
    other.judge(["What is 1/2?"], ["0.5"], ["RESP-OK"])
    assert len(stub.seen) == 7
    cached = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert len(cached) == 6 and sum(row["correct"] is None for row in cached) == 2


def test_http_errors_raise(stub, tmp_path):
    with pytest.raises(JudgeError, match="HTTP 403"):
        _judge(stub, tmp_path).judge(["q"], ["1"], ["RESP-FORBIDDEN"])
    with pytest.raises(JudgeError, match="no answer after 2 tries"):
        CoTJudge(HTTPJudge(f"http://127.0.0.1:{free_port()}", "x", retries=1)).judge(["q"], ["1"], ["r"])


def test_rules_then_judge_asks_only_where_rules_cannot_decide(stub, tmp_path):
    stub.seen.clear()
    math = Problem("m", "What is 1/2?", "1/2")
    countdown = Problem("c", "Make 10 from 2 and 5.", "10", kind="countdown", meta={"numbers": [2, 5]})
    responses = [r"\boxed{0.5} RESP-BAD", "no box RESP-OK", r"\boxed{} RESP-OK", r"\boxed{2} RESP-OK", "2*5 RESP-OK"]
    problems = [math] * 4 + [countdown]
    default = JudgedRewards(_judge(stub, tmp_path), "rules_then_judge")
    assert [(v.correct, v.reason) for v in default(problems, responses)] == [
        (True, "equal"), (False, "no_answer"), (True, "judge_equal"), (False, "not_equal"), (False, "no_answer")]
    assert len(stub.seen) == 1  # only the empty box (a rule parse_error) went to the judge
    overturn = JudgedRewards(_judge(stub, tmp_path), "rules_then_judge", ("parse_error", "not_equal"))
    assert overturn(problems[3:4], responses[3:4])[0].reason == "judge_equal"
    everything = JudgedRewards(_judge(stub, tmp_path), "judge")
    assert [v.reason for v in everything(problems, responses)] == ["judge_not_equal"] + ["judge_equal"] * 3 + [
        "no_answer"]  # countdown stays with its exact checker


def test_local_tiny_judge_gives_parse_errors(tiny_model_dir, tmp_path):
    """Random weights write no JSON verdict: every reply is a counted parse error, never a pass."""
    model, tokenizer = load_policy(tiny_model_dir)
    engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id, batch_size=4)
    judge = CoTJudge(HFJudge(engine, tokenizer, str(tiny_model_dir), temperature=1.0, max_tokens=12),
                     tmp_path / "cache.jsonl")
    verdicts = judge.judge(["1+1=?"] * 3, ["2"] * 3, [r"\boxed{2}", r"\boxed{3}", "two"])
    assert [v.reason for v in verdicts] == ["parse_error"] * 3 and not any(v.correct for v in verdicts)
    assert judge.stats == {"calls": 3, "cache_hits": 0, "parse_errors": 3, "correct": 0}


def test_config_needs_a_judge_and_excludes_reward_fn():
    with pytest.raises(ConfigError, match="needs judge.url and judge.model"):
        load_config(None, ["rl.reward=judge"])
    with pytest.raises(ConfigError, match="needs judge.model"):
        load_config(None, ["rl.reward=rules_then_judge", "judge.backend=hf"])
    with pytest.raises(ConfigError, match="judge.undecided_reasons must be drawn from"):
        load_config(None, ["rl.reward=rules_then_judge", "judge.url=http://x", "judge.model=m",
                           "judge.undecided_reasons=[equal]"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config(None, ["rl.reward=judge", "judge.url=http://x", "judge.model=m", "rl.reward_fn=a:b"])


def test_rl_iteration_rewards_come_from_the_judge(stub, tiny_model_dir, tmp_path, monkeypatch):
    from mirrorl.rl import train_rl
    from mirrorl.tasks.datasets import build_datasets
    stub.seen.clear()
    cfg = load_config(None, [f"model.path={tiny_model_dir}", "rl.iterations=1", "rl.prompts_per_iteration=4",
                             "rl.samples_per_prompt=4", "rl.max_response_tokens=4", "rl.minibatches=1",
                             "eval.max_response_tokens=4", "task.heldout_size=4", "task.dev_size=4",
                             "task.rl_prompts=8", "task.warmup_size=4", "run.precision=fp32", "rl.reward=judge",
                             f"judge.url={stub.url}", "judge.model=stub-judge"])
    import mirrorl.rollout.hf as hf

    class StoppingEngine(hf.HFEngine):  # random weights seldom end a response: end every one, so all are judged
        def generate(self, prompts, sampling, prefixes=None):
            return [hf.Segment(s.prompt_ids, s.token_ids, "stop", s.policy_version)
                    for s in super().generate(prompts, sampling, prefixes)]

    monkeypatch.setattr(hf, "HFEngine", StoppingEngine)
    train_rl(cfg, build_datasets(cfg.task, cfg.run.seed), tmp_path / "run")
    [record] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                if json.loads(line)["step"] == 1]
    assert record["judge/calls"] + record["judge/cache_hits"] == 16 and record["judge/calls"] == len(stub.seen)
    assert record["reward"] == record["judge/correct"] / 16
    assert (tmp_path / "run" / "judge_cache.jsonl").exists()
