"""Test-case validation for code problems (report section 2.3.5): run every reference solution on every candidate
test input in the sandbox, keep a test when enough solutions agree on its output (that output becomes the expected
one), and keep the problem when enough solutions pass every kept test.

The report's numbers are the defaults: a test is valid when at least 7 of 10 solutions give the same output
(`validate.test_agreement` = 0.7 of the solutions), and a problem enters the training set when at least 9 of 10
pass all valid tests (`validate.problem_pass` = 0.9). The report's generator is a model prompted with the CYaRon
documentation; here `validate.generator` names any Python function ``module:function`` called as
``f(row, n) -> list[str]`` (a model or a script) whose inputs join the row's own.

An input row (jsonl) describes one problem:

    {"id": "p1", "prompt": "...", "solutions": ["code", ...], "inputs": ["...", ...], "mode": "stdin" | "call",
     "setup": "optional Python"}

* ``mode="stdin"`` (the default, contest problems): a solution is a program, an input is its stdin, the output is
  its stdout compared line by line with trailing whitespace ignored (as the sandbox's ``lines`` comparison).
* ``mode="call"`` (HumanEval/MBPP-style functions): an input is a Python expression such as ``add(2, 3)``,
  evaluated after the solution was imported as a module (its ``if __name__ == "__main__":`` block does not run)
  and ``setup`` ran; the output is `CANON_SOURCE`'s text of the value (set and dict order and hash seeds do not
  matter, floats to 12 significant digits).

A run that does not exit normally (exception, time or memory limit) gives no output and agrees with nothing; so
does stdout longer than the sandbox returns (4,000 characters). Kept problems are written as mirrorl code
problems whose tests are the valid inputs with their agreed outputs: stdin/stdout cases, or asserts comparing
``_mirrorl_canon(expression)`` with the agreed text (the function is defined in the problem's ``setup``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mirrorl.config import ValidateConfig
from mirrorl.rewards.custom import load_callable
from mirrorl.sandbox.client import SandboxClient, local_service
from mirrorl.sandbox.compare import normalized_lines
from mirrorl.sandbox.verdicts import Verdict
from mirrorl.tasks.problem import DataError, Problem, read_jsonl, write_jsonl

MODES = ("stdin", "call")
OUTPUT_CHARS = 4000  # the sandbox returns at most this much stdout per test (mirrorl.sandbox.runner)
CANON_SOURCE = '''
def _mirrorl_canon(value):
    if isinstance(value, float):
        return format(value, ".12g")
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_mirrorl_canon(v) for v in value)
        return "[" + inner + "]" if isinstance(value, list) else "(" + inner + ")"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_mirrorl_canon(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(_mirrorl_canon(k) + ": " + _mirrorl_canon(v) for k, v in value.items())) + "}"
    return repr(value)
'''
_MARK = "\x1emirrorl-output\x1e"
# main.py of a call-mode run: import the solution, run the setup, print the canonical value of stdin's expression.
_DRIVER = CANON_SOURCE + f'''
import importlib.util, sys
_spec = importlib.util.spec_from_file_location("solution", "solution.py")
_module = importlib.util.module_from_spec(_spec)
sys.modules["solution"] = _module
_spec.loader.exec_module(_module)
_namespace = dict(vars(_module))
exec(open("setup.py").read(), _namespace)
_text = _mirrorl_canon(eval(sys.stdin.read(), _namespace))
print()
print({_MARK!r} + _text.replace("\\n", "\\\\n"))
'''


@dataclass
class Agreement:
    """The outcome of validating one problem.

    Attributes:
        expected: per test, the agreed output, or None when too few solutions agreed (the test is dropped).
        votes: per test, how many solutions gave its most common output (0 when none gave any).
        passing: per solution, True when it gave the expected output on every kept test.
        keep: the problem enters the set: enough kept tests, and enough solutions pass them all.
    """

    expected: list[str | None]
    votes: list[int]
    passing: list[bool]
    keep: bool

    @property
    def kept_tests(self) -> list[int]:
        return [i for i, e in enumerate(self.expected) if e is not None]


def agree(outputs: list[list[str | None]], test_agreement: float = 0.7, problem_pass: float = 0.9,
          min_valid_tests: int = 1) -> Agreement:
    """Apply the report's rules to the outputs of S solutions on T tests.

    Args:
        outputs: S lists of T outputs; None = the run gave no output (crash, limit).
        test_agreement: a test is kept when its most common output comes from at least this fraction of the S
            solutions (0.7: 7 of 10 keep it, 6 of 10 do not); in (0.5, 1], so the majority is unique.
        problem_pass: the problem is kept when at least this fraction of the S solutions give the expected
            output on every kept test (0.9: 9 of 10).
        min_valid_tests: fewest kept tests a kept problem has.

    >>> a = agree([["1", "2"]] * 7 + [["1", "9"]] * 2 + [["0", None]])
    >>> a.expected, a.votes, a.keep   # test 0: 9 of 10 agree; test 1: 7 of 10
    (['1', '2'], [9, 7], False)
    >>> sum(a.passing)                # 7 pass both kept tests: fewer than 9 of 10
    7
    """
    if not outputs or not all(len(row) == len(outputs[0]) for row in outputs):
        raise ValueError("outputs must be S >= 1 lists of the same number of tests")
    n = len(outputs)
    expected, votes = [], []
    for t in range(len(outputs[0])):
        counts = Counter(row[t] for row in outputs if row[t] is not None)
        value, count = counts.most_common(1)[0] if counts else (None, 0)
        votes.append(count)
        expected.append(value if count >= test_agreement * n - 1e-9 else None)
    kept = [t for t, e in enumerate(expected) if e is not None]
    passing = [all(row[t] == expected[t] for t in kept) for row in outputs]
    keep = len(kept) >= min_valid_tests and sum(passing) >= problem_pass * n - 1e-9
    return Agreement(expected, votes, passing, keep)


def _request(row: dict, solution: str, limits: dict) -> dict:
    """The sandbox run of one solution on every input (stdin cases, all run whatever the verdicts)."""
    tests = [{"stdin": text, "expected_stdout": ""} for text in row["inputs"]]
    request = {"tests": tests, "stop_on_first_failure": False, "limits": limits}
    if row["mode"] == "stdin":
        return request | {"code": solution}
    files = {"solution.py": solution, "setup.py": row.get("setup", "")}
    return request | {"code": _DRIVER, "files": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()}}


def _output(test, mode: str) -> str | None:
    """The comparable output of one test run, None when the run did not exit normally or its stdout was cut."""
    if test.verdict not in (Verdict.accepted, Verdict.wrong_answer) or test.stdout is None:
        return None
    if len(test.stdout) >= OUTPUT_CHARS:
        return None
    if mode == "stdin":
        return "\n".join(normalized_lines(test.stdout))
    last = test.stdout.rstrip("\n").rpartition("\n")[2]
    return last[len(_MARK):] if last.startswith(_MARK) else None


def solution_outputs(client, row: dict, limits: dict, pool: ThreadPoolExecutor) -> list[list[str | None]]:
    """Outputs of every solution of `row` on every input, one sandbox request per solution (run in `pool`).

    Raises: mirrorl.sandbox.client.SandboxError when the service cannot be reached.
    """
    results = pool.map(client.run, [_request(row, s, limits) for s in row["solutions"]])
    return [[_output(t, row["mode"]) for t in result.tests] for result in results]


def validated_problem(row: dict, agreement: Agreement) -> Problem:
    """A kept problem as a mirrorl code problem: its valid tests with their agreed outputs; the answer is the
    first solution that passes them all."""
    kept = agreement.kept_tests
    answer = row["solutions"][agreement.passing.index(True)]
    if row["mode"] == "stdin":
        tests = [{"stdin": row["inputs"][t], "expected_stdout": agreement.expected[t]} for t in kept]
        return Problem(row["id"], row["prompt"], answer, kind="code",
                       meta={"tests": tests, "setup": "", "entry_point": None, "prefix": ""})
    tests = [f"assert _mirrorl_canon({row['inputs'][t]}) == {agreement.expected[t]!r}" for t in kept]
    return Problem(row["id"], row["prompt"], answer, kind="code",
                   meta={"tests": tests, "setup": CANON_SOURCE + row.get("setup", ""), "entry_point": None,
                         "prefix": ""})


def read_rows(path: str | Path) -> list[dict]:
    """The problems of an input jsonl (see the module docstring), checked.

    Raises: DataError naming the file, line and field of a malformed row, or a repeated id.
    """
    rows, seen = [], set()
    for number, row in read_jsonl(path):
        where = f"{path} line {number}"
        row = dict(row, mode=row.get("mode", "stdin"), inputs=row.get("inputs", []), id=str(row.get("id", number)))
        for field in ("prompt", "setup"):
            if not isinstance(row.get(field, ""), str):
                raise DataError(f"{where}: field '{field}' must be a string")
        for field in ("solutions", "inputs"):
            if not isinstance(row.get(field), list) or not all(isinstance(x, str) for x in row[field]):
                raise DataError(f"{where}: field '{field}' must be a list of strings")
        if not row["solutions"]:
            raise DataError(f"{where}: field 'solutions' is empty")
        if row["mode"] not in MODES:
            raise DataError(f"{where}: field 'mode' is {row['mode']!r}, expected one of {MODES}")
        if row["id"] in seen:
            raise DataError(f"{where}: field 'id' {row['id']!r} repeats an earlier row")
        seen.add(row["id"])
        rows.append(row | {"where": where})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def validate_rows(rows: list[dict], client, cfg: ValidateConfig, generator=None) -> list[tuple[dict, Agreement]]:
    """Validate every row (as `read_rows` gives them, with ``where`` naming the file and line): add the generator's
    inputs (``generator(row, cfg.generated_inputs)``), run every solution on every input, agree.

    Raises: DataError naming the row when it ends up without inputs or the generator returns something other
        than a list of strings; mirrorl.sandbox.client.SandboxError when the service cannot be reached.
    """
    limits = {"cpu_s": cfg.time_limit_s, "wall_s": cfg.time_limit_s * 2}
    out = []
    with ThreadPoolExecutor(cfg.concurrency) as pool:
        for row in tqdm(rows, desc="validate", unit="problem"):
            if generator is not None:
                proposed = generator(row, cfg.generated_inputs)
                if not isinstance(proposed, list) or not all(isinstance(x, str) for x in proposed):
                    raise DataError(f"{row['where']}: validate.generator must return a list of strings for field "
                                    f"'inputs', got {type(proposed).__name__}")
                row = row | {"inputs": row["inputs"] + proposed}
            if not row["inputs"]:
                raise DataError(f"{row['where']}: no test inputs (field 'inputs' is empty and no validate.generator "
                                "gave any)")
            outputs = solution_outputs(client, row, limits, pool)
            out.append((row, agree(outputs, cfg.test_agreement, cfg.problem_pass, cfg.min_valid_tests)))
    return out


def validate_file(path: str | Path, out_dir: str | Path, cfg: ValidateConfig, server: str | None = None,
                  unsafe: bool = False) -> dict:
    """`mirrorl validate-tests`: validate the problems of `path`; write to `out_dir` ``validated.jsonl`` (kept
    problems, loadable by `mirrorl rl --data`), ``validation.jsonl`` (per problem: tests, votes, expected outputs,
    passing solutions, kept) and ``summary.json``. Without `server` a sandbox service is started on loopback.

    Returns: the summary (problems, kept, tests, valid_tests).
    """
    rows = read_rows(path)
    generator = load_callable(cfg.generator, "validate.generator") if cfg.generator else None
    with contextlib.ExitStack() as stack:
        url = server or stack.enter_context(local_service(*(["--unsafe"] if unsafe else [])))
        client = stack.enter_context(SandboxClient(url))
        results = validate_rows(rows, client, cfg, generator)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl([validated_problem(row, a) for row, a in results if a.keep], out / "validated.jsonl")
    with open(out / "validation.jsonl", "w") as f:
        for row, a in results:
            f.write(json.dumps({"id": row["id"], "kept": a.keep, "inputs": row["inputs"], "expected": a.expected,
                                "votes": a.votes, "passing": a.passing, "solutions": len(row["solutions"])}) + "\n")
    summary = {"problems": len(results), "kept": sum(a.keep for _, a in results),
               "tests": sum(len(a.expected) for _, a in results),
               "valid_tests": sum(len(a.kept_tests) for _, a in results)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
