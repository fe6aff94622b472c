"""Compare a program's stdout with the expected stdout, as online judges do.

Three modes:
    * ``lines`` (default): line by line, trailing whitespace of each line and trailing blank lines ignored;
    * ``exact``: byte for byte;
    * ``float``: like ``lines``, then token by token (split on whitespace); a token that is an integer in the
      expected output must be the same integer, other numbers match within ``tolerance`` (absolute or
      relative), any other token must match exactly.

>>> outputs_match("1 2  \\n3\\n\\n", "1 2\\n3")
True
>>> outputs_match("0.333333", "0.3333333333", "float", 1e-6), outputs_match("3.0", "3", "float", 1e-6)
(True, False)
"""

from __future__ import annotations

import math
import re

MODES = ("lines", "exact", "float")
_INT_RE = re.compile(r"[+-]?\d+")


def normalized_lines(text: str) -> list[str]:
    """The lines of `text` as the ``lines`` comparison sees them: trailing whitespace and blank lines dropped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _token_match(actual: str, expected: str, tolerance: float) -> bool:
    if actual == expected:
        return True
    if _INT_RE.fullmatch(expected):
        return _INT_RE.fullmatch(actual) is not None and int(actual) == int(expected)
    try:
        a, e = float(actual), float(expected)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(e):
        return math.isnan(a) and math.isnan(e)
    return math.isclose(a, e, rel_tol=tolerance, abs_tol=tolerance)


def outputs_match(actual: str, expected: str, mode: str = "lines", tolerance: float = 1e-6) -> bool:
    """True iff ``actual`` stdout matches ``expected`` under ``mode`` (see the module docstring)."""
    if mode == "exact":
        return actual == expected
    if mode not in MODES:
        raise ValueError(f"unknown comparison {mode!r}, expected one of {MODES}")
    got, want = normalized_lines(actual), normalized_lines(expected)
    if mode == "lines" or len(got) != len(want):
        return got == want
    for line_got, line_want in zip(got, want):
        tokens_got, tokens_want = line_got.split(), line_want.split()
        if len(tokens_got) != len(tokens_want):
            return False
        if not all(_token_match(a, e, tolerance) for a, e in zip(tokens_got, tokens_want)):
            return False
    return True
