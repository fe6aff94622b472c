"""Reward functions: judge a response to a `Problem` with the rule-based checker of its kind.

Rewards are binary, as in the Kimi k1.5 report (section 2.3.1): 1 when the final answer is correct (for
code: when every test passes in the sandbox), else 0.
"""

from __future__ import annotations

import mirrorl.tasks.countdown as countdown
from mirrorl.rewards.math import Verdict, verify_math
from mirrorl.tasks.problem import Problem

__all__ = ["Verdict", "score", "verify_math"]


def score(problem: Problem, response: str) -> Verdict:
    """Judge ``response`` to ``problem``: math answers by equivalence, Countdown expressions exactly,
    code by running the problem's tests in the sandbox (`mirrorl.rewards.code`).

    The reward is ``float(score(problem, response).correct)``.

    Raises:
        ValueError: ``problem.kind`` is not ``"math"``, ``"countdown"`` or ``"code"``.
    """
    if problem.kind == "math":
        return verify_math(response, problem.answer)
    if problem.kind == "countdown":
        return countdown.verify_countdown(response, problem.meta["numbers"], int(problem.answer))
    if problem.kind == "code":
        from mirrorl.rewards.code import verify_code
        return verify_code(problem, response)
    raise ValueError(f"problem {problem.id}: unknown kind {problem.kind!r}, expected 'math', 'countdown' or 'code'")
