"""Code test-case validation (report section 2.3.5): the 7-of-10 test rule and the 9-of-10 problem rule, on their own
and with MBPP / HumanEval reference solutions (plus deliberately broken ones) run in the sandbox."""

import ast
import doctest
import json

import pytest
from conftest import shared_data

import mirrorl.curation.code_tests
from mirrorl.cli import main
from mirrorl.config import load_config
from mirrorl.curation.code_tests import agree, validate_rows, validated_problem
from mirrorl.rewards.code import verify_code
from mirrorl.tasks.jsonl import load_problems


def test_doctests():
    assert doctest.testmod(mirrorl.curation.code_tests).failed == 0


def _outputs(column: list[str | None], rest: int = 0) -> list[list[str | None]]:
    """Ten solutions' outputs on one test, given as a column."""
    return [[value] for value in column]


@pytest.mark.parametrize("agreeing, kept", [(10, True), (7, True), (6, False), (0, False)])
def test_a_test_needs_7_of_10_agreeing(agreeing, kept):
    others = [f"wrong-{i}" for i in range(10 - agreeing)]  # all different: no second majority
    a = agree(_outputs(["42"] * agreeing + others))
    assert (a.expected == ["42"]) is kept
    assert a.votes == [agreeing if agreeing else 1]


def test_runs_without_output_agree_with_nothing():
    a = agree(_outputs(["42"] * 7 + [None] * 3))
    assert a.expected == ["42"] and a.passing == [True] * 7 + [False] * 3 and not a.keep
    assert agree(_outputs([None] * 10)).votes == [0]


@pytest.mark.parametrize("passing, kept", [(10, True), (9, True), (8, False)])
def test_a_problem_needs_9_of_10_passing_every_kept_test(passing, kept):
    # test 0: all agree; test 1: the failing solutions give distinct wrong answers (still >= 8 of 10 agree)
    outputs = [["a", "b"]] * passing + [["a", f"x{i}"] for i in range(10 - passing)]
    a = agree(outputs)
    assert a.expected == ["a", "b"] and a.keep is kept and sum(a.passing) == passing


def test_a_solution_failing_a_dropped_test_still_passes():
    outputs = [["a", "b"]] * 6 + [["a", "c"]] * 4  # test 1 is dropped (6 of 10), so all ten pass test 0
    a = agree(outputs)
    assert a.expected == ["a", None] and a.keep and all(a.passing)
    assert not agree(outputs, min_valid_tests=2).keep


def test_thresholds_are_fractions_of_the_solutions():
    five = [["a"]] * 4 + [["b"]]  # 4 of 5 = 0.8
    assert agree(five, test_agreement=0.8, problem_pass=0.8).keep
    assert agree(five, test_agreement=0.81).expected == [None]
    assert not agree(five, test_agreement=0.7, problem_pass=0.81).keep
    with pytest.raises(ValueError):
        agree([["a"], ["a", "b"]])


def test_config_rejects_thresholds_without_a_unique_majority():
    from mirrorl.config import ConfigError
    with pytest.raises(ConfigError, match="validate.test_agreement must be > 0.5"):
        load_config(None, ["validate.test_agreement=0.5"])


def _calls(source: str, name: str, rename: str | None = None) -> list[str]:
    """The calls of `name` in assert source, as expressions (the candidate test inputs)."""
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id == name]
    out = []
    for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset)):
        if rename:
            call.func.id = rename
        out.append(ast.unparse(call))
    return out


def _broken_on(code: str, entry: str, call: str, tag: str) -> str:
    """`code` whose function returns a wrong value on exactly the arguments of `call`."""
    args = ast.parse(call, mode="eval").body.args
    return code + (f"\n_real_{tag} = {entry}\ndef {entry}(*args):\n"
                   f"    if args == ({', '.join(ast.unparse(a) for a in args)},):\n        return 'broken-{tag}'\n"
                   f"    return _real_{tag}(*args)\n")


def _mbpp(task_id: int) -> dict:
    with open(shared_data("mbpp", "mbpp.jsonl")) as f:
        return next(row for row in map(json.loads, f) if row["task_id"] == task_id)


def test_mbpp_and_humaneval_references_with_broken_solutions(sandbox):
    mbpp = _mbpp(3)  # is_not_prime: three asserts -> three inputs
    entry, ref = "is_not_prime", mbpp["code"]
    inputs = _calls("\n".join(mbpp["test_list"]), entry)
    crash = "def is_not_prime(n):\n    raise ValueError(n)\n"
    rows = [
        # 6 references + 1 broken on input 1 + 3 crashing: input 1 has 6 of 10 (dropped), inputs 0 and 2 have 7;
        # 7 pass the kept tests: problem dropped
        {"id": "mbpp-6+1", "solutions": [ref] * 6 + [_broken_on(ref, entry, inputs[1], "a")] + [crash] * 3},
        # 9 references + 1 broken on input 0: kept (9 of 10 pass)
        {"id": "mbpp-9", "solutions": [ref] * 9 + [_broken_on(ref, entry, inputs[0], "b")]},
        # 8 references + 2 broken differently on input 0: the test is kept (8 of 10), the problem is not
        {"id": "mbpp-8", "solutions": [ref] * 8 + [_broken_on(ref, entry, inputs[0], t) for t in "cd"]},
    ]
    rows = [row | {"prompt": mbpp["text"], "inputs": inputs, "mode": "call", "where": f"row {i}"} for i, row in enumerate(rows)]
    human = [json.loads(line) for line in open(shared_data("humaneval", "HumanEval.jsonl"))][2]  # truncate_number
    ref = human["prompt"] + human["canonical_solution"]
    rows.append({"id": human["task_id"], "prompt": human["prompt"], "mode": "call", "where": "row 4",
                 "inputs": _calls(human["test"], "candidate", human["entry_point"]),
                 "solutions": [ref] * 9 + [human["prompt"] + "    return None\n"]})
    results = {row["id"]: a for row, a in validate_rows(rows, sandbox, load_config().validate)}
    assert results["mbpp-6+1"].votes == [7, 6, 7] and results["mbpp-6+1"].expected == ["False", None, "True"]
    assert not results["mbpp-6+1"].keep and sum(results["mbpp-6+1"].passing) == 7
    assert results["mbpp-9"].keep and results["mbpp-9"].passing == [True] * 9 + [False]
    assert results["mbpp-8"].votes[0] == 8 and results["mbpp-8"].expected[0] == "False"
    assert not results["mbpp-8"].keep
    a = results["HumanEval/2"]
    assert a.keep and a.expected == ["0.5", "0.33", "0.456"]  # floats to 12 significant digits: 1.33 % 1.0 agrees
    problem = validated_problem(next(r for r in rows if r["id"] == "HumanEval/2"), a)
    right = "```python\ndef truncate_number(number):\n    return number - int(number)\n```"
    wrong = "```python\ndef truncate_number(number):\n    return round(number % 1.0, 1)\n```"
    assert verify_code(problem, right, sandbox).correct
    assert verify_code(problem, wrong, sandbox).reason == "wrong_answer"


def propose(row: dict, n: int) -> list[str]:
    """A test-input generator for the CLI test: two more stdin cases."""
    return ["10 20\n", "-5 5\n"][:n]


def test_cli_stdin_problems_with_a_generator(sandbox, tmp_path, capsys):
    rows = [{"id": "sum", "prompt": "Print the sum of two integers.", "inputs": ["1 2\n"],
             "solutions": ["a, b = map(int, input().split())\nprint(a + b)"] * 8
             + ["print(sum(map(int, input().split())), '  ')",  # trailing spaces: the same output
                "print(eval(input().replace(' ', '-')))"]},     # wrong everywhere
            {"id": "few", "prompt": "Print 1.", "solutions": ["print(1)", "print(2)"], "mode": "stdin"}]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["validate-tests", str(data), "--out", str(out), "--server", sandbox.url,
                 "validate.generator=test_validate_tests:propose", "validate.generated_inputs=2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"problems": 2, "kept": 1, "tests": 5, "valid_tests": 3}
    [problem] = load_problems(out / "validated.jsonl")
    assert problem.meta["tests"] == [{"stdin": "1 2\n", "expected_stdout": "3"},
                                     {"stdin": "10 20\n", "expected_stdout": "30"},
                                     {"stdin": "-5 5\n", "expected_stdout": "0"}]
    details = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert details[0]["passing"] == [True] * 9 + [False] and details[1]["votes"] == [1, 1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "p", "solutions": ["print(1)"]}\n{"id": "y", "solutions": "print(1)"}\n')
    assert main(["validate-tests", str(bad), "--out", str(out), "--server", sandbox.url]) == 2
    assert "bad.jsonl line 2: field 'solutions' must be a list of strings" in capsys.readouterr().err
    bad.write_text('{"id": "x", "prompt": "p", "solutions": ["print(1)"]}\n')  # no inputs, no generator
    assert main(["validate-tests", str(bad), "--out", str(out), "--server", sandbox.url]) == 2
    assert "bad.jsonl line 1: no test inputs" in capsys.readouterr().err
