"""`mirrorl verify`: batch grading of model outputs with the math verifier."""

import json

import pytest
from conftest import shared_data

from mirrorl.cli import main


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_rows_get_equal_reason_extracted_and_keep_their_fields(tmp_path, capsys):
    src = _write(tmp_path / "in.jsonl", [
        {"id": 1, "gold": "18", "response": "6*3 so \\boxed{18}"},
        {"id": 2, "gold": "\\frac{1}{2}", "answer": "0.5"},
        {"id": 3, "gold": "7", "response": "so it is 7 apples"},    # no final box or answer line: never scraped
        {"id": 4, "gold": "7", "answer": "8"},
    ])
    assert main(["verify", str(src), "--out", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["equal"], r["reason"], r["extracted"]) for r in rows] == [
        (1, True, "equal", "18"), (2, True, "equal", "0.5"), (3, False, "no_answer", None), (4, False, "not_equal", "8")]
    assert "4 rows: 2 equal (50.0%)" in capsys.readouterr().out


def test_lenient_grading_takes_the_last_expression_of_unboxed_outputs(tmp_path):
    src = _write(tmp_path / "in.jsonl", [{"id": 3, "gold": "7", "response": "so it is $7$ apples"},
                                         {"id": 5, "gold": "1.22", "answer": "1,22"}])
    assert main(["verify", str(src), "--lenient", "--out", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["equal"], r["extracted"]) for r in rows] == [(True, "7"), (True, "1,22")]


def test_gsm8k_test_set_answers_all_verify(tmp_path):
    path = shared_data("gsm8k", "test.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    src = _write(tmp_path / "gsm8k.jsonl", [{"gold": r["answer"].split("####")[-1].strip(), "response": r["answer"]}
                                            for r in rows])
    assert main(["verify", str(src), "--out", str(tmp_path / "out.jsonl")]) == 0
    judged = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(judged) == len(rows) and all(r["equal"] for r in judged)


@pytest.mark.parametrize("row, message", [
    ('{"gold": "1", "response": ', "line 2: invalid JSON"),
    ({"response": "\\boxed{1}"}, "line 2: missing field 'gold'"),
    ({"gold": "1"}, "line 2: needs exactly one of the fields 'response' and 'answer'"),
    ({"gold": "1", "answer": 1}, "line 2: field 'answer' must be a string"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, capsys, row, message):
    src = _write(tmp_path / "in.jsonl", [{"gold": "1", "answer": "1"}, row])
    assert main(["verify", str(src), "--out", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and message in err
    assert not (tmp_path / "out.jsonl").exists()
