"""Verdicts of a sandboxed run, per test and overall, and the reward computed from them.

A run is ``accepted`` only when every test ran and passed; the first test that did not pass decides the
verdict of the run, as judges usually report it. A problem without tests never passes: it is a data error
and gets ``sandbox_error``. The reward is binary, as in the Kimi k1.5 report (section 2.3.1).

>>> overall([TestResult(index=0, verdict=Verdict.accepted), TestResult(index=1, verdict=Verdict.wrong_answer)])
<Verdict.wrong_answer: 'wrong_answer'>
>>> overall([])
<Verdict.sandbox_error: 'sandbox_error'>
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class Verdict(str, Enum):
    """The outcome of one test or of a whole run."""

    accepted = "accepted"  # ran to the end and every check passed
    wrong_answer = "wrong_answer"  # a failed assert, a wrong stdout, or a value the tests cannot compare safely
    runtime_error = "runtime_error"  # an exception, a non-zero exit, an early exit, or a tampered harness
    time_limit = "time_limit"  # over the CPU-time or the wall-clock limit
    memory_limit = "memory_limit"  # MemoryError under the address-space limit
    output_limit = "output_limit"  # stdout + stderr over the output limit, or a file over the file-size limit
    sandbox_error = "sandbox_error"  # the sandbox failed, or the problem has no tests (a data error)


class TestResult(BaseModel):
    """One test: an assert block (``kind="assert"``) or one stdin/stdout case (``kind="stdio"``)."""

    __test__ = False  # not a pytest class

    index: int
    kind: str = "assert"
    verdict: Verdict | None = Field(None, description="None when the test did not run (an earlier one failed)")
    seconds: float = 0.0
    message: str = ""
    stdout: str | None = Field(None, description="the program's stdout (stdio tests; truncated)")


class RunResult(BaseModel):
    """The judgement of one submission."""

    verdict: Verdict
    passed: bool = Field(description="verdict == accepted")
    reward: float = Field(description="1.0 when accepted, else 0.0")
    tests: list[TestResult] = []
    message: str = Field("", description="why the run did not pass, in one line")
    stdout: str = Field("", description="stdout of the assert run (truncated)")
    stderr: str = Field("", description="stderr of the first failing run (truncated)")
    seconds: float = 0.0


def overall(tests: list[TestResult]) -> Verdict:
    """The run's verdict: the verdict of the first test that did not pass; ``accepted`` if all passed."""
    if not tests:
        return Verdict.sandbox_error
    for test in tests:
        if test.verdict is None:
            return Verdict.sandbox_error  # a test that never ran without an earlier failure
        if test.verdict != Verdict.accepted:
            return test.verdict
    return Verdict.accepted


def reward(result: RunResult) -> float:
    """The k1.5 binary reward: 1.0 when every test passed, else 0.0."""
    return 1.0 if result.verdict == Verdict.accepted else 0.0


def make_result(tests: list[TestResult], *, verdict: Verdict | None = None, message: str = "", stdout: str = "",
                stderr: str = "", seconds: float = 0.0) -> RunResult:
    """A `RunResult` whose verdict (unless given), ``passed`` and reward follow from ``tests``."""
    verdict = verdict or overall(tests)
    if not message and verdict != Verdict.accepted:
        failing = next((t for t in tests if t.verdict != Verdict.accepted), None)
        message = f"test {failing.index}: {failing.message}" if failing else "the problem has no tests (data error)"
    result = RunResult(verdict=verdict, passed=verdict == Verdict.accepted, reward=0.0, tests=tests,
                       message=message, stdout=stdout, stderr=stderr, seconds=round(seconds, 4))
    result.reward = reward(result)
    return result
