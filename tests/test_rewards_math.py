import doctest
import json
import re
import threading
from collections import Counter
from fractions import Fraction

import pytest
from math_verify import ExprExtractionConfig, LatexExtractionConfig
from conftest import shared_data

import mirrorl.rewards.math as math_reward
from mirrorl.rewards import score
from mirrorl.rewards.math import extract_answer, verify_math
from mirrorl.tasks.problem import Problem


def rows(relative: str) -> list[dict]:
    """The rows of a jsonl file under ../shared/data (the test skips when it is absent)."""
    return [json.loads(line) for line in shared_data(*relative.split("/")).read_text().splitlines()]


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


def test_lenient_grading_is_math_verify_s_and_strict_stays_strict():
    prose = "The largest $n$ is 34 and that is all."
    assert verify_math(prose, "34").reason == "no_answer"
    assert verify_math(prose, "34", lenient=True).correct
    boxes = r"\boxed{1} papers and \boxed{2} bins"
    assert not verify_math(boxes, "1, 2").correct and verify_math(boxes, "1, 2", lenient=True).correct
    assert not verify_math(r"\boxed{1,22}", "1.22").correct and verify_math(r"\boxed{1,22}", "1.22", lenient=True).correct
    assert verify_math(r"\boxed{1,220}", "1.22", lenient=True).reason == "not_equal"  # a thousands separator
    assert not verify_math(r"\boxed{0.33}", r"\frac13").correct
    assert verify_math(r"\boxed{0.33}", r"\frac13", float_rounding=2).correct
    assert verify_math(r"\boxed{0.33}", "0.331", float_rounding=2).correct
    assert not verify_math(r"\boxed{0.34}", r"\frac13", float_rounding=2).correct


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


@pytest.mark.parametrize("answer, gold", [("0 0/0", "0"), ("-4 0/0", "-4"), ("-1 000 0/0", "0"), ("11 7/6", "12 1/6"),
                                         ("5/0", "5")])
def test_numbers_without_a_value_equal_nothing(answer, gold, monkeypatch):
    """SymPy reads "0 0/0" as 0*0/0, which math-verify judges equal to 0 or not depending on the hash seed
    (PYTHONHASHSEED=0: equal, 2: not): a mixed number or ratio without a value is unequal before SymPy."""
    def fail(*args, **kwargs):
        raise AssertionError("math-verify called for a number without a value")

    monkeypatch.setattr(math_reward, "parse", fail)
    assert verify_math(rf"\boxed{{{answer}}}", gold, lenient=True).reason == "not_equal"
    assert verify_math(rf"\boxed{{{answer}}}", gold).reason == "not_equal"


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


# MATH-500 rows whose reference solution does not verify against `answer`, with why. None at present.
MATH500_REFERENCE_EXCEPTIONS: dict[str, str] = {}


def test_math500_reference_solutions_verify():
    """The extracted final answer of every MATH-500 reference solution verifies equal to its `answer`."""
    data = rows("math500/test.jsonl")
    failures = {}
    for row in data:
        verdict = verify_math(row["solution"], row["answer"])
        if not verdict.correct:
            failures[row["unique_id"]] = (row["answer"], verdict)
    assert set(failures) <= set(MATH500_REFERENCE_EXCEPTIONS), failures
    assert len(failures) <= 0.004 * len(data)  # at least 99.6%


_NUMBER = re.compile(r"(?<![\\A-Za-z_{])\d+(?:\.\d+)?")


def _top_level_items(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


def perturbed_answers(gold: str) -> list[tuple[str, str]]:
    """Wrong answers made from a gold answer: (kind, text) with kind "number" (the first or the last number
    raised by 1), "sign" (negated) or "drop" (the last element of a tuple or list removed).

    Numbers inside a trailing unit (``\\mbox{ cm}^2``) or a base subscript (``52_8``) are not changed, and
    text answers (``\\text{...}``) are not perturbed: units and words are not compared by value.
    """
    if "\\text" in gold:
        return []
    core = re.sub(r"\\(?:mbox|text)\{[^{}]*\}.*$", "", gold)
    wrong = []
    numbers = list(_NUMBER.finditer(core))
    for match in {numbers[0].start(): numbers[0], numbers[-1].start(): numbers[-1]}.values() if numbers else []:
        value = match.group()
        whole, _, decimals = value.partition(".")
        raised = f"{int(whole) + 1}.{decimals}" if decimals else str(int(whole) + 1)
        wrong.append(("number", gold[: match.start()] + raised + gold[match.end() :]))
    if gold.strip() != "0" and not re.search(r"=|<|>|\\le|\\ge|\\in|\\cup|\\pm|,", gold):
        wrong.append(("sign", gold[1:] if gold.startswith("-") else f"-({gold})"))
    bracketed = re.fullmatch(r"(\\left)?([(\[])(.*?)(\\right)?([)\]])", gold)
    items = _top_level_items(bracketed.group(3) if bracketed else gold)
    if len(items) > 1:
        kept = ",".join(items[:-1])
        wrong.append(("drop", f"{bracketed.group(2)}{kept}{bracketed.group(5)}" if bracketed else kept))
    return wrong


def test_math500_perturbed_answers_are_rejected():
    """No false positive: every perturbed wrong answer of every MATH-500 problem is judged not equal."""
    checked, false_positives = 0, []
    for row in rows("math500/test.jsonl"):
        for kind, wrong in perturbed_answers(row["answer"]):
            checked += 1
            if verify_math(rf"\boxed{{{wrong}}}", row["answer"]).correct:
                false_positives.append((row["unique_id"], kind, row["answer"], wrong))
    assert checked > 1000
    assert false_positives == []

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


def _encloses(text: str) -> bool:
    """Whether the first character's bracket closes only at the last character: (1, 2) but not (1, 2) \\cup (3, 4)."""
    depth = 0
    for index, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0 and index < len(text) - 1:
            return False
    return depth == 0


def rewritings(gold: str) -> list[tuple[str, str]]:
    """Equivalent forms of a gold answer, (kind, text), for each kind that applies to it:
    ``\\dfrac`` for ``\\frac``; ``p/q`` and a finite decimal for a fraction ``\\frac{p}{q}`` (or an integer
    ratio) whose decimal ends; extra spaces; ``\\left( \\right)`` around a bracketed answer; a leading
    ``x =``; a trailing unit ``\\text{ cm}`` after a number-like answer (no brackets, words or units)."""
    out = []
    if "\\frac" in gold:
        out.append(("dfrac", gold.replace("\\frac", "\\dfrac")))
    fraction = re.fullmatch(r"(-?)\\frac\{?(\d+)\}?\{?(\d+)\}?", gold) if "\\frac" in gold else None
    if fraction:
        sign, p, q = fraction.groups()
        out.append(("a/b", f"{sign}{p}/{q}"))
        value = Fraction(int(p), int(q))
        rest = value.denominator
        for prime in (2, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            places = next(k for k in range(64) if (value * 10**k).denominator == 1)
            digits = str(value.numerator * 10**places // value.denominator).rjust(places + 1, "0")
            out.append(("decimal", f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"))
    spaced = re.sub(r"\s*([+=]|,(?!\\!)(?<!\d,(?=\d{3}(?!\d))))\s*", r" \1  ", gold)  # not in 58,500
    out.append(("spaces", f"  {spaced}  "))
    if gold[:1] in "([" and gold[-1:] in ")]" and _encloses(gold):
        out.append(("left-right", rf"\left{gold[0]} {gold[1:-1]} \right{gold[-1]}"))
    words = re.search(r"=|<|>|\\in|\\text|\\mbox|x", gold)
    if not words:
        out.append(("x =", f"x = {gold}"))
    if not words and not re.search(r"[(\[{,]|\\begin|\\circ|\\pm|_", gold.replace("\\frac{", "").replace("\\sqrt{", "")):
        out.append(("unit", rf"{gold}\text{{ cm}}"))
    return out


# Rewritings of MATH-500 answers not judged equal, with why. None at present.
MATH500_REWRITING_FAILURES: dict[tuple[str, str], str] = {}


def test_math500_rewritings_verify():
    """Equivalent rewritings of every MATH-500 answer are judged equal (at least 99% of those that apply)."""
    checked, failures = Counter(), {}
    for row in rows("math500/test.jsonl"):
        for kind, written in rewritings(row["answer"]):
            checked[kind] += 1
            if not verify_math(rf"\boxed{{{written}}}", row["answer"]).correct:
                failures[(row["unique_id"], kind)] = (row["answer"], written)
    assert min(checked.values()) >= 10 and len(checked) == 7, checked
    assert set(failures) <= set(MATH500_REWRITING_FAILURES), failures
    assert len(failures) <= 0.01 * sum(checked.values())


_DELIMITED = re.compile(r"\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\[(.*)\\\]|\\\((.*)\\\))\s*", re.DOTALL)
_MATH_SPANS = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\[.*?\\\]|\\\(.*?\\\)", re.DOTALL)


def _unwrap(text: str) -> str:
    whole = _DELIMITED.fullmatch(text)
    return next(group for group in whole.groups() if group is not None) if whole else text


# The extraction targets math-verify's tests parse with, as each row's note names them.
_UPSTREAM_TARGETS = {
    "[ExprExtractionConfig()]": [ExprExtractionConfig()],
    "[LatexExtractionConfig(boxed_match_priority=0)]": [LatexExtractionConfig(boxed_match_priority=0)],
    "[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]":
        [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
}


def suite_verdict(row: dict, lenient: bool = False):
    """Replay one (gold, response) row of another project's suite through `verify_math`.

    A side with a box, a ``####`` line or a final answer line is a response: its answer is extracted as in
    RL. A short side outside math delimiters, or one wrapped in them whole (``$[0,1)$``, ``28 percent``),
    is an answer as given, like the ``answer`` field of ``mirrorl verify``. Anything else is prose: its
    answer is extracted as in RL, so prose without an explicit final answer gives ``no_answer``.
    With `lenient`, the row is graded as math-verify's own tests grade it: `verify_math(lenient=True)` with
    the extraction targets and float rounding the row's note gives, boxes of a boxed gold joined as in
    the response.
    """
    note = row.get("note", "")
    targets = re.search(r"targets (\[[^\]]*\])", note)
    rounding = re.search(r"float_rounding=(\d+)", note)
    options = {"lenient": True, "targets": _UPSTREAM_TARGETS.get(targets.group(1)) if targets else None,
               "float_rounding": int(rounding.group(1)) if rounding else None} if lenient else {}
    gold = ((extract_answer(row["gold"], lenient=True) if lenient and "\\boxed" in row["gold"] else None)
            or extract_answer(row["gold"]) or _unwrap(row["gold"]))
    response = row["response"]
    outside_math = re.sub(r"\\[A-Za-z]+\{[^{}]*\}", " ", _MATH_SPANS.sub(" ", response))  # \\text{ units}
    words = set(re.findall(r"(?<![\\A-Za-z])[A-Za-z]{3,}", outside_math)) - {"percent", "percentage", "pct", "and"}
    if extract_answer(response) is None and not words:
        response = rf"\boxed{{{_unwrap(response)}}}"
    return verify_math(response, gold, timeout_s=30, **options)  # generous: a loaded machine must not time out


_PROSE = "prose without a box or a final answer line: no answer is scraped from running text (RL's extraction)"
_DECIMAL_COMMA = "decimal comma: a comma between digits is a thousands separator or a list separator here"
_ROUNDED = "a rounded decimal is not equal to an exact value (18.0001 != 18)"
# Rows of math-verify's suite (cautioned rows aside) where RL's strict extraction and exact numbers differ, with why.
STRICT_DIFFERENCES = {
    "mv-test_all-test_number_extraction-005": _DECIMAL_COMMA,
    "mv-test_all-test_number_extraction-006": _DECIMAL_COMMA,
    "mv-test_all-test_number_extraction-007": _DECIMAL_COMMA + "; and " + _PROSE,
    "mv-test_all-test_number_extraction-017": _DECIMAL_COMMA,
    **{f"mv-test_all-test_number_extraction-0{i}": _PROSE + " ('... which is 1,000.99€')" for i in (13, 14, 15, 16)},
    **{f"mv-test_all-test_math_extraction_edge_cases-00{i}": _PROSE for i in (0, 1, 2, 6)},
    **{f"mv-test_all-test_math_extraction_additional_cases-00{i}": _PROSE for i in (1, 2, 8)},
    **{f"mv-test_all-test_relations_math-00{i}": _PROSE for i in (0, 1, 2, 3, 4, 7)},
    **{f"mv-test_all-test_matrix_extraction-00{i}": _PROSE for i in range(1, 7)},
    "mv-test_all-test_math_extraction_additional_cases-004": _PROSE + " ('The largest $n$ is 34.')",
    "mv-test_all-test_complex_math_expressions-007": _ROUNDED + " (0.33 for 1/3)",
    "mv-test_all-test_complex_math_expressions-013": _ROUNDED + " (2.6667 for 8/3)",
    "mv-test_all-test_precision-latex-000": _ROUNDED + " (0.3333 for 1/3; upstream compares at precision 4)",
    "mv-test_boxed-test_boxed-000": "the gold has doubled backslashes (\\\\boxed), so it is no box here",
    "mv-test_numina_cases-test_numina_cases-024": "'W(x)=1orW(x)=-1' is prose here; the gold is an unclosed box",
    "mv-test_open_thoughts-test_open_thoughts-014": "boxes separated by words ('for part (a) and') are not joined",
    "mv-test_open_thoughts-test_open_thoughts-027": "boxes separated by words ('papers and') are not joined",
}
# Graded as math-verify's tests grade (lenient), the rows where this verifier still differs, with why.
LENIENT_DIFFERENCES = {
    "mv-test_open_thoughts-test_open_thoughts-028": "boxes on one line are joined whatever is between them "
                                                   "('\\boxed{1} no no no no no \\boxed{2}' gives 1, 2)",
}
# Newer math-verify rows (after 0.9.0) where this verifier differs: "4 4/9%" against 40/9. A percentage
# against a gold without one is accepted as the number itself (MATH's "what percent" answers) or as 1/100 of it.
NEWER_SUITE_DIFFERENCES = {f"mvnew-mixed-0{i}": "percent read as the number or its 1/100" for i in range(37, 52, 2)}


def _disagreements(relative: str, lenient: bool) -> tuple[dict, int]:
    judged = [row for row in rows(relative) if "caution" not in row]
    verdicts = {row["id"]: (row, suite_verdict(row, lenient)) for row in judged}
    disagree = {key: (row["gold"][-60:], row["response"][-60:], row["expected_equal"], verdict)
                for key, (row, verdict) in verdicts.items() if verdict.correct != row["expected_equal"]}
    return disagree, len(judged)


@pytest.mark.parametrize(
    "relative, lenient, differences, minimum",
    [
        ("verifier-suites/math-verify/math_verify_cases.jsonl", True, LENIENT_DIFFERENCES, 0.99),
        ("verifier-suites/math-verify/math_verify_newer_cases.jsonl", True, NEWER_SUITE_DIFFERENCES, 0.84),
        ("verifier-suites/hendrycks-math/hendrycks_math_equivalence_cases.jsonl", False, {}, 1.0),
    ],
)
def test_agrees_with_other_projects_suites(relative, lenient, differences, minimum):
    """Agreement with math-verify's and the MATH repository's suites, rows with a `caution` field aside
    (they record a tool's policy or bug): math-verify's rows graded as its tests grade them (lenient
    extraction with each row's targets and rounding), the MATH rows' already-extracted answers as given.
    Every disagreement is a documented policy difference."""
    disagree, judged = _disagreements(relative, lenient)
    assert set(disagree) <= set(differences), {key: disagree[key] for key in set(disagree) - set(differences)}
    assert 1 - len(disagree) / judged >= minimum


def test_strict_extraction_differs_from_math_verify_only_by_policy():
    """RL's extraction never scrapes prose and compares numbers exactly: on math-verify's suite that is
    the documented difference of every row it judges otherwise."""
    disagree, judged = _disagreements("verifier-suites/math-verify/math_verify_cases.jsonl", lenient=False)
    assert set(disagree) <= set(STRICT_DIFFERENCES), {k: disagree[k] for k in set(disagree) - set(STRICT_DIFFERENCES)}
    assert len(disagree) / judged > 0.1  # the prose rows really are judged differently in RL
