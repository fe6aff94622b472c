"""The unit of work every task produces: a prompt with a verifiable gold answer.

A `Problem` is what samplers draw, engines answer and reward functions judge. Tasks (generated
or loaded from jsonl) all produce this one type, so the RL loop never knows where a prompt came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Problem:
    """One prompt and the information needed to judge a response to it.

    Attributes:
        id: stable identifier, unique within a dataset (used by samplers and replay buffers).
        prompt: the text given to the policy (before any chat template).
        answer: the gold final answer as text (e.g. ``"42"``, ``"\\frac{1}{2}"``); for Countdown
            the target number.
        kind: which reward function judges it: ``"math"`` (final answer equivalence) or
            ``"countdown"`` (the expression is checked exactly).
        level: difficulty level, 1 = easiest; 0 when unknown.
        meta: task-specific data, e.g. ``{"numbers": [3, 7, 25, 50]}`` for Countdown, ``{"subject":
            "Algebra"}`` for MATH, ``{"tags": {...}}`` after curation (`mirrorl.curation.tags`).
        pass_rate: measured difficulty in [0, 1] (share of correct samples of a warm-up model, report
            section 2.1; written by `mirrorl curate`); None when not measured. Prioritized and curriculum
            sampling start a prompt's success estimate from it (`mirrorl.sampling.make_sampler`).
        image: the picture the prompt asks about (report section 2.3.5): a file path or an inline
            ``data:image/png;base64,...`` URI, read by `mirrorl.tasks.images.open_image`; empty for text prompts.
    """

    id: str
    prompt: str
    answer: str
    kind: str = "math"
    level: int = 0
    meta: dict = field(default_factory=dict)
    pass_rate: float | None = None
    image: str = ""

    def to_json(self) -> str:
        row = asdict(self)
        if not self.image:  # text rows stay as they were before images existed
            del row["image"]
        return json.dumps(row)


class DataError(ValueError):
    """A dataset file or row is malformed; the message names the file, row and field."""


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """The rows of a jsonl file as (1-based line number, row object); blank lines are skipped. Errors
    about a row name it as ``"{path} line {number}"``.

    Raises: DataError naming the file and the 1-based line when the file cannot be read, a line is not
        JSON or is not a JSON object.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read as UTF-8 text: {err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def write_jsonl(problems: list[Problem], path: str | Path) -> None:
    """Write problems as one JSON object per line (the format `load_problems` reads back)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for p in problems:
            f.write(p.to_json() + "\n")
