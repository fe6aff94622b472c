"""Rule-based verifier for math answers: 1 if the final answer equals the gold answer, else 0.

The Kimi k1.5 report (section 2.3.1) gives verifiable problems a binary reward r(x, y, y*) in {0, 1}
that judges the response y against the gold answer y*; section 2.3.5 notes that one answer has many
written forms (e.g. ``a^2 - 4`` and ``(a + 2)(a - 2)``), which the report handles with a learned reward
model. This module is the rule-based counterpart: the policy reasons freely and puts its final answer in
``\\boxed{...}``; only that final answer is judged, by mathematical equivalence (SymPy via math-verify).

Covered:
    * extraction of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces matched), else a
      GSM8K-style ``#### n`` line;
    * plain numbers compared exactly as fractions (``18.0 == 18``, ``1,450 == 1450``, ``025 == 25``)
      without SymPy, in microseconds;
    * everything else (fractions, radicals, tuples, intervals, sets, equations, ``\\text{(C)}`` choices)
      compared by math-verify (SymPy-based) after a light normalisation (units, degrees, percent, ``x =``).

Not covered:
    * no number is ever scraped from the text: a response without a final box (or ``####`` line) is
      ``no_answer``, as is a response whose last box is cut off;
    * proofs, free-text answers beyond exact string match, and answers that need the problem statement
      (e.g. "which is larger?") are not judged;
    * no model-based (reward model) judging: the verdict is deterministic.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction

from math_verify import parse, verify
from math_verify.errors import TimeoutException

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*\S)")
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_UNIT_RE = re.compile(r"(?<=\S)\s*\\(?:text|mbox|mathrm)\{[^{}]*\}\s*$")
_DEGREE_RE = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)")
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z]\s*=\s*(?=\S)")


@dataclass(frozen=True)
class Verdict:
    """The judgement of one response.

    Attributes:
        correct: True iff the final answer equals the gold answer (the reward is ``float(correct)``).
        reason: ``"equal"``, ``"not_equal"``, ``"no_answer"`` (no final answer found),
            ``"parse_error"`` (the answer or the gold is not parseable math) or ``"timeout"``
            (the comparison ran out of time).
        extracted: the final answer as written in the response, None when there is none.
    """

    correct: bool
    reason: str
    extracted: str | None


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (nested braces matched).

    ``\\boxed 5`` (no braces) gives the token after it. Returns None when there is no box or when the
    last one is not closed (a response cut off mid-answer).

    >>> last_boxed(r"first \\boxed{1}, then \\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed{3} and finally \\boxed{4") is None
    True
    """
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    rest = text[starts[-1] :]
    body = rest.lstrip()
    if not body.startswith("{"):
        token = re.match(r"\s+([^\s$]+)", rest)
        return token.group(1) if token else None
    depth = 0
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            i += 2  # an escaped character such as \{ or \} never opens or closes the box
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return body[1:i].strip()
        i += 1
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the last boxed answer, else a GSM8K ``#### n`` line, else None.

    When the text contains a box, only boxes count (an unclosed last box gives None). Numbers in the
    running text are never taken as the answer.

    >>> extract_answer(r"so the answer is \\boxed{\\{1, 2\\}}.")
    '\\\\{1, 2\\\\}'
    >>> extract_answer("She makes 9 * 2 = 18 dollars.\\n#### 18")
    '18'
    >>> extract_answer("The answer is 18.") is None
    True
    """
    if _BOX_RE.search(text):
        return last_boxed(text)
    lines = _GSM8K_RE.findall(text)
    return lines[-1].strip() if lines else None


def normalize_answer(answer: str) -> str:
    """Strip notation that does not change the value of a final answer.

    Removes ``\\left``/``\\right``, ``\\!``, ``{,}``, dollar signs, a trailing ``\\text{unit}``, degrees
    (``^\\circ``), percent signs, a leading ``x =`` and a trailing period; maps ``\\dfrac``/``\\tfrac``
    to ``\\frac`` and the Unicode minus to ``-``.

    >>> normalize_answer(r"x = 12\\text{ cm}.")
    '12'
    >>> normalize_answer(r"\\dfrac{1}{2}")
    '\\\\frac{1}{2}'
    """
    s = answer.replace("\u2212", "-")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = _DEGREE_RE.sub("", s).strip().rstrip(".").strip()
    s = _UNIT_RE.sub("", s)
    return _ASSIGNMENT_RE.sub("", s).strip()


def _as_number(s: str) -> Fraction | None:
    if not _NUMBER_RE.fullmatch(s):
        return None
    return Fraction(s.replace(",", ""))


def verify_math(response: str, gold: str, timeout_s: float = 5.0) -> Verdict:
    """Judge whether the final answer of ``response`` equals the ``gold`` answer.

    Args:
        response: the policy's full output; its final answer is found by `extract_answer`.
        gold: the gold answer as text, without ``\\boxed`` (e.g. ``"18"``, ``"\\frac{1}{2}"``).
        timeout_s: seconds allowed to each math-verify step (parsing the answer, parsing the gold,
            comparing), rounded up to whole seconds. The timeout needs signals, so it only applies in
            the main thread; in other threads math-verify runs without one.

    Returns:
        A `Verdict`; never raises on bad input (unparseable text gives reason ``"parse_error"``).

    Identical answers (after `normalize_answer`) and plain numbers on both sides are decided without
    SymPy, numbers exactly (``18.0 == 18``, but ``18.0001 != 18``); anything else goes to math-verify,
    which compares numerically (6 decimals) and symbolically.

    >>> verify_math("so \\\\boxed{18}", "18.0").correct
    True
    >>> verify_math(r"\\boxed{\\dfrac12}", "0.5").reason
    'equal'
    >>> verify_math("the answer is 18", "18").reason
    'no_answer'
    """
    extracted = extract_answer(response)
    if extracted is None:
        return Verdict(False, "no_answer", None)
    answer, reference = normalize_answer(extracted), normalize_answer(gold)
    if answer and answer == reference:
        return _verdict(True, extracted)
    answer_number, reference_number = _as_number(answer), _as_number(reference)
    if answer_number is not None and reference_number is not None:
        return _verdict(answer_number == reference_number, extracted)

    seconds = math.ceil(timeout_s) if threading.current_thread() is threading.main_thread() else None
    try:
        parsed_reference = parse(f"\\boxed{{{reference}}}", parsing_timeout=seconds, raise_on_error=True)
        parsed_answer = parse(f"\\boxed{{{answer}}}", parsing_timeout=seconds, raise_on_error=True)
    except TimeoutException:
        return Verdict(False, "timeout", extracted)
    except Exception:
        return Verdict(False, "parse_error", extracted)
    if not parsed_reference or not parsed_answer:
        return Verdict(False, "parse_error", extracted)
    try:
        equal = verify(parsed_reference, parsed_answer, timeout_seconds=seconds, raise_on_error=True)
    except TimeoutException:
        return Verdict(False, "timeout", extracted)
    except Exception:
        equal = False  # SymPy could not compare the two expressions
    return _verdict(equal, extracted)


def _verdict(equal: bool, extracted: str) -> Verdict:
    return Verdict(equal, "equal" if equal else "not_equal", extracted)
