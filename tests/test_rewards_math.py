import doctest
import json
import re
import threading
from pathlib import Path

import pytest

import mirrorl.rewards.math as math_reward
from mirrorl.rewards import score
from mirrorl.rewards.math import extract_answer, verify_math
from mirrorl.tasks.problem import Problem

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def rows(relative: str) -> list[dict]:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"public data not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_doctests():
    assert doctest.testmod(math_reward).failed == 0


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{\frac{1}{\sqrt{2}}} done", r"\frac{1}{\sqrt{2}}"),  # nested braces
        (r"\boxed{1} wait, no: \boxed{2}", "2"),  # last box wins
        (r"\boxed{1} then \fbox{3}", "3"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces do not close the box
        (r"the answer is $\boxed 5$", "5"),
        (r"\boxed{7} and finally \boxed{8", None),  # cut-off final box: no answer
        ("9 * 2 = 18 dollars\n#### 18", "18"),
        ("#### 1\nwait\n#### 1,450", "1,450"),
        ("I think it is 42. Yes, 42.", None),  # never scrape numbers from the text
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("18.0", "18"),
        ("1,450", "1450"),
        ("025", "25"),
        (r"\dfrac12", "0.5"),
        (r"\frac{1}{2}", r"\dfrac{1}{2}"),
        (r"12\text{ cm}", "12"),
        (r"\$18", "18"),
        ("x = 3", "3"),
        ("\u22125", "-5"),  # Unicode minus
        (r"90^\circ", "90"),
        (r"50\%", "50"),
        ("7.", "7"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})"),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
        (r"\{2, 1\}", r"\{1, 2\}"),  # sets are unordered
        (r"\text{(C)}", r"\text{(C)}"),
    ],
)
def test_equivalent_answers(answer, gold):
    verdict = verify_math(rf"... so \boxed{{{answer}}}.", gold)
    assert verdict == math_reward.Verdict(True, "equal", answer)


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("19", "18"),
        ("-18", "18"),
        ("18.0001", "18"),
        ("1450", "145"),
        (r"\frac{1}{3}", "0.33"),
        (r"(2, 1)", r"(1, 2)"),  # tuples are ordered
        (r"x + 2", r"x + 1"),
        (r"\text{(B)}", r"\text{(C)}"),
        (r"\sqrt{3}", r"\sqrt{2}"),
    ],
)
def test_near_misses_rejected(answer, gold):
    assert verify_math(rf"\boxed{{{answer}}}", gold).reason == "not_equal"


def test_reasons():
    assert verify_math("it is 18", "18") == math_reward.Verdict(False, "no_answer", None)
    assert verify_math(r"\boxed{}", r"\frac12").reason == "parse_error"
    assert verify_math(r"\boxed{10^{10^{10^{10}}}}", "5", timeout_s=1).reason == "timeout"


def test_plain_numbers_do_not_use_sympy(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("math-verify called for plain numbers")

    monkeypatch.setattr(math_reward, "parse", fail)
    assert verify_math(r"\boxed{1,450.0}", "1450").correct
    assert not verify_math("#### 17", "18").correct


def test_runs_outside_the_main_thread():
    verdicts = []
    thread = threading.Thread(target=lambda: verdicts.append(verify_math(r"\boxed{\dfrac{1}{2}}", "0.5")))
    thread.start()
    thread.join()
    assert verdicts[0].reason == "equal"


def test_score_dispatches_on_kind():
    assert score(Problem("a", "?", r"\frac12"), r"\boxed{0.5}").correct
    countdown = Problem("c", "?", "10", kind="countdown", meta={"numbers": [2, 5]})
    assert score(countdown, r"\boxed{2 * 5}").correct
    assert not score(countdown, r"\boxed{10}").correct
    with pytest.raises(ValueError, match="unknown kind 'poem'"):
        score(Problem("b", "?", "1", kind="poem"), r"\boxed{1}")


def test_gsm8k_answers():
    for row in rows("gsm8k/test.jsonl"):
        gold = row["answer"].rpartition("####")[2].strip()
        value = int(gold.replace(",", ""))
        assert verify_math(row["answer"], gold).correct, gold  # the reference solution's own #### line
        for written in (f"{value}", f"{value:,}", f"{value}.0", f"\\${value}"):
            assert verify_math(rf"\boxed{{{written}}}", gold).correct, (gold, written)
        for wrong in (value + 1, value - 1, -value if value else 1):
            assert not verify_math(rf"\boxed{{{wrong}}}", gold).correct, (gold, wrong)


def test_math500_reference_solutions_verify():
    failures = []
    for row in rows("math500/test.jsonl"):
        verdict = verify_math(row["solution"], row["answer"])
        if not verdict.correct:
            failures.append((row["unique_id"], row["answer"], verdict))
    assert len(failures) <= 10, failures  # at least 98% of 500


def test_math500_fraction_rewrites_verify():
    simple_fraction = re.compile(r"-?\\frac\{\d+\}\{\d+\}")
    fractions = [row["answer"] for row in rows("math500/test.jsonl") if simple_fraction.fullmatch(row["answer"])]
    assert len(fractions) > 20
    for gold in fractions:
        sign = "-" if gold.startswith("-") else ""
        p, q = map(int, re.findall(r"\d+", gold))
        for written in (rf"{sign}\dfrac{{{p}}}{{{q}}}", f"{sign}{p}/{q}", rf"{sign}\frac{{{2 * p}}}{{{2 * q}}}"):
            assert verify_math(rf"\boxed{{{written}}}", gold).correct, (gold, written)
        assert not verify_math(rf"\boxed{{{sign}{p + 1}/{q}}}", gold).correct, gold


def test_aime_accepts_only_the_gold_integer():
    for row in rows("aime2024/test.jsonl"):
        gold = row["answer"]  # e.g. "025"
        correct = [n for n in range(1000) if verify_math(rf"\boxed{{{n}}}", gold).correct]
        assert correct == [int(gold)], (row["id"], gold, correct)
