import json
from pathlib import Path

import pytest

from mirrorl.tasks.countdown import countdown_problem, generate_countdown
from mirrorl.tasks.jsonl import load_problems
from mirrorl.tasks.problem import DataError, Problem, write_jsonl

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"public data not found at {path}")
    return path


def test_gsm8k():
    problems = load_problems(data_file("gsm8k/test.jsonl"))
    assert len(problems) == 1319
    first = problems[0]
    assert (first.id, first.answer, first.kind) == ("test-1", "18", "math")
    assert first.prompt.startswith("Janet\u2019s ducks lay 16 eggs")
    assert all(p.answer.lstrip("-").isdigit() for p in problems)  # commas removed, e.g. 1,450 -> 1450


def test_math500():
    path = data_file("math500/test.jsonl")
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    problems = load_problems(path)
    assert [p.answer for p in problems] == [row["answer"] for row in raw]
    assert problems[0].id == "test/precalculus/807.json" and problems[0].level == 2


def test_math_full_gold_from_last_box_matches_math500():
    full = load_problems(data_file("math_test5000/test.jsonl"))
    assert len(full) == 5000 and full[0].level == 3  # "Level 3"
    by_prompt = {p.prompt: p.answer for p in full}
    math500 = load_problems(data_file("math500/test.jsonl"))
    mismatches = [(p.id, p.answer) for p in math500 if by_prompt[p.prompt] != p.answer]
    assert not mismatches


def test_aime2024():
    problems = load_problems(data_file("aime2024/test.jsonl"))
    assert len(problems) == 30
    assert (problems[0].id, problems[0].answer) == ("60", "204")
    assert "025" in [p.answer for p in problems]  # leading zeros kept; the verifier handles them


def test_limit():
    assert len(load_problems(data_file("gsm8k/test.jsonl"), limit=5)) == 5


def test_own_format_round_trip(tmp_path):
    problems = [Problem("m1", "1+1=?", "2", level=1), *generate_countdown(3, seed=0)]
    write_jsonl(problems, tmp_path / "mine.jsonl")
    assert load_problems(tmp_path / "mine.jsonl") == problems


def test_countdown_rows(tmp_path):
    path = tmp_path / "cd.jsonl"
    path.write_text('{"nums": [3, 7, 25], "target": 46}\n\n{"numbers": [1, 2, 3, 4], "target": 10, "id": "k"}\n')
    assert load_problems(path) == [
        countdown_problem([3, 7, 25], 46, "cd-1"),
        countdown_problem([1, 2, 3, 4], 10, "k"),
    ]


@pytest.mark.parametrize(
    "lines, expected",
    [
        (['{"question": "q", "answer": "#### 3"}', '{"question": "q", "answer": "#'], "line 2: invalid JSON"),
        (['{"question": "q", "answer": "it is 3"}'], "line 1: field 'answer' has no '#### <number>' final answer"),
        (["", '{"problem": "p"}'], "line 2: missing field 'solution'"),
        (['{"problem": "p", "solution": "so 3"}'], "line 1: field 'solution' has no complete \\boxed{}"),
        (['{"nums": [1, "2"], "target": 3}'], "line 1: field 'nums' must be a non-empty list of integers"),
        (['{"prompt": "p", "answer": "1", "kind": "poem"}'], "line 1: field 'kind' is 'poem'"),
        (['{"prompt": "p", "answer": "", "kind": "code"}'], "line 1: field 'meta.tests' must be a non-empty list"),
        (['{"prompt": "p", "answer": "x", "kind": "countdown", "meta": {"numbers": [1]}}'], "line 1: field 'answer'"),
        (['{"text": "t", "code": "c"}'], "line 1: no known format matches the keys ['code', 'text']; accepted"),
        (["[1, 2]"], "line 1: expected a JSON object"),
        (["", "  "], "no rows"),
    ],
)
def test_malformed_rows(tmp_path, lines, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        load_problems(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty.jsonl: no rows"):
        load_problems(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_problems(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("value", ['1.5', '"0.5"', 'true', '-0.1'])
def test_bad_pass_rate_names_line_and_field(tmp_path, value):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p", "answer": "1"}\n{"prompt": "p", "answer": "1", "pass_rate": ' + value + '}\n')
    with pytest.raises(DataError, match=r"d.jsonl line 2: field 'pass_rate' must be a number in \[0, 1\]"):
        load_problems(path)


def test_math500_subject_kept_in_meta():
    problems = load_problems(data_file("math500/test.jsonl"), limit=3)
    assert all(isinstance(p.meta["subject"], str) and p.meta["subject"] for p in problems)
