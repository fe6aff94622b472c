"""Vision prompts: jsonl rows with images (paths and inline base64) and the generated vision tasks."""

import json

import pytest
from PIL import Image

from mirrorl.rewards import score
from mirrorl.tasks.images import open_image, to_data_uri
from mirrorl.tasks.jsonl import load_problems
from mirrorl.tasks.problem import DataError, write_jsonl
from mirrorl.tasks.vision import IMAGE_SIZE, generate_vision, vision_trace


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def picture(tmp_path):
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (32, 24), "red").save(tmp_path / "pics" / "a.png")
    return "pics/a.png"


def test_rows_with_paths_and_inline_images_load_and_round_trip(tmp_path, picture):
    inline = to_data_uri(Image.new("RGB", (16, 16), "blue"))
    path = _write(tmp_path / "v.jsonl", [
        {"image": picture, "question": "what colour?", "answer": "red", "level": 2},
        {"id": "b", "image": inline, "prompt": "how many?", "answer": 3},
    ])
    first, second = load_problems(path)
    assert first.image == str(tmp_path / "pics" / "a.png") and first.level == 2 and first.id == "v-1"
    assert second.image == inline and second.answer == "3" and second.id == "b"
    assert open_image(first.image).size == (32, 24) and open_image(second.image).getpixel((0, 0)) == (0, 0, 255)
    write_jsonl([first, second], tmp_path / "saved.jsonl")
    assert load_problems(tmp_path / "saved.jsonl") == [first, second]


@pytest.mark.parametrize("image, message", [
    ("pics/missing.png", "line 2: field 'image': image file .*missing.png not found"),
    ("pics/bad.png", "line 2: field 'image': cannot decode image"),
    ("data:image/png;base64,@@@", "line 2: field 'image': invalid base64"),
    ("data:image/png;base64," + to_data_uri(Image.new("RGB", (4, 40))).split(",")[1],
     "line 2: field 'image': wrong size 4x40 pixels"),
    (7, "line 2: field 'image' must be a file path or a data:image"),
])
def test_bad_images_name_file_line_and_field(tmp_path, picture, image, message):
    (tmp_path / "pics" / "bad.png").write_bytes(b"not a png at all")
    path = _write(tmp_path / "v.jsonl", [{"image": picture, "question": "q?", "answer": "1"},
                                         {"image": image, "question": "q?", "answer": "1"}])
    with pytest.raises(DataError, match=f"{tmp_path / 'v.jsonl'} {message}"):
        load_problems(path)


def test_missing_question_is_a_data_error(tmp_path, picture):
    path = _write(tmp_path / "v.jsonl", [{"image": picture, "answer": "1"}])
    with pytest.raises(DataError, match="line 1: field 'prompt' must be a non-empty string"):
        load_problems(path)


def test_generated_vision_tasks_are_deterministic_distinct_and_verified():
    problems = generate_vision(40, 3, (1, 2, 3))
    assert [p.id for p in problems] == [p.id for p in generate_vision(40, 3, (1, 2, 3))]
    assert len({p.id for p in problems}) == len(problems) == 40
    assert {p.meta["task"] for p in problems} == {"count", "compare", "read", "read_text"}
    for p in problems:
        assert score(p, vision_trace(p)).correct, p.id
        assert (open_image(p.image).size == (IMAGE_SIZE, IMAGE_SIZE)) if p.meta["task"] != "read_text" else not p.image
    # the read task's picture and its text twin are the same problem
    reads = {p.meta["chain"]: p for p in problems if p.meta["task"] == "read"}
    twins = [p for p in problems if p.meta["task"] == "read_text"]
    assert twins and all(reads[t.meta["chain"]].answer == t.answer and t.prompt == t.meta["chain"] + "=?\n"
                         for t in twins)
    counts = [p for p in problems if p.meta["task"] == "count"]
    assert all(len(p.meta["shapes"]) == p.level + 1 for p in counts)
    assert all(int(p.answer) == sum(c == p.meta["colour"] for _, c, _ in p.meta["shapes"]) for p in counts)
    later = generate_vision(40, 4, (1, 2, 3), exclude={p.id for p in problems})
    assert not {p.id for p in later} & {p.id for p in problems}
