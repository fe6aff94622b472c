"""`mirrorl sandbox check` and `mirrorl sandbox serve` from the command line."""

import json
import subprocess
import sys

from mirrorl.cli import main

ROWS = [
    {"id": "a", "code": "def f(x):\n    return x + 1\n", "tests": ["assert f(1) == 2", "assert f(2) == 3"]},
    {"id": "b", "code": "print(int(input()) * 2)", "tests": [{"stdin": "4", "expected_stdout": "8"},
                                                             {"stdin": "5", "expected_stdout": "11"}]},
    {"id": "c", "code": "print(0.1 + 0.2)", "tests": [{"stdin": "", "expected_stdout": "0.3", "float_tolerance": 1e-9}]},
    {"id": "d", "code": "print(1)", "tests": []},
]


def test_check_judges_each_row_and_passes_fields_through(sandbox, tmp_path, capsys):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["sandbox", "check", str(source), "--server", sandbox.url, "--out", str(out)]) == 0
    judged = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["verdict"], r["passed"]) for r in judged] == [
        ("a", "accepted", True), ("b", "wrong_answer", False), ("c", "accepted", True), ("d", "sandbox_error", False)]
    assert [t["verdict"] for t in judged[1]["test_results"]] == ["accepted", "wrong_answer"]
    assert judged[1]["tests"] == ROWS[1]["tests"]
    assert "4 rows: 2 accepted (50.0%)" in capsys.readouterr().out


def test_check_names_the_bad_row(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"code": "x = 1", "tests": [{"stdin": ""}]}) + "\n")
    assert main(["sandbox", "check", str(source)]) == 2
    assert "line 2: field 'tests.0" in capsys.readouterr().err


def test_check_starts_its_own_service_when_no_server_is_given(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(ROWS[0]) + "\n")
    args = ["sandbox", "check", str(source)]
    code = main(args)
    if code == 2 and "below the minimum" in capsys.readouterr().err:
        code = main(args + ["--unsafe"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["verdict"] == "accepted"


def test_serve_refuses_to_start_without_the_minimum_isolation():
    command = [sys.executable, "-m", "mirrorl.cli", "sandbox", "serve", "--port", "1", "--python", "/nonexistent/python3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "below the minimum" in done.stderr and "--unsafe" in done.stderr
    assert "could not run /nonexistent/python3" in done.stderr
