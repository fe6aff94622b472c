"""Generated multi-step integer arithmetic with graded difficulty and long chain-of-thought traces.

A problem is a chain of single-digit numbers (1-9) joined by + and -, such as ``7+8-3+9=?``; level L
has L+1 steps (L+2 numbers), so level 1 has 2 steps and level 4 has 5. Every running total stays in
0..`MAX_TOTAL`, so the arithmetic facts are few and the difficulty lies in the length of the chain.
The gold answer is the final total. Responses end with ``\\boxed{n}`` so rewards go through the real math verifier.

`cot_trace` writes the warm-up chain of thought the k1.5 report asks for (section 2.2: planning,
evaluation of intermediate steps, reflection): it announces a plan, computes one step per line,
checks steps by the inverse operation, and now and then makes a slip that the check catches and
corrects. Only traces whose final answer verifies are used (they always do, by construction; the SFT
recipe re-verifies them anyway).
"""

from __future__ import annotations

import random
import re
from collections import Counter

from mirrorl.tasks.problem import Problem

LEVELS = (1, 2, 3, 4)
MAX_TOTAL = 19


def _apply(total: int, op: str, x: int) -> int:
    return total + x if op == "+" else total - x


def _parse(problem: Problem) -> tuple[int, list[tuple[str, int]]]:
    return problem.meta["start"], [tuple(step) for step in problem.meta["steps"]]


def make_problem(start: int, steps: list[tuple[str, int]]) -> Problem:
    """The problem `start (op x)...` with its gold value; `level` is the number of steps minus one."""
    expr = str(start) + "".join(f"{op}{x}" for op, x in steps)
    total = start
    for op, x in steps:
        total = _apply(total, op, x)
    return Problem(id=f"arith-{expr}", prompt=f"{expr}=?\n", answer=str(total), kind="math",
                   level=len(steps) - 1, meta={"start": start, "steps": [list(s) for s in steps]})


def generate_arithmetic(n: int, seed: int, levels: tuple[int, ...] = LEVELS,
                        exclude: set[str] = frozenset()) -> list[Problem]:
    """`n` distinct problems spread evenly over `levels` (round robin), none of whose ids is in `exclude`.

    Deterministic for a given `seed`. Raises ValueError if a level cannot supply enough distinct problems.
    """
    rng = random.Random(seed)
    seen, out = set(exclude), []
    for i in range(n):
        level = levels[i % len(levels)]
        for _attempt in range(1000):
            start = total = rng.randint(1, 9)
            steps = []
            for _ in range(level + 1):
                op, x = rng.choice([(op, x) for op in "+-" for x in range(1, 10)
                                    if 0 <= _apply(total, op, x) <= MAX_TOTAL])
                steps.append((op, x))
                total = _apply(total, op, x)
            problem = make_problem(start, steps)
            if problem.id not in seen:
                break
        else:
            raise ValueError(f"level {level}: fewer than needed distinct problems left after exclusions")
        seen.add(problem.id)
        out.append(problem)
    return out


def _check(prev: int, op: str, x: int, total: int) -> str:
    """The check of the step `prev op x = total`: undo it and compare with `prev`, ``ok`` or ``no``.

    The comparison is written out (``12+3=15 vs 15 ok``), so the verdict follows from two numbers side
    by side. Without the comparison the warm-up model learnt to write verdicts that hardly depended on
    the numbers (README, "Latest demo figures"; `bench/reflection_audit.py`).
    """
    inv = "-" if op == "+" else "+"
    undone = _apply(total, inv, x)
    return f"check {total}{inv}{x}={undone} vs {prev} {'ok' if undone == prev else 'no'}"


def cot_trace(problem: Problem, rng: random.Random, slip_rate: float = 0.15, check_rate: float = 1.0) -> str:
    """A verified long chain of thought for `problem`, ending in ``\\boxed{answer}``.

    The trace works left to right: it computes the first operation, checks it by the inverse
    operation (the undone step compared with the number it started from), then rewrites what is left
    of the chain with the result in front, until one number remains. The rewritten line is the plan
    for the rest of the work, and because every step only reads the front of the line above it, the
    procedure is the same however long the chain is.
    Example for ``7+8-3=?`` with one slip that the check catches::

        7+8=15 check 15-8=7 vs 7 ok
        15-3
        15-3=11 check 11+3=14 vs 15 no
        15-3=12 check 12+3=15 vs 15 ok
        answer: \\boxed{12}

    With ``check_rate < 1`` a step goes unchecked (``15-3=12``, and no slip, which only a check could
    catch) with probability ``1 - check_rate``, so traces of one problem differ in length by the checks
    they make: what long2short's methods can learn to drop (report section 2.4).

    Args:
        slip_rate: probability that a checked step is first written off by one, then caught and redone.
        check_rate: probability that a step is checked (1.0: every step, and no random draw for it).
    """
    start, steps = _parse(problem)
    lines, total = [], start
    for i, (op, x) in enumerate(steps):
        new = _apply(total, op, x)
        if check_rate < 1.0 and rng.random() >= check_rate:
            lines.append(f"{total}{op}{x}={new}")
        else:
            if rng.random() < slip_rate:
                wrong = new + rng.choice((-1, 1)) if new > 0 else new + 1
                lines.append(f"{total}{op}{x}={wrong} {_check(total, op, x, wrong)}")
            lines.append(f"{total}{op}{x}={new} {_check(total, op, x, new)}")
        total = new
        if i + 1 < len(steps):
            lines.append(str(total) + "".join(f"{o}{y}" for o, y in steps[i + 1:]))
    lines.append(f"answer: \\boxed{{{total}}}")
    return "\n".join(lines)


def short_trace(problem: Problem) -> str:
    """A short chain of thought for `problem`: one running total per line, no plan, checks or slips,
    then ``\\boxed{answer}`` (the short-CoT style that long2short merges with, report section 2.4).

    >>> short_trace(make_problem(7, [("+", 8), ("-", 3)]))
    '7+8=15\\n15-3=12\\nanswer: \\\\boxed{12}'
    """
    total, steps = _parse(problem)
    lines = []
    for op, x in steps:
        new = _apply(total, op, x)
        lines.append(f"{total}{op}{x}={new}")
        total = new
    return "\n".join(lines) + f"\nanswer: \\boxed{{{total}}}"


_STEP = re.compile(r"(\d+)([+-])(\d+)=(-?\d+)(?: check (-?\d+)([+-])(\d+)=(-?\d+)(?: vs -?\d+)? (ok|no))?")


def audit_steps(response: str) -> Counter:
    """Count what the steps of a chain of thought in `cot_trace`'s format do: how often the model checks,
    how often a checked step is wrong, and whether the check catches it (report section 2.2: reflection).

    A step line is ``a op b = c`` (unchecked) or ``a op b = c check c inv b = d [vs a] ok|no``. Lines of
    any other form (the rewritten chain, the answer, malformed text) are skipped.

    Returns: a Counter with ``steps``, ``checked``, ``wrong`` (c is not a op b), ``wrong_checked``,
    ``wrong_caught`` (a wrong checked step marked ``no``), ``false_alarms`` (a right step marked ``no``),
    ``unchecked_wrong`` and ``check_arithmetic_wrong`` (d is not c inv b); zero counts are absent.
    """
    counts: Counter = Counter()
    for line in response.splitlines():
        match = _STEP.fullmatch(line.strip())
        if not match:
            continue
        a, op, b, c, d, inv_op, e, f, verdict = match.groups()
        wrong = _apply(int(a), op, int(b)) != int(c)
        counts["steps"] += 1
        counts["wrong"] += wrong
        if verdict is None:
            counts["unchecked_wrong"] += wrong
            continue
        counts["checked"] += 1
        counts["wrong_checked"] += wrong
        counts["wrong_caught"] += wrong and verdict == "no"
        counts["false_alarms"] += not wrong and verdict == "no"
        counts["check_arithmetic_wrong"] += _apply(int(d), inv_op, int(e)) != int(f)
    return +counts
