"""Rule-based question-type filter (report section 2.1, anti-hacking): multiple-choice and true/false questions
can be answered right by guessing, and proofs cannot be checked by a final-answer verifier, so curation drops them.

`question_type` names the type a rule recognises, or None. The rules read the prompt and the gold answer:

* ``multiple_choice``: the gold answer is an option letter (``C``, ``(C)``, ``\\text{(C)}``, ``\\textbf{(C)}``), or
  the prompt lists the options ``(A)`` and ``(B)`` (also ``\\textbf{(A)}``, ``A)`` / ``A.`` at line starts) outside
  ``[asy]`` figures, whose point labels look alike;
* ``true_false``: the gold answer is true/false/yes/no, or the prompt asks "true or false" / "yes or no" and the
  gold is not a number (a counting problem about a true/false test is kept);
* ``proof``: the prompt asks to prove or show something ("prove", "proof", "show that").

Only math problems are judged: code, Countdown and generated arithmetic are checked by execution or exactly, so
they never match. The rules are words, not understanding: "prove" in a story problem drops it too.

>>> from mirrorl.tasks.problem import Problem
>>> question_type(Problem("a", "Which is larger? (A) 2^10 (B) 10^3", "\\\\text{(A)}"))
'multiple_choice'
>>> question_type(Problem("b", "Prove that there are infinitely many primes.", "-"))
'proof'
>>> question_type(Problem("c", "Find $x$ if $2x = 6$.", "3")) is None
True
"""

from __future__ import annotations

import re

from mirrorl.tasks.problem import Problem

TYPES = ("multiple_choice", "true_false", "proof")

_LETTER_ANSWER = re.compile(r"\s*(?:\\(?:text|textbf|mathrm)\s*\{\s*)?\(?\s*([A-E])\s*\)?\s*\}?\s*")
_FIGURE = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
_NUMBER = re.compile(r"\s*-?\d[\d,]*(?:\.\d+)?\s*")
_OPTION = re.compile(r"\(([A-E])\)|^\s*([A-E])[.)]\s", re.MULTILINE)
_BOOLEAN_ANSWER = re.compile(r"\s*(?:\\text\s*\{\s*)?(true|false|yes|no)\s*\}?\s*", re.IGNORECASE)
_BOOLEAN_PROMPT = re.compile(r"\btrue\s+or\s+false\b|\btrue\s*/\s*false\b|\byes\s+or\s+no\b", re.IGNORECASE)
_PROOF_PROMPT = re.compile(r"\bprove\b|\bproof\b|\bshow\s+that\b", re.IGNORECASE)


def question_type(problem: Problem) -> str | None:
    """The guessable or uncheckable type of a math `problem` (one of `TYPES`), or None when no rule matches
    (and always for code and Countdown problems)."""
    if problem.kind != "math":
        return None
    options = {a or b for a, b in _OPTION.findall(_FIGURE.sub("", problem.prompt))}
    if _LETTER_ANSWER.fullmatch(problem.answer) or {"A", "B"} <= options:
        return "multiple_choice"
    if _BOOLEAN_ANSWER.fullmatch(problem.answer) or (_BOOLEAN_PROMPT.search(problem.prompt)
                                                      and not _NUMBER.fullmatch(problem.answer)):
        return "true_false"
    if _PROOF_PROMPT.search(problem.prompt):
        return "proof"
    return None
