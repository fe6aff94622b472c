"""Output comparison and verdict rules of the sandbox, without running anything."""

import pytest

from mirrorl.sandbox.compare import outputs_match
from mirrorl.sandbox.verdicts import TestResult, Verdict, make_result, overall

V = Verdict


@pytest.mark.parametrize("actual, expected, mode, tolerance, match", [
    ("1 2\n3\n", "1 2\n3", "lines", 0, True),
    ("1 2 \t\n3\r\n\n\n", "1 2\n3\n", "lines", 0, True),  # trailing whitespace, CRLF and blank lines ignored
    ("\n1 2\n3\n", "1 2\n3\n", "lines", 0, False),  # leading blank lines count
    ("1  2\n", "1 2\n", "lines", 0, False),
    ("1 2\n", "1 2", "exact", 0, False),
    ("1.0000001 x\n", "1.0 x\n", "float", 1e-6, True),
    ("1.1 x\n", "1.0 x\n", "float", 1e-6, False),
    ("1e9\n", "1000000000.5\n", "float", 1e-6, True),  # relative tolerance
    ("10\n", "10.0\n", "float", 1e-6, True),  # the expected token is not an integer
    ("10.0\n", "10\n", "float", 1e-6, False),  # integers are compared exactly
    ("-007\n", "-7\n", "float", 1e-6, True),
    ("nan\n", "nan\n", "float", 1e-6, True),
    ("YES\n", "yes\n", "float", 1e-6, False),
    ("1 2 3\n", "1 2\n", "float", 1e-6, False),
])
def test_outputs_match(actual, expected, mode, tolerance, match):
    assert outputs_match(actual, expected, mode, tolerance) is match


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown comparison"):
        outputs_match("", "", "fuzzy")


def test_first_failure_decides_and_no_tests_never_pass():
    tests = [TestResult(index=0, verdict=V.accepted), TestResult(index=1, verdict=V.time_limit),
             TestResult(index=2, verdict=V.wrong_answer)]
    assert overall(tests) == V.time_limit
    assert overall(tests[:1]) == V.accepted
    assert overall([]) == V.sandbox_error
    result = make_result(tests)
    assert (result.verdict, result.passed, result.reward) == (V.time_limit, False, 0.0)
    assert make_result(tests[:1]).reward == 1.0
    assert make_result(tests[:1], verdict=V.runtime_error, message="tampered").reward == 0.0


def test_failures_of_the_sandbox_tools_are_sandbox_errors():
    from mirrorl.sandbox.isolation import Limits, Outcome
    from mirrorl.sandbox.runner import _process_verdict
    limits = Limits()
    broken = Outcome(returncode=1, stdout=b"", stderr=b"bwrap: Can't fork for pid 1: Resource temporarily unavailable\n",
                     seconds=0.01)
    assert _process_verdict(broken, limits)[0] == V.sandbox_error
    crashed = Outcome(returncode=1, stdout=b"", stderr=b"Traceback...\nKeyError: 3\n", seconds=0.01)
    assert _process_verdict(crashed, limits) == (V.runtime_error, "KeyError: 3")
    assert _process_verdict(Outcome(returncode=-24, stdout=b"", stderr=b"", seconds=1), limits)[0] == V.time_limit
    assert _process_verdict(Outcome(returncode=152, stdout=b"", stderr=b"", seconds=1), limits)[0] == V.time_limit
    oom = Outcome(returncode=137, stdout=b"", stderr=b"", seconds=1, oom_killed=True)
    assert _process_verdict(oom, limits)[0] == V.memory_limit
