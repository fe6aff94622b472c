"""Countdown: reach a target number using each given number exactly once with + - * / and parentheses.

A small arithmetic task with an exactly checkable answer, for training and testing the RL loop on
tiny models before moving to real math. Level 1 uses 3 numbers, level 2 uses 4; numbers are 1-100 and
targets 1-999. Every generated problem is built from a random expression over its numbers, so a
solution exists (it is kept in ``meta["solution"]``).
"""

from __future__ import annotations

import ast
import dataclasses
import operator
import random
import re
from collections import Counter
from fractions import Fraction

from mirrorl.rewards.math import Verdict, extract_answer
from mirrorl.tasks.problem import Problem

NUMBER_COUNTS = {1: 3, 2: 4}  # level -> how many numbers the problem gives
MAX_NUMBER = 100
MAX_TARGET = 999

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_EXPRESSION_CHARS = re.compile(r"[0-9+\-*/()\s]+")
_LATEX_OPERATORS = {"\\times": "*", "\\cdot": "*", "\\div": "/"}


def countdown_problem(numbers: list[int], target: int, id: str, level: int | None = None) -> Problem:
    """Build the Countdown `Problem` for ``numbers`` and ``target`` (also used for rows loaded from jsonl).

    ``level`` defaults to ``len(numbers) - 2`` (3 numbers -> 1, 4 numbers -> 2).

    >>> countdown_problem([3, 7, 25, 50], 181, "cd-0").prompt
    'use 3 7 25 50 once each with + - * / to make 181.\\n'
    """
    numbers = [int(x) for x in numbers]
    return Problem(
        id=id,
        prompt=f"use {' '.join(map(str, numbers))} once each with + - * / to make {target}.\n",
        answer=str(target),
        kind="countdown",
        level=len(numbers) - 2 if level is None else level,
        meta={"numbers": numbers, "target": int(target)},
    )


def generate_countdown(n: int, seed: int, levels: tuple[int, ...] = (1, 2)) -> list[Problem]:
    """Generate ``n`` solvable Countdown problems, deterministically from ``seed``.

    Problem ``i`` has level ``levels[i % len(levels)]``. Each one comes from a random expression over
    random numbers 1-100 whose intermediate results are all positive integers (divisions exact) and
    whose value, the target, is 1-999; that expression is stored as ``meta["solution"]``.

    Raises:
        ValueError: ``n`` is negative or a level is not 1 or 2.

    >>> p = generate_countdown(1, seed=0)[0]
    >>> p.id, p.level, len(p.meta["numbers"])
    ('countdown-0-0', 1, 3)
    >>> verify_countdown(rf"\\boxed{{{p.meta['solution']}}}", p.meta["numbers"], int(p.answer)).correct
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not levels or any(level not in NUMBER_COUNTS for level in levels):
        raise ValueError(f"levels must be a non-empty tuple of {sorted(NUMBER_COUNTS)}, got {levels}")
    rng = random.Random(seed)
    problems = []
    for i in range(n):
        level = levels[i % len(levels)]
        numbers, target, solution = _random_solvable(rng, NUMBER_COUNTS[level])
        problem = countdown_problem(numbers, target, f"countdown-{seed}-{i}", level)
        problems.append(dataclasses.replace(problem, meta={**problem.meta, "solution": solution}))
    return problems


def _random_solvable(rng: random.Random, count: int) -> tuple[list[int], int, str]:
    """Combine random numbers pairwise with random operators until one value is left (retrying bad draws)."""
    while True:
        numbers = [rng.randint(1, MAX_NUMBER) for _ in range(count)]
        pool = [(x, str(x)) for x in numbers]  # (value, expression)
        while len(pool) > 1:
            (a, text_a), (b, text_b) = (pool.pop(rng.randrange(len(pool))) for _ in range(2))
            symbol = rng.choice("+-*/")
            if symbol == "-" and a <= b or symbol == "/" and a % b:
                break  # intermediate results must stay positive integers
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[symbol]
            pool.append((value, f"{_operand(text_a)} {symbol} {_operand(text_b)}"))
        else:  # every number was used
            target, solution = pool[0]
            if target <= MAX_TARGET:
                return numbers, target, solution


def _operand(expression: str) -> str:
    return expression if expression.isdigit() else f"({expression})"


def verify_countdown(response: str, numbers: list[int], target: int) -> Verdict:
    """Judge a Countdown response: its boxed expression must use exactly ``numbers`` and equal ``target``.

    The expression is the last ``\\boxed{...}`` of the response (``\\boxed{expr = target}`` counts as
    ``expr``). Allowed: integer literals, binary + - * / (``\\times``, ``\\cdot``, ``\\div`` are read
    as * and /) and parentheses; anything else (names, calls, powers, unary minus) is a ``parse_error``.
    The value is computed exactly with fractions; a division by zero is ``not_equal``. Each number must
    be used exactly as often as it is given.

    >>> verify_countdown(r"\\boxed{(25 - 7) * 3 + 50 = 104}", [3, 7, 25, 50], 104).reason
    'equal'
    >>> verify_countdown(r"\\boxed{25 * 7 + 3 + 3}", [3, 7, 25, 50], 181).reason
    'not_equal'
    """
    extracted = extract_answer(response)
    if extracted is None:
        return Verdict(False, "no_answer", None)
    expression = extracted.split("=")[0]
    for latex, symbol in _LATEX_OPERATORS.items():
        expression = expression.replace(latex, symbol)
    try:
        if not _EXPRESSION_CHARS.fullmatch(expression):
            raise SyntaxError("only digits, + - * / and parentheses are allowed")
        tree = ast.parse(expression.strip(), mode="eval").body
        literals = _literals(tree)
    except (SyntaxError, RecursionError):  # RecursionError: absurdly deep nesting
        return Verdict(False, "parse_error", extracted)
    if Counter(literals) != Counter(int(x) for x in numbers):
        return Verdict(False, "not_equal", extracted)
    try:
        equal = _evaluate(tree) == target
    except ZeroDivisionError:
        equal = False
    return Verdict(equal, "equal" if equal else "not_equal", extracted)


def _literals(node: ast.expr) -> list[int]:
    """The integer literals of an arithmetic expression; SyntaxError for any other syntax."""
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _literals(node.left) + _literals(node.right)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    raise SyntaxError(f"{type(node).__name__} is not allowed")


def _evaluate(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
