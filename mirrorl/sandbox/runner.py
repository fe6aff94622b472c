"""Judge one submission: run its tests in the sandbox and turn how the runs ended into verdicts.

Two styles of tests, mixable in one request:

* **assert tests** (strings of Python, HumanEval/MBPP style) all run in one process under `harness.py`,
  after the code and the optional ``setup``; one result per string.
* **stdin/stdout cases** (``{"stdin", "expected_stdout"}``) run the code as a program, one process per
  case, and compare stdout (`compare.outputs_match`: line-wise by default, ``exact`` or ``float`` on request).

With ``stop_on_first_failure`` (the default) nothing runs after the first test that did not pass.
"""

from __future__ import annotations

import ast
import base64
import binascii
import posixpath
import secrets
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from mirrorl.sandbox.compare import outputs_match
from mirrorl.sandbox.isolation import Limits, Outcome, Sandbox
from mirrorl.sandbox.verdicts import RunResult, TestResult, Verdict, make_result

HARNESS = (Path(__file__).parent / "harness.py").read_bytes()
_HARNESS_STATUS = {"passed": Verdict.accepted, "failed": Verdict.wrong_answer, "error": Verdict.runtime_error,
                   "memory": Verdict.memory_limit, "output": Verdict.output_limit}
_TEXT_CHARS = 4000


class StdioTest(BaseModel):
    """One stdin/stdout case."""

    stdin: str = ""
    expected_stdout: str
    float_tolerance: float | None = Field(None, ge=0, description="compare numbers within this tolerance")


class RunRequest(BaseModel):
    """A Python submission and its tests."""

    code: str
    tests: list[str | StdioTest] = Field(default_factory=list, description="assert blocks and/or stdin cases")
    setup: str = Field("", description="Python run after the code, before the assert tests (MBPP test_setup_code)")
    entry_point: str | None = Field(None, description="the function the tests call, when it shadows a builtin")
    compare: Literal["lines", "exact", "float"] = "lines"
    float_tolerance: float = Field(1e-6, ge=0, description="tolerance of compare='float'")
    stop_on_first_failure: bool = True
    limits: Limits = Field(default_factory=Limits)
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> base64, put in the working folder")

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for name, data in files.items():
            parts = posixpath.normpath(name).split("/")
            if name.startswith("/") or ".." in parts or parts[0] in (".", "", "harness.py", "main.py"):
                raise ValueError(f"files: {name!r} must be a relative path inside the working folder")
            try:
                base64.b64decode(data, validate=True)
            except binascii.Error as err:
                raise ValueError(f"files: {name!r} is not base64: {err}") from None
        return files


async def judge(sandbox: Sandbox, request: RunRequest) -> RunResult:
    """Run ``request``'s tests and return the verdict; a problem without tests is a data error."""
    start = time.monotonic()
    if not request.tests:
        return make_result([], verdict=Verdict.sandbox_error, message="the problem has no tests (data error)")
    files = {name: base64.b64decode(data) for name, data in request.files.items()}
    results: dict[int, TestResult] = {}
    asserts = [i for i, t in enumerate(request.tests) if isinstance(t, str)]
    run_verdict, message, stdout, stderr = None, "", "", ""
    if asserts:
        run_verdict, message, stdout, stderr = await _run_asserts(sandbox, request, asserts, files, results)
    failed = run_verdict not in (None, Verdict.accepted) or any(r.verdict != Verdict.accepted for r in results.values())
    for index, test in enumerate(request.tests):
        if isinstance(test, str):
            continue
        if failed and request.stop_on_first_failure:
            results[index] = TestResult(index=index, kind="stdio")
            continue
        result, case_stderr = await _run_stdio(sandbox, request, index, test, files)
        results[index] = result
        if result.verdict != Verdict.accepted and not failed:
            failed, stderr = True, case_stderr
    tests = [results[i] for i in range(len(request.tests))]
    return make_result(tests, verdict=run_verdict, message=message, stdout=stdout, stderr=stderr,
                       seconds=time.monotonic() - start)


async def _run_asserts(sandbox, request, indices, files, results):
    """All assert tests in one harness process; fills ``results``; returns (verdict override, message, out, err)."""
    nonce = secrets.token_hex(16)
    config = {"nonce": nonce, "code": request.code, "setup": request.setup, "entry_point": request.entry_point,
              "tests": [request.tests[i] for i in indices], "stop_on_first_failure": request.stop_on_first_failure}
    room = 1024 + 700 * len(indices)  # the result record, on top of the program's own output
    outcome = await sandbox.execute({**files, "harness.py": HARNESS}, ["harness.py"],
                                    _json_bytes(config), request.limits, request.limits.output_kb * 1024 + room)
    out, err = _text(outcome.stdout), _text(outcome.stderr)
    for i in indices:
        results[i] = TestResult(index=i)
    position = out.rfind(nonce)
    record = _parse_record(out[position + len(nonce):]) if position >= 0 else None
    stdout = out[:position].removesuffix("\n") if position >= 0 else out
    if record is None:
        verdict, why = _process_verdict(outcome, request.limits)
        if verdict is None:
            verdict = Verdict.runtime_error
            why = f"the program exited (status {outcome.returncode}) before the tests finished"
        return verdict, why, stdout[:_TEXT_CHARS], err[-_TEXT_CHARS:]
    stage, stage_message, ran, problem = record
    if stage == "bad_test":
        return Verdict.sandbox_error, f"a test does not compile (data error): {stage_message}", stdout, err
    if stage != "ran":
        return _HARNESS_STATUS.get(stage, Verdict.runtime_error), f"before the tests: {stage_message}", stdout, err
    for i, (status, text, seconds) in zip(indices, ran):
        results[i] = TestResult(index=i, verdict=_HARNESS_STATUS.get(status, Verdict.runtime_error), seconds=seconds,
                                message=text)
    if problem:
        return Verdict.runtime_error, f"harness integrity: {problem}", stdout[:_TEXT_CHARS], err[-_TEXT_CHARS:]
    return None, "", stdout[:_TEXT_CHARS], err[-_TEXT_CHARS:]


async def _run_stdio(sandbox, request, index, test: StdioTest, files) -> tuple[TestResult, str]:
    outcome = await sandbox.execute({**files, "main.py": request.code.encode()}, ["main.py"],
                                    test.stdin.encode(), request.limits)
    out, err = _text(outcome.stdout), _text(outcome.stderr)
    verdict, message = _process_verdict(outcome, request.limits)
    if verdict is None:
        mode, tolerance = request.compare, request.float_tolerance
        if test.float_tolerance is not None:
            mode, tolerance = "float", test.float_tolerance
        matched = outputs_match(out, test.expected_stdout, mode, tolerance)
        verdict = Verdict.accepted if matched else Verdict.wrong_answer
        message = "" if matched else _first_difference(out, test.expected_stdout)
    result = TestResult(index=index, kind="stdio", verdict=verdict, seconds=round(outcome.seconds, 4),
                        message=message, stdout=out[:_TEXT_CHARS])
    return result, err[-_TEXT_CHARS:]


def _process_verdict(outcome: Outcome, limits: Limits) -> tuple[Verdict | None, str]:
    """The verdict that how the process ended implies; (None, "") when it exited normally."""
    tail = outcome.stderr[-2000:].decode(errors="replace")
    last = (tail.strip().splitlines() or [""])[-1]
    if outcome.oom_killed:
        return Verdict.memory_limit, f"over the memory limit of {limits.memory_mb} MB (all processes of the run)"
    if outcome.output_exceeded:
        return Verdict.output_limit, f"more than {limits.output_kb} KB of output"
    if outcome.timed_out:
        return Verdict.time_limit, f"over the wall-clock limit of {limits.wall_s:g} s"
    if outcome.signal == signal.SIGXCPU:
        return Verdict.time_limit, f"over the CPU limit of {limits.cpu_s:g} s"
    if outcome.signal == signal.SIGXFSZ or "[Errno 27] File too large" in tail:
        return Verdict.output_limit, f"a file over the file-size limit of {limits.file_size_mb} MB"
    if outcome.returncode == 0:
        return None, ""
    first = tail.lstrip().split("\n", 1)[0] if len(outcome.stderr) <= 2000 else ""
    if first.startswith(("bwrap: ", "prlimit: ", "setpriv: ", "sh: ")):  # the sandbox's own tools failed
        return Verdict.sandbox_error, f"the sandbox failed: {first}"
    if last.startswith("MemoryError"):
        return Verdict.memory_limit, f"over the memory limit of {limits.memory_mb} MB"
    if outcome.signal is not None:
        return Verdict.runtime_error, f"killed by {signal.Signals(outcome.signal).name}"
    return Verdict.runtime_error, last or f"exit status {outcome.returncode}"


def _parse_record(text: str):
    """The harness's record ``(stage, message, [(status, message, seconds)], problem)``, or None if malformed."""
    try:
        record = ast.literal_eval(text.split("\n", 1)[0].strip())
        stage, message, ran, problem = record
        assert isinstance(stage, str) and isinstance(message, str) and isinstance(problem, str)
        assert all(isinstance(s, str) and isinstance(m, str) and isinstance(t, (int, float)) for s, m, t in ran)
        return stage, message, ran, problem
    except (ValueError, SyntaxError, TypeError, AssertionError, MemoryError, RecursionError):
        return None


def _first_difference(actual: str, expected: str) -> str:
    got, want = actual.splitlines(), expected.splitlines()
    for number, (a, e) in enumerate(zip(got, want), 1):
        if a.rstrip() != e.rstrip():
            return f"line {number}: got {a[:80]!r}, expected {e[:80]!r}"
    return f"got {len(got)} lines, expected {len(want)}"


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _json_bytes(value) -> bytes:
    import json
    return json.dumps(value).encode()
