"""Diversity tags for curation (report section 2.1): each prompt's domain, subject, level and difficulty bucket,
so a curated set can be inspected and balanced.

Tags come from the data where it has them (MATH's ``subject``/``type`` kept in ``meta["subject"]``, the ``level``
field) and from rules otherwise: the problem kind gives the domain (``math``, ``code``, ``countdown``), the first
matching keyword rule of `SUBJECT_RULES` gives a math subject (``general`` when none matches), and the measured
pass rate gives the difficulty bucket (`difficulty_bucket`). The keyword rules are a rough first cut, not a
classifier.

>>> from mirrorl.tasks.problem import Problem
>>> tags(Problem("a", "7+8-3=?", "12", level=2), pass_rate=0.3)
{'domain': 'math', 'subject': 'arithmetic', 'level': 2, 'difficulty': 'hard'}
>>> tags(Problem("b", "What is the probability of two heads?", "1/4"))["subject"]
'counting & probability'
"""

from __future__ import annotations

import re

from mirrorl.tasks.problem import Problem

# (subject, pattern), first match wins; MATH's own subjects take precedence over these rules.
SUBJECT_RULES = (
    ("arithmetic", re.compile(r"^\s*[\d\s+\-*/().]+=\s*\?\s*$")),
    ("counting & probability", re.compile(r"probabilit|how many (?:ways|different)|\bchoose\b|\bdice\b|\bcoins?\b|"
                                          r"permutation|combination|\\binom", re.IGNORECASE)),
    ("number theory", re.compile(r"\bprimes?\b|divisib|divisor|remainder|\bgcd\b|\blcm\b|greatest common|"
                                 r"least common multiple|modulo|\\pmod|\bdigits?\b|\bbase[- ]\d", re.IGNORECASE)),
    ("geometry", re.compile(r"triangle|circle|angle|polygon|square|rectangle|radius|perimeter|\barea\b|volume|"
                            r"\[asy\]", re.IGNORECASE)),
    ("precalculus", re.compile(r"\\sin|\\cos|\\tan|matri|vector|complex number|polar", re.IGNORECASE)),
    ("algebra", re.compile(r"[a-z]\^|\bsolve\b|equation|polynomial|\bf\(x\)|\bslope\b|\\frac|\bx\b",
                           re.IGNORECASE)),
    ("word problem", re.compile(r"\A[^$\\]*\Z")),  # plain text without LaTeX (GSM8K)
)


def subject(problem: Problem) -> str:
    """The problem's subject: MATH's own (lower-cased) when the data has it, else the first `SUBJECT_RULES` match
    (``general`` when none); code and Countdown problems are their own subject."""
    if problem.kind != "math":
        return problem.kind
    if isinstance(problem.meta.get("subject"), str):
        return problem.meta["subject"].lower()
    return next((name for name, pattern in SUBJECT_RULES if pattern.search(problem.prompt)), "general")


def difficulty_bucket(pass_rate: float | None) -> str:
    """``unsolved`` (0), ``hard`` (<= 0.3), ``medium`` (<= 0.7), ``easy`` (above), ``unmeasured`` (None)."""
    if pass_rate is None:
        return "unmeasured"
    if pass_rate == 0:
        return "unsolved"
    return "hard" if pass_rate <= 0.3 else "medium" if pass_rate <= 0.7 else "easy"


def tags(problem: Problem, pass_rate: float | None = None) -> dict:
    """``{"domain", "subject", "level", "difficulty"}`` of a problem; level 0 means the data has none."""
    return {"domain": "code" if problem.kind == "code" else "countdown" if problem.kind == "countdown" else "math",
            "subject": subject(problem), "level": problem.level, "difficulty": difficulty_bucket(pass_rate)}
