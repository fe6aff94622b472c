import doctest
import string
from collections import Counter

import pytest

import mirrorl.tasks.countdown as countdown
from mirrorl.rewards import score
from mirrorl.tasks.countdown import countdown_problem, generate_countdown, verify_countdown

PROMPT_CHARS = set(string.digits + string.ascii_lowercase + " \n+-*/()=.,:?!\\{}#")


def test_doctests():
    assert doctest.testmod(countdown).failed == 0


def test_generated_problems_are_solvable_and_well_formed():
    problems = generate_countdown(400, seed=3)
    assert [p.id for p in problems[:2]] == ["countdown-3-0", "countdown-3-1"]
    assert Counter(p.level for p in problems) == {1: 200, 2: 200}
    for p in problems:
        numbers, target = p.meta["numbers"], p.meta["target"]
        assert len(numbers) == {1: 3, 2: 4}[p.level]
        assert all(1 <= x <= 100 for x in numbers) and 1 <= target <= 999
        assert p.kind == "countdown" and p.answer == str(target)
        assert set(p.prompt) <= PROMPT_CHARS and " ".join(map(str, numbers)) in p.prompt
        assert score(p, rf"so \boxed{{{p.meta['solution']}}}").correct, p


def test_generation_is_deterministic():
    assert generate_countdown(20, seed=7) == generate_countdown(20, seed=7)
    assert generate_countdown(20, seed=7) != generate_countdown(20, seed=8)
    assert {p.level for p in generate_countdown(10, seed=0, levels=(2,))} == {2}
    with pytest.raises(ValueError):
        generate_countdown(5, seed=0, levels=(3,))


NUMBERS = [3, 7, 25, 50]


@pytest.mark.parametrize(
    "response, reason",
    [
        (r"\boxed{(25 - 7) * 3 + 50}", "equal"),
        (r"\boxed{(25 - 7) * 3 + 50 = 104}", "equal"),
        (r"\boxed{(25 - 7) \times 3 + 50}", "equal"),
        (r"\boxed{50 + 3 * (25 - 7)}", "equal"),
        (r"\boxed{(25 - 7) * 3 + 50 + 3}", "not_equal"),  # a number used twice
        (r"\boxed{(25 - 7) * 3 + 53}", "not_equal"),  # a literal that is not given
        (r"\boxed{(25 - 7) * 3}", "not_equal"),  # a number omitted
        (r"\boxed{(25 + 7) * 3 + 50}", "not_equal"),  # wrong value
        (r"\boxed{__import__('os')}", "parse_error"),
        (r"\boxed{(25 - 7) ** 3 + 50}", "parse_error"),
        (r"\boxed{-(7 - 25) * 3 + 50}", "parse_error"),  # unary minus
        (r"\boxed{(25 - 7) // 3 + 50}", "parse_error"),
        (r"\boxed{0x19 - 7}", "parse_error"),
        ("(25 - 7) * 3 + 50 = 104", "no_answer"),
    ],
)
def test_verify_countdown(response, reason):
    verdict = verify_countdown(response, NUMBERS, 104)
    assert (verdict.reason, verdict.correct) == (reason, reason == "equal")


def test_division_is_exact():
    assert verify_countdown(r"\boxed{7 / 2 * 2}", [2, 2, 7], 7).correct
    assert not verify_countdown(r"\boxed{7 / 2 + 2}", [2, 2, 7], 5).correct
    assert verify_countdown(r"\boxed{25 / (3 - 3) + 7}", [3, 3, 7, 25], 32).reason == "not_equal"


def test_absurdly_long_expression_is_rejected():
    assert verify_countdown(r"\boxed{" + "1+" * 100_000 + "1}", [1, 1], 2).reason == "parse_error"


def test_countdown_problem():
    p = countdown_problem([3, 7, 25, 50], 181, "x")
    assert p.prompt == "use 3 7 25 50 once each with + - * / to make 181.\n"
    assert (p.answer, p.level, p.meta) == ("181", 2, {"numbers": [3, 7, 25, 50], "target": 181})
