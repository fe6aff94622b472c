"""Prioritized and curriculum sampling (report section 2.3.4, 3.5): draw frequencies, pools, resume."""

import pytest

from mirrorl.config import load_config
from mirrorl.sampling import (CurriculumSampler, PrioritizedSampler, UniformSampler, make_sampler,
                              update_success_rates)

CHI2_DF3_P01 = 11.345  # upper 1% point of the chi-square distribution with 3 degrees of freedom


def test_success_rates_are_an_ema():
    rates = [0.5, 0.5, 0.5]
    update_success_rates(rates, [0, 2], [1.0, 0.0], ema=0.5)
    assert rates == [0.75, 0.5, 0.25]
    update_success_rates(rates, [0], [0.0], ema=0.5)
    assert rates == [0.375, 0.5, 0.25]


def test_prioritized_draws_match_one_minus_success_chi_square():
    sampler = PrioritizedSampler(4, seed=0, ema=1.0, floor=0.05)
    sampler.update([0, 1, 2, 3], [0.0, 0.25, 0.5, 0.9])  # ema = 1: s_i is the last observation
    assert sampler.success == [0.0, 0.25, 0.5, 0.9]
    n = 100_000
    counts = [0] * 4
    for _ in range(n):
        counts[sampler.sample(1)[0]] += 1
    weights = [1.0, 0.75, 0.5, 0.1]  # 1 - s_i, all above the floor
    expected = [n * w / sum(weights) for w in weights]
    chi2 = sum((c - e) ** 2 / e for c, e in zip(counts, expected))
    assert chi2 < CHI2_DF3_P01, (counts, expected)
    uniform = [n / 4] * 4  # the test can tell: uniform draws are far off
    assert sum((u - e) ** 2 / e for u, e in zip(uniform, expected)) > 100 * CHI2_DF3_P01


def test_prioritized_floor_keeps_solved_prompts_and_batches_are_distinct():
    sampler = PrioritizedSampler(3, seed=1, ema=1.0, floor=0.25)
    sampler.update([0, 1, 2], [1.0, 1.0, 0.0])
    assert sampler.weights() == [0.25, 0.25, 1.0]
    draws = [sampler.sample(1)[0] for _ in range(6000)]
    assert 0.1 < draws.count(0) / len(draws) < 0.24  # expected 0.25 / 1.5 = 0.167
    for _ in range(50):
        assert sorted(sampler.sample(3)) == [0, 1, 2]
    assert len(sampler.sample(7)) == 7  # more than the pool: passes repeat


LEVELS = [1, 1, 2, 2, 3, 3, 4, 4]


def test_curriculum_by_level_draws_all_before_and_only_hard_after_the_switch():
    sampler = CurriculumSampler(LEVELS, seed=0, switch_iteration=3, hard_levels=[3, 4])
    before = [i for it in range(3) for i in sampler.sample(8, it)]
    assert sorted(before) == sorted(list(range(8)) * 3)  # uniform passes over every prompt
    after = [i for it in range(3, 20) for i in sampler.sample(4, it)]
    assert set(after) == {4, 5, 6, 7}


def test_curriculum_by_measured_success():
    sampler = CurriculumSampler(LEVELS, seed=0, switch_iteration=1, hard_success=0.5, ema=1.0)
    sampler.sample(4, 0)
    sampler.update([0, 1, 2, 3], [1.0, 0.75, 0.5, 0.0])  # 0 and 1 solved often; 4..7 never drawn (0.5)
    after = [i for it in range(1, 30) for i in sampler.sample(3, it)]
    assert set(after) == {2, 3, 4, 5, 6, 7}
    sampler.update([2], [1.0])  # the pool is fixed at the switch
    assert 2 in sampler.sample(6, 30)


def test_curriculum_rejects_levels_the_data_lacks():
    with pytest.raises(ValueError, match="hard level"):
        CurriculumSampler([0, 0, 0], seed=0, switch_iteration=1, hard_levels=[3])


@pytest.mark.parametrize("make", [
    lambda: UniformSampler(8, seed=5),
    lambda: PrioritizedSampler(8, seed=5),
    lambda: CurriculumSampler(LEVELS, seed=5, switch_iteration=2, hard_levels=[4]),
    lambda: CurriculumSampler(LEVELS, seed=5, switch_iteration=2),
])
@pytest.mark.parametrize("stop", [1, 3])  # before and after the curriculum's switch
def test_state_round_trip(make, stop):
    sampler = make()
    for it in range(stop):
        sampler.update(sampler.sample(3, it), [0.0, 0.5, 1.0])
    state = sampler.state_dict()
    expected = []
    for it in range(stop, stop + 4):
        drawn = sampler.sample(3, it)
        sampler.update(drawn, [1.0, 0.0, 0.5])
        expected.append(drawn)
    restored = make()
    restored.sample(5, 0)  # disturb it, then restore
    restored.load_state_dict(state)
    for it, drawn in zip(range(stop, stop + 4), expected):
        assert restored.sample(3, it) == drawn
        restored.update(drawn, [1.0, 0.0, 0.5])


def test_make_sampler_from_config():
    for name, cls in (("uniform", UniformSampler), ("prioritized", PrioritizedSampler),
                      ("curriculum", CurriculumSampler)):
        cfg = load_config(None, [f"rl.sampler={name}", "rl.curriculum_hard_levels=[4]"])
        assert type(make_sampler(cfg.rl, LEVELS, 0)) is cls


def test_curated_pass_rates_seed_the_success_estimates(tmp_path):
    """`mirrorl rl --data curated.jsonl rl.sampler=curriculum`: the pass rates `mirrorl curate` wrote decide the
    hard pool (no prompt drawn before the switch) and the prioritized weights."""
    from mirrorl.tasks.jsonl import load_problems
    from mirrorl.tasks.problem import Problem, write_jsonl
    rates = [0.9, 0.1, None, 0.4, 0.6]
    write_jsonl([Problem(f"p{i}", f"{i}+1=?", str(i + 1), pass_rate=r) for i, r in enumerate(rates)],
                tmp_path / "curated.jsonl")
    problems = load_problems(tmp_path / "curated.jsonl")
    assert [p.pass_rate for p in problems] == rates
    cfg = load_config(None, ["rl.sampler=curriculum", "rl.curriculum_switch_iteration=0",
                             "rl.curriculum_hard_success=0.5", "rl.success_initial=0.7"])
    sampler = make_sampler(cfg.rl, [p.level for p in problems], 0, [p.pass_rate for p in problems])
    assert set(sampler.sample(20, 0)) == {1, 3}  # 0.1 and 0.4; the unmeasured prompt starts at 0.7
    cfg = load_config(None, ["rl.sampler=prioritized", "rl.success_initial=0.5"])
    sampler = make_sampler(cfg.rl, [0] * 5, 0, [p.pass_rate for p in problems])
    assert sampler.weights() == pytest.approx([0.1, 0.9, 0.5, 0.6, 0.4])
    with pytest.raises(ValueError, match="3 prior success rates for 5 prompts"):
        make_sampler(cfg.rl, [0] * 5, 0, rates[:3])
