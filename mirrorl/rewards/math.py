"""Rule-based verifier for math answers: 1 if the final answer equals the gold answer, else 0.

The Kimi k1.5 report (section 2.3.1) gives verifiable problems a binary reward r(x, y, y*) in {0, 1}
that judges the response y against the gold answer y*; section 2.3.5 notes that one answer has many
written forms (e.g. ``a^2 - 4`` and ``(a + 2)(a - 2)``), which the report handles with a learned reward
model. This module is the rule-based counterpart: the policy reasons freely and puts its final answer in
``\\boxed{...}``; only that final answer is judged, by mathematical equivalence (SymPy via math-verify).

Covered:
    * extraction of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces matched; boxes
      separated only by "and", commas or ``x =`` are one answer), a GSM8K-style ``#### n`` line or an
      explicit "the final answer is X" line, whichever comes last;
    * plain numbers compared exactly as fractions (``18.0 == 18``, ``1,450 == 1 450 == 1450``,
      ``025 == 25``, ``4 4/9 == 40/9``) and base-n numbers by digits and base (``52_8``), without SymPy;
    * percentages: ``20\\%`` equals a gold of 20 or of 0.2;
    * everything else (fractions, radicals, tuples, intervals, sets, equations, ``\\text{(C)}`` choices)
      compared by math-verify (SymPy-based) after a light normalisation (units, degrees, percent, ``x =``).

Not covered:
    * no number is ever scraped from the text: a response without a final box (or ``####`` line) is
      ``no_answer``, as is a response whose last box is cut off;
    * proofs, free-text answers beyond exact string match, and answers that need the problem statement
      (e.g. "which is larger?") are not judged;
    * units are dropped, not compared (``15 cm^2`` equals ``15 cm^3``); decimal commas (``1,22``) are not
      read as decimals; a rounded decimal does not equal an exact value (``0.33 != 1/3``);
    * no model-based (reward model) judging: the verdict is deterministic.

Evaluation of models that do not box their answers can opt into math-verify's grading instead
(`verify_math(lenient=True)`, `mirrorl verify --lenient`): the last expression of the text, boxes on one
line joined, decimal commas against a decimal; `float_rounding` compares decimals rounded as math-verify
does. On math-verify's own test suite that grading agrees with 264 of its 265 rows (`tests/test_rewards_math.py`).
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
# Text allowed between boxes that together form one answer: "\boxed{1} and \boxed{2}", "\boxed{a}, \boxed{b}".
_BOX_JOINER_RE = re.compile(
    r"(?:\s|[,;$]|\\[()\[\],;: ]|\\q?quad(?![A-Za-z])|\\text\{\s*(?:and|or|,)?\s*\}|\b(?:and|or)\b|\b[A-Za-z](?:_\{?\w+\}?)?\s*=)*"
)
# "The (final) answer is X" / "Final answer: X", where X is a math span or a plain number ending the sentence.
_ANSWER_LINE_RE = re.compile(r"\banswer(?:\s*:\s*|\s+is\s*:?\s*)|^[ \t]*answer[ \t]+", re.IGNORECASE | re.MULTILINE)
_MATH_SPAN_RE = re.compile(r"\$\$([\s\S]+?)\$\$|\$((?:\\\$|[^$\n])+)\$|\\\[([\s\S]+?)\\\]|\\\(([^\n]+?)\\\)")
_PLAIN_ANSWER_RE = re.compile(
    r"([-+\u2212]?\d[\d,]*(?:\.\d+)?(?: \d+/\d+|/\d+)?(?:\s*(?:\\?%|percent\b|percentage\b|pct\b))?)"
    r"(?=[ \t]*(?:[.!](?:\s|$)|$))",
    re.MULTILINE,
)
# A plain number: thousands separated by ",", "\\,", "\\ ", "~" or a space (1,450 / 1 450); ".5" too.
_NUMBER_RE = re.compile(r"[+-]?(?=\.?\d)(?:\d{1,3}(?:(?:,|\\,|\\ | |~)\d{3})+|\d*)(?:\.\d+)?")
_BASE_RE = re.compile(r"([0-9A-Za-z]+)_\{?(\d+)\}?|([0-9A-Za-z]+)")  # 52_8, 4210_{5}: numbers in base b
_DECIMAL_RE = re.compile(r"[+-]?\d*\.?\d+")
# 4 4/9, 1 000 1/2: a proper fraction after a whole number (thousands may be separated by spaces)
_MIXED_RE = re.compile(r"([+-]?)(\d{1,3}(?: \d{3})+|\d+) (\d+)/(\d+)")
_RATIO_RE = re.compile(r"([+-]?\d+)/(\d+)")  # 7/2, 5/0
_UNIT_RE = re.compile(r"(?<=\S)\s*\\(?:text|textnormal|textbf|textrm|mbox|mathrm)\s*\{[^{}]*\}(?:\^\{?\d\}?)?\s*$")
_DEGREE_RE = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)")
_PERCENT_RE = re.compile(r"\s*(?:\\?%|\\text\{\s*\\?%\s*\}|\s(?:percent|percentage|pct)|(?<=\d)(?:percent|percentage|pct))$")
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


def _boxes(text: str) -> list[tuple[int, int, str]] | None:
    """(start, end, contents) of every complete box in `text`; None when the last box is not closed."""
    boxes = []
    for match in _BOX_RE.finditer(text):
        if boxes and match.start() < boxes[-1][1]:
            continue  # a box inside the previous box
        rest = text[match.end() :]
        body = rest.lstrip()
        offset = match.end() + len(rest) - len(body)
        if not body.startswith("{"):
            token = re.match(r"\s+([^\s$]+)", rest)
            if token is None:
                return None
            boxes.append((match.start(), match.end() + token.end(), token.group(1)))
            continue
        depth = 0
        i = 0
        closed = False
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
                    boxes.append((match.start(), offset + i + 1, body[1:i].strip()))
                    closed = True
                    break
            i += 1
        if not closed:
            return None
    return boxes


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (nested braces matched).

    ``\\boxed 5`` (no braces) gives the token after it. Returns None when there is no box or when the
    last one is not closed (a response cut off mid-answer).

    >>> last_boxed(r"first \\boxed{1}, then \\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed{3} and finally \\boxed{4") is None
    True
    """
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _final_boxes(text: str, lenient: bool = False) -> tuple[int, str] | None:
    """(end, answer) of the last box, joined with the boxes just before it when only "and", commas, spacing
    or ``x =`` separate them (`lenient`: anything but a line break, as math-verify joins boxes). None when
    there is no box or the last one is not closed."""
    boxes = _boxes(text)
    if not boxes:
        return None
    parts = [boxes[-1][2]]
    for before, after in zip(reversed(boxes[:-1]), reversed(boxes[1:])):
        between = text[before[1] : after[0]]
        if not (_BOX_JOINER_RE.fullmatch(between) or (lenient and "\n" not in between)):
            break
        parts.insert(0, before[2])
    return boxes[-1][1], ", ".join(parts)


def _answer_line(text: str) -> tuple[int, str] | None:
    """(start, X) of the last "the answer is X" / "Final answer: X" / a line "Answer X", when X is a math span
    or a number that ends the sentence."""
    matches = list(_ANSWER_LINE_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    span = _MATH_SPAN_RE.match(rest)
    if span:
        return matches[-1].start(), next(group for group in span.groups() if group is not None).strip()
    plain = _PLAIN_ANSWER_RE.match(rest)
    return (matches[-1].start(), plain.group(1)) if plain else None


def extract_answer(text: str, lenient: bool = False, targets=None, timeout_s: int | None = 5) -> str | None:
    """The final answer of a response, or None.

    The final answer is whichever of these comes last in the text:
        * the last complete box, joined with the boxes right before it when only "and", commas, spacing
          or ``x =`` separate them (``\\boxed{1} and \\boxed{2}`` gives ``1, 2``); an unclosed last box
          (a response cut off mid-answer) means no answer at all;
        * the last GSM8K ``#### n`` line;
        * an explicit final answer statement, "the (final) answer is X", "Final answer: X" or a line
          starting "Answer X", where X is a ``$...$`` / ``\\(...\\)`` / ``$$...$$`` / ``\\[...\\]`` span
          or a number that ends the sentence.
    Numbers and formulas in the running text are never taken as the answer, unless `lenient`: then
    boxes on one line are joined whatever separates them, and a response with none of the above gets
    the last expression that math-verify's own extraction finds (`math_verify.parse` with `targets`,
    default its LaTeX and plain-expression configs), as evaluation harnesses built on math-verify grade
    models that do not box their answers; that extraction gets `timeout_s` seconds (None: no limit, as
    math-verify's signal-based timeout needs the main thread). RL rewards never use it: a policy would
    learn to end with any number.

    >>> extract_answer(r"so the answer is \\boxed{\\{1, 2\\}}.")
    '\\\\{1, 2\\\\}'
    >>> extract_answer(r"x = \\boxed{1} or x = \\boxed{-2}")
    '1, -2'
    >>> extract_answer("She makes 9 * 2 = 18 dollars.\\n#### 18")
    '18'
    >>> extract_answer("Final Answer: The final answer is $\\\\frac{1}{3}$. I hope it is correct.")
    '\\\\frac{1}{3}'
    >>> extract_answer("The answer is 18.")
    '18'
    >>> extract_answer("I think it is 18. The answer is not 17, I guess.") is None
    True
    """
    boxed = _final_boxes(text, lenient)
    if boxed is None and _BOX_RE.search(text):
        return None  # the last box is cut off
    candidates = [boxed, _answer_line(text)]
    lines = list(_GSM8K_RE.finditer(text))
    if lines:
        candidates.append((lines[-1].start(), lines[-1].group(1).strip()))
    found = [candidate for candidate in candidates if candidate is not None]
    if found:
        return max(found)[1]
    if not lenient:
        return None
    try:
        parsed = parse(text, **({"extraction_config": targets} if targets else {}), parsing_timeout=timeout_s,
                       raise_on_error=True)
    except Exception:  # math-verify's parse errors and timeouts: nothing to extract
        return None
    return parsed[1] if len(parsed) > 1 else None


def _normalize(answer: str) -> tuple[str, bool]:
    """`normalize_answer` without removing a leading ``x =``, and whether the answer was a percentage."""
    s = answer.replace("\u2212", "-")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r",\\!\s*", ",", s)  # 10,\!080
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\$", "").replace("$", "")
    s = _DEGREE_RE.sub("", s).strip().rstrip(".,;").strip()
    percent = bool(_PERCENT_RE.search(s)) or "%" in s
    s = _PERCENT_RE.sub("", s).replace("\\%", "").replace("%", "").strip()
    s = _UNIT_RE.sub("", s)
    return s.strip(), percent


def normalize_answer(answer: str) -> str:
    """Strip notation that does not change the value of a final answer.

    Removes ``\\left``/``\\right``, ``\\!``, ``{,}``, dollar signs, a trailing ``\\text{unit}``, degrees
    (``^\\circ``), percent signs (``\\%``, "percent"), a leading ``x =`` and a trailing period or comma;
    maps ``\\dfrac``/``\\tfrac``/``\\cfrac`` to ``\\frac``, ``10,\\!080`` to ``10,080`` and the Unicode
    minus to ``-``.

    >>> normalize_answer(r"x = 12\\text{ cm}.")
    '12'
    >>> normalize_answer(r"\\dfrac{1}{2}")
    '\\\\frac{1}{2}'
    """
    return _ASSIGNMENT_RE.sub("", _normalize(answer)[0]).strip()


def _as_number(s: str) -> Fraction | None:
    mixed = _MIXED_RE.fullmatch(s)
    if mixed:
        sign, whole, numerator, denominator = mixed.groups()
        if not 0 < int(numerator) < int(denominator):
            return None  # 4 0/0, 11 7/6: not a mixed number
        value = int(whole.replace(" ", "")) + Fraction(int(numerator), int(denominator))
        return -value if sign == "-" else value
    ratio = _RATIO_RE.fullmatch(s)
    if ratio:
        return Fraction(int(ratio.group(1)), int(ratio.group(2))) if int(ratio.group(2)) else None
    if not _NUMBER_RE.fullmatch(s):
        return None
    return Fraction(re.sub(r"[^\d.+-]", "", s))


def _malformed_number(s: str) -> bool:
    """A mixed number or a ratio of integers without a value: ``4 0/0``, ``1 000 0/0``, ``11 7/6``, ``5/0``."""
    return bool(_MIXED_RE.fullmatch(s) or _RATIO_RE.fullmatch(s)) and _as_number(s) is None


def _decimal_comma(s: str, other: str) -> str:
    """``1,22`` / ``1000,99`` / ``0,111`` as ``1.22`` / ``1000.99`` / ``0.111`` when the `other` answer is a
    decimal with a point: one comma between digits that cannot separate thousands (not 1-3 digits, the
    first not 0, then groups of 3). Against anything else ``1,2`` stays a list."""
    if (re.fullmatch(r"[+-]?\d*\.\d+", other) and re.fullmatch(r"[+-]?\d+,\d+", s)
            and not re.fullmatch(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+", s)):
        return s.replace(",", ".")
    return s


def verify_math(response: str, gold: str, timeout_s: float = 5.0, lenient: bool = False, targets=None,
                float_rounding: int | None = None) -> Verdict:
    """Judge whether the final answer of ``response`` equals the ``gold`` answer.

    Args:
        response: the policy's full output; its final answer is found by `extract_answer`.
        gold: the gold answer as text, without ``\\boxed`` (e.g. ``"18"``, ``"\\frac{1}{2}"``).
        timeout_s: seconds allowed to each math-verify step (parsing the answer, parsing the gold,
            comparing), rounded up to whole seconds. The timeout needs signals, so it only applies in
            the main thread; in other threads math-verify runs without one.
        lenient: grade as math-verify-based evaluation harnesses do, for models that do not box their
            answers (never for RL rewards): the extraction of `extract_answer(..., lenient=True)` with
            `targets` (math-verify extraction configs), and against a decimal, a comma that cannot
            separate thousands read as a decimal comma (``1,22 == 1.22``).
        float_rounding: compare decimals rounded to this many places (math-verify's `float_rounding`;
            ``0.33`` equals ``1/3`` at 2). None: plain numbers exactly, math-verify at its default 6.

    Returns:
        A `Verdict`; never raises on bad input (unparseable text gives reason ``"parse_error"``).

    Identical answers (after `normalize_answer`) and plain numbers on both sides are decided without
    SymPy, numbers exactly (``18.0 == 18``, but ``18.0001 != 18``); anything else goes to math-verify,
    which compares numerically (6 decimals) and symbolically.

    >>> verify_math("so \\\\boxed{18}", "18.0").correct
    True
    >>> verify_math(r"\\boxed{\\dfrac12}", "0.5").reason
    'equal'
    >>> verify_math("it is 18", "18").reason
    'no_answer'
    """
    seconds = math.ceil(timeout_s) if threading.current_thread() is threading.main_thread() else None
    extracted = extract_answer(response, lenient, targets, seconds)
    if extracted is None:
        return Verdict(False, "no_answer", None)
    (answer, answer_percent), (reference, reference_percent) = _normalize(extracted), _normalize(gold)
    bare = _ASSIGNMENT_RE.sub("", answer).strip(), _ASSIGNMENT_RE.sub("", reference).strip()
    if "=" not in bare[0] and "=" not in bare[1]:  # "x = 3" against "3"; but "y = 2x" against "2x - y = 0" stays
        answer, reference = bare
    if lenient:
        answer, reference = _decimal_comma(answer, reference), _decimal_comma(reference, answer)
    reason = _compare(answer, reference, seconds, float_rounding)
    if reason != "equal" and answer_percent != reference_percent:
        # "20\%" against a gold of 20 (the question asked for a percentage) or of 0.2 (the same value)
        scaled = (_per_cent(answer), reference) if answer_percent else (answer, _per_cent(reference))
        if _compare(*scaled, seconds, float_rounding) == "equal":
            reason = "equal"
    return Verdict(reason == "equal", reason, extracted)


def _per_cent(s: str) -> str:
    number = _as_number(s)
    if number is not None:
        return f"{number.numerator}/{number.denominator * 100}"
    return f"\\frac{{{s}}}{{100}}"


def _in_base(s: str) -> tuple[str, str | None] | None:
    """(digits, base) of ``52_8`` / ``4210_{5}``, (digits, None) of plain digits, else None."""
    match = _BASE_RE.fullmatch(s)
    if match is None or (match.group(3) and not match.group(3).isdigit()):
        return None
    return (match.group(1), match.group(2)) if match.group(1) else (match.group(3), None)


def _compare(answer: str, reference: str, seconds: int | None, float_rounding: int | None = None) -> str:
    """"equal", "not_equal", "parse_error" or "timeout" for two normalised answers."""
    if answer and answer == reference:
        return "equal"
    based = _in_base(answer), _in_base(reference)
    if None not in based and (based[0][1] or based[1][1]):  # 52_8 against 52_8, 52 or 52_9
        (digits, base), (gold_digits, gold_base) = based
        same_base = base == gold_base or not (base and gold_base)
        return "equal" if same_base and digits.lower() == gold_digits.lower() else "not_equal"
    if _malformed_number(answer) or _malformed_number(reference):
        return "not_equal"  # 4 0/0, 11 7/6, 5/0 equal nothing (SymPy judges 0*0/0 == 0 under some hash seeds)
    answer_number, reference_number = _as_number(answer), _as_number(reference)
    if answer_number is not None and reference_number is not None:
        if float_rounding is not None:
            answer_number, reference_number = round(answer_number, float_rounding), round(reference_number, float_rounding)
        return "equal" if answer_number == reference_number else "not_equal"
    if answer_number is not None and not _DECIMAL_RE.fullmatch(answer):
        answer = str(answer_number)  # 1 000, 4 4/9: forms that SymPy would misread
    if reference_number is not None and not _DECIMAL_RE.fullmatch(reference):
        reference = str(reference_number)
    try:
        parsed_reference = parse(f"\\boxed{{{reference}}}", parsing_timeout=seconds, raise_on_error=True)
        parsed_answer = parse(f"\\boxed{{{answer}}}", parsing_timeout=seconds, raise_on_error=True)
    except TimeoutException:
        return "timeout"
    except Exception:
        return "parse_error"
    if not parsed_reference or not parsed_answer:
        return "parse_error"
    try:
        rounding = {} if float_rounding is None else {"float_rounding": float_rounding}
        equal = verify(parsed_reference, parsed_answer, timeout_seconds=seconds, raise_on_error=True, **rounding)
    except TimeoutException:
        return "timeout"
    except Exception:
        equal = False  # SymPy could not compare the two expressions
    return "equal" if equal else "not_equal"
