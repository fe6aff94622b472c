"""Batch-grade model outputs with the math verifier: ``mirrorl verify IN.jsonl [--out OUT.jsonl]``.

Each row has ``gold`` and either ``response`` (a whole model output, whose final answer is extracted as
in RL by `mirrorl.rewards.math.extract_answer`: boxes, ``#### n``, "the final answer is X") or ``answer``
(an already-extracted final answer, compared as given). Every other field is passed through; each output row adds ``equal`` (bool),
``reason`` (see `mirrorl.rewards.math.Verdict`) and ``extracted``. ``--lenient`` grades as math-verify-based
evaluation harnesses do (`verify_math(lenient=True)`: the last expression of a response without a final
answer, boxes on one line joined, decimal commas), for models that do not box their answers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mirrorl.rewards.math import verify_math
from mirrorl.tasks.problem import DataError, read_jsonl


def _judge(row: dict, where: str, lenient: bool) -> dict:
    if "gold" not in row:
        raise DataError(f"{where}: missing field 'gold'")
    if ("response" in row) == ("answer" in row):
        raise DataError(f"{where}: needs exactly one of the fields 'response' and 'answer'")
    field = "response" if "response" in row else "answer"
    if not isinstance(row[field], str):
        raise DataError(f"{where}: field '{field}' must be a string")
    text = row[field] if field == "response" else f"\\boxed{{{row[field]}}}"
    verdict = verify_math(text, str(row["gold"]), lenient=lenient)
    return {**row, "equal": verdict.correct, "reason": verdict.reason, "extracted": verdict.extracted}


def verify_file(path: str | Path, out: str | Path | None = None, lenient: bool = False) -> dict:
    """Judge every row of `path` (`lenient`: see the module docstring); write the judged rows to `out`
    (stdout when None).

    Returns: the summary {"rows", "equal", "accuracy", "reasons": {reason: count}}.
    Raises: DataError naming the file, the line and the field of a bad row,
        before anything is written; OSError when `path` cannot be read.
    """
    judged = [_judge(row, f"{path} line {number}", lenient) for number, row in read_jsonl(path)]
    text = "".join(json.dumps(row) + "\n" for row in judged)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    else:
        print(text, end="")
    reasons = Counter(row["reason"] for row in judged)
    equal = sum(row["equal"] for row in judged)
    return {"rows": len(judged), "equal": equal, "accuracy": equal / len(judged) if judged else 0.0,
            "reasons": dict(reasons)}
