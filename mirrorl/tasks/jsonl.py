"""Load problems from a jsonl file (one JSON object per line), recognising the common public formats.

Each row's format is detected from its keys:

* mirrorl: ``id``, ``prompt``, ``answer``, optional ``kind``, ``level``, ``meta``, ``pass_rate`` (what
  `Problem.to_json` writes);
* GSM8K: ``question`` and ``answer``; the gold is the number after the last ``####`` of ``answer``;
* MATH / MATH-500 / AIME: ``problem`` and ``answer``, or ``problem`` and ``solution`` whose last
  ``\\boxed{}`` is the gold; ``level`` may be ``"Level 3"``; ``subject`` (MATH-500) or ``type`` (MATH)
  is kept as ``meta["subject"]``;
* Countdown: ``numbers`` (or ``nums``) and ``target``;
* HumanEval: ``prompt``, ``test`` and ``entry_point``; MBPP: ``text`` and ``test_list`` (code problems,
  judged by running their tests in the sandbox);
* vision: ``image`` (a path relative to the file, or a base64 data URI), ``question`` (or ``prompt``) and
  ``answer`` (see `mirrorl.tasks.images`); the image is decoded and checked while loading.
"""

from __future__ import annotations

import re
from pathlib import Path

from mirrorl.rewards.math import last_boxed
from mirrorl.tasks.code import humaneval_problem, mbpp_problem
from mirrorl.tasks.countdown import countdown_problem
from mirrorl.tasks.images import vision_problem
from mirrorl.tasks.problem import DataError, Problem, read_jsonl

ID_FIELDS = ("id", "unique_id", "task_id", "idx")
KINDS = ("math", "countdown", "code")
FORMATS = (
    "mirrorl (prompt, answer[, id, kind, level, meta])",
    "GSM8K (question, answer ending in '#### <number>')",
    "MATH/AIME (problem, answer or solution with \\boxed{})",
    "Countdown (numbers or nums, target)",
    "HumanEval (prompt, test, entry_point)",
    "MBPP (text, test_list)",
    "vision (image, question or prompt, answer)",
)
_GSM8K_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LEVEL = re.compile(r"(?:level\s*)?(\d+)", re.IGNORECASE)


def load_problems(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Read the problems of a jsonl file, at most ``limit`` of them (all when None).

    Blank lines are skipped. A row's id is its own ``id``/``unique_id``/``task_id``/``idx`` when present,
    else ``{file stem}-{line number}``.

    Raises:
        DataError: the file is missing or unreadable, has no rows, or a row is not valid JSON, matches no
            known format or has a bad field; the message names the file, the 1-based line and the field.
        ValueError: ``limit`` is not positive.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    path = Path(path)
    problems = []
    for number, row in read_jsonl(path):
        problems.append(_problem(row, f"{path} line {number}", f"{path.stem}-{number}", path.parent))
        if len(problems) == limit:
            break
    if not problems:
        raise DataError(f"{path}: no rows (the file is empty or has only blank lines)")
    return problems


def _problem(row: dict, where: str, default_id: str, base_dir: Path) -> Problem:
    """Build the Problem of one row, detecting its format from its keys (image paths are relative to `base_dir`)."""
    id = next((str(row[key]) for key in ID_FIELDS if row.get(key) is not None), default_id)
    if "image" in row:
        return vision_problem(row, where, id, base_dir, _level(row, where))
    if "test" in row and "entry_point" in row:
        return humaneval_problem(row, where)
    if "text" in row and "test_list" in row:
        return mbpp_problem(row, where)
    if "prompt" in row and "answer" in row:
        kind = row.get("kind", "math")
        if kind not in KINDS:
            raise DataError(f"{where}: field 'kind' is {kind!r}, expected one of {KINDS}")
        meta = row.get("meta", {})
        if not isinstance(meta, dict):
            raise DataError(f"{where}: field 'meta' must be a JSON object")
        answer = row["answer"] if kind == "code" else _text(row, "answer", where)
        if kind == "code" and not (isinstance(meta.get("tests"), list) and meta["tests"]):
            raise DataError(f"{where}: field 'meta.tests' must be a non-empty list for a code row")
        if kind == "countdown":
            _integers(meta.get("numbers"), where, "meta.numbers")
            if not re.fullmatch(r"-?\d+", answer):
                raise DataError(f"{where}: field 'answer' must be the integer target of a countdown row")
        return Problem(
            id=id,
            prompt=_text(row, "prompt", where),
            answer=answer,
            kind=kind,
            level=_level(row, where),
            meta=meta,
            pass_rate=_pass_rate(row, where),
        )
    if "numbers" in row or "nums" in row:
        key = "numbers" if "numbers" in row else "nums"
        numbers = _integers(row[key], where, key)
        target = row.get("target")
        if type(target) is not int:
            raise DataError(f"{where}: field 'target' must be an integer, got {target!r:.80}")
        level = _level(row, where) if "level" in row else None
        return countdown_problem(numbers, target, id, level)
    if "problem" in row:
        if "answer" in row:
            answer = _text(row, "answer", where)
        else:
            answer = last_boxed(_text(row, "solution", where))
            if answer is None:
                raise DataError(f"{where}: field 'solution' has no complete \\boxed{{}} final answer")
        subject = row.get("subject") or row.get("type")
        return Problem(id=id, prompt=_text(row, "problem", where), answer=answer, level=_level(row, where),
                       meta={"subject": subject} if isinstance(subject, str) and subject else {})
    if "question" in row and "answer" in row:
        solution = _text(row, "answer", where)
        final = solution.rpartition("####")[2].strip().replace(",", "")
        if "####" not in solution or not _GSM8K_NUMBER.fullmatch(final):
            raise DataError(f"{where}: field 'answer' has no '#### <number>' final answer")
        return Problem(id=id, prompt=_text(row, "question", where), answer=final)
    raise DataError(
        f"{where}: no known format matches the keys {sorted(row)}; accepted formats: {'; '.join(FORMATS)}"
    )


def _text(row: dict, field: str, where: str) -> str:
    """A required text field; integers (e.g. AIME answers) are accepted and written as text."""
    if field not in row:
        raise DataError(f"{where}: missing field '{field}'")
    value = row[field]
    if type(value) is int:
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field '{field}' must be a non-empty string, got {value!r:.80}")
    return value


def _integers(value: object, where: str, field: str) -> list[int]:
    if not isinstance(value, list) or not value or any(type(x) is not int for x in value):
        raise DataError(f"{where}: field '{field}' must be a non-empty list of integers, got {value!r:.80}")
    return value


def _pass_rate(row: dict, where: str) -> float | None:
    """``pass_rate`` as a float in [0, 1]; None when absent or null."""
    value = row.get("pass_rate")
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= 1:
        raise DataError(f"{where}: field 'pass_rate' must be a number in [0, 1] or null, got {value!r:.80}")
    return float(value)


def _level(row: dict, where: str) -> int:
    """``level`` as an int: 3, "3" and "Level 3" give 3; absent or "Level ?" (unknown) give 0."""
    value = row.get("level", 0)
    if type(value) is int:
        return value
    if isinstance(value, str):
        match = _LEVEL.fullmatch(value.strip())
        return int(match.group(1)) if match else 0
    raise DataError(f"{where}: field 'level' must be an integer or a string like 'Level 3', got {value!r:.80}")
