import random

import pytest

from mirrorl.config import TaskConfig
from mirrorl.rewards import score
from mirrorl.tasks.arithmetic import cot_trace, generate_arithmetic, make_problem
from mirrorl.tasks.datasets import build_datasets


def test_gold_answers_and_levels():
    p = make_problem(7, [("+", 8), ("-", 3), ("-", 9)])
    assert (p.prompt, p.answer, p.level) == ("7+8-3-9=?\n", "3", 2)
    for q in generate_arithmetic(200, seed=1):
        assert eval(q.prompt.split("=")[0]) == int(q.answer)
        assert q.prompt.count("+") + q.prompt.count("-") == q.level + 1


def test_traces_verify_check_rewrite_and_correct():
    rng = random.Random(0)
    problems = generate_arithmetic(400, seed=2)
    traces = [cot_trace(p, rng, slip_rate=0.3) for p in problems]
    assert all(score(p, t).correct for p, t in zip(problems, traces))
    slipped = [t for t in traces if " no\n" in t]
    assert 0.5 < len(slipped) / len(traces) < 0.95  # slips appear and are corrected by the check
    for p, t in zip(problems, traces):
        lines = t.splitlines()
        assert sum(line.endswith(" ok") for line in lines) == p.level + 1  # every step checked
        rewrites = [line for line in lines if "check" not in line and not line.startswith("answer")]
        assert len(rewrites) == p.level  # the rest of the chain is rewritten after every step but the last
        assert rewrites[-1].count("+") + rewrites[-1].count("-") == 1


def test_splits_are_disjoint_and_deterministic():
    cfg = TaskConfig(heldout_size=40, dev_size=20, rl_prompts=200, warmup_size=30, levels=[1, 2, 3, 4])
    a, b = build_datasets(cfg, seed=0), build_datasets(cfg, seed=0)
    assert [p.id for p in a.heldout] == [p.id for p in b.heldout]
    held = {p.id for p in a.heldout}
    assert not held & {p.id for p in a.dev}
    assert not held & {p.id for p in a.rl} and not held & {row["id"] for row in a.warmup}
    assert {p.level for p in a.heldout} == {1, 2, 3, 4}
    assert {row["level"] for row in a.warmup} <= set(cfg.warmup_levels)


def test_exhausted_level_is_an_error():
    with pytest.raises(ValueError, match="level 1"):
        generate_arithmetic(10, seed=0, levels=(1,), exclude={f"arith-{i}" for i in range(0)} | {
            p.id for p in generate_arithmetic(2916, seed=5, levels=(1,))})


def test_jsonl_data_splits_heldout_dev_and_rl_disjointly(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(f'{{"question": "q{i}", "answer": "#### {i}"}}\n' for i in range(40)))
    data = build_datasets(TaskConfig(data=str(path), heldout_size=10, dev_size=5), seed=0)
    ids = [{p.id for p in s} for s in (data.heldout, data.dev, data.rl)]
    assert [len(s) for s in ids] == [10, 5, 25]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
