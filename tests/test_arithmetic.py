import random

import pytest

from mirrorl.config import TaskConfig
from mirrorl.rewards import score
from mirrorl.tasks.arithmetic import audit_steps, cot_trace, generate_arithmetic, make_problem
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


def test_check_rate_drops_checks_and_their_slips():
    problems = generate_arithmetic(400, seed=2)
    rng = random.Random(0)
    traces = [cot_trace(p, rng, slip_rate=0.3, check_rate=0.5) for p in problems]
    assert all(score(p, t).correct for p, t in zip(problems, traces))
    steps = sum(p.level + 1 for p in problems)
    checked = sum(t.count(" ok") for t in traces)
    assert 0.4 < checked / steps < 0.6
    for p, t in zip(problems, traces):  # unchecked steps never slip: every "no" line precedes its own redo
        lines = t.splitlines()
        for i, line in enumerate(lines):
            if line.endswith(" no"):
                assert lines[i + 1].endswith(" ok") and lines[i + 1].split("=")[0] == line.split("=")[0]
    lengths = {}
    for seed in range(8):  # one problem, many traces: lengths differ by the checks made
        lengths[seed] = len(cot_trace(problems[3], random.Random(seed), slip_rate=0.0, check_rate=0.5))
    assert len(set(lengths.values())) > 1
    full = cot_trace(problems[3], random.Random(0), slip_rate=0.0)
    assert max(lengths.values()) <= len(full) and full == cot_trace(problems[3], random.Random(0), 0.0, 1.0)


def test_splits_are_disjoint_and_deterministic():
    cfg = TaskConfig(heldout_size=40, dev_size=20, rl_prompts=200, warmup_size=30, levels=[1, 2, 3, 4])
    a, b = build_datasets(cfg, seed=0), build_datasets(cfg, seed=0)
    assert [p.id for p in a.heldout] == [p.id for p in b.heldout]
    held = {p.id for p in a.heldout}
    assert not held & {p.id for p in a.dev}
    assert not held & {p.id for p in a.rl} and not held & {row["id"] for row in a.warmup}
    assert {p.level for p in a.heldout} == {1, 2, 3, 4}
    assert {row["level"] for row in a.warmup} <= set(cfg.warmup_levels)


def test_a_level_listed_twice_gets_twice_the_warmup_traces():
    cfg = TaskConfig(heldout_size=8, dev_size=8, rl_prompts=8, warmup_size=300, warmup_levels=[1, 1, 3],
                     check_rate=0.0)
    levels = [row["level"] for row in build_datasets(cfg, seed=0).warmup]
    assert levels.count(1) == 2 * levels.count(3) == 200 and set(levels) == {1, 3}


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


def test_audit_counts_caught_slips_in_generated_traces():
    rng = random.Random(0)
    problems = generate_arithmetic(40, seed=3)
    for p in problems:
        steps = p.level + 1
        every = audit_steps(cot_trace(p, rng, slip_rate=1.0))  # each step: a slip, caught, then the right value
        assert every == {"steps": 2 * steps, "checked": 2 * steps, "wrong": steps, "wrong_checked": steps,
                         "wrong_caught": steps}
        half = audit_steps(cot_trace(p, rng, slip_rate=1.0, check_rate=0.5))
        assert half["steps"] == steps + half["wrong"] and half["unchecked_wrong"] == 0
        assert half["wrong_caught"] == half["wrong_checked"] == half["wrong"]


def test_audit_finds_wrong_steps_that_a_check_passes():
    response = ("2-1=2 check 2+1=1 ok\n2+9\n2+9=11 check 11-9=2 no\n2+9=12 check 12-9=3 ok\n"
                "12-4\n12-4=9\nanswer: \\boxed{9}")
    assert audit_steps(response) == {"steps": 4, "checked": 3, "wrong": 3, "wrong_checked": 2, "false_alarms": 1,
                                     "check_arithmetic_wrong": 1, "unchecked_wrong": 1}
    assert audit_steps("no steps here\nanswer: \\boxed{3}") == {}


def test_checks_write_the_comparison_that_decides_the_verdict():
    rng = random.Random(1)
    checks = [line for p in generate_arithmetic(100, seed=4) for line in cot_trace(p, rng, slip_rate=0.5).splitlines()
              if " check " in line]
    assert any(c.endswith(" no") for c in checks) and any(c.endswith(" ok") for c in checks)
    for line in checks:  # "a op b=c check c inv b=d vs a ok|no": the verdict is d == a
        step, check = line.split(" check ")
        undone, rest = check.split("=")[1].split(" vs ")
        prev, verdict = rest.split()
        assert prev == step.split("+")[0].split("-")[0]
        assert verdict == ("ok" if undone == prev else "no")
