"""Batch-judge a jsonl file of submissions: ``mirrorl sandbox check IN.jsonl [--server URL] [--out OUT.jsonl]``.

Each row has ``code`` and ``tests``; a test is a string of Python (an assert run after the code) or an object
``{"stdin", "expected_stdout"}`` (optional ``float_tolerance``). The other fields of a run request (``setup``,
``entry_point``, ``compare``, ``float_tolerance``, ``limits``, ``files``) are used when present; every field is
passed through. Each output row adds ``verdict``, ``passed``, ``reward``, ``message`` and ``test_results``
(one per test). Without ``--server`` a service is started on loopback and stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from mirrorl.sandbox.client import SandboxClient, local_service
from mirrorl.sandbox.runner import RunRequest
from mirrorl.tasks.problem import DataError, read_jsonl


def read_requests(path: str | Path) -> tuple[list[dict], list[RunRequest]]:
    """The rows of ``path`` and their run requests; DataError names the row and the field of a bad one."""
    rows, requests = [], []
    for number, row in read_jsonl(path):
        if "code" not in row or "tests" not in row:
            raise DataError(f"{path} line {number}: needs the fields 'code' and 'tests'")
        try:
            requests.append(RunRequest.model_validate({k: v for k, v in row.items() if k in RunRequest.model_fields}))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DataError(f"{path} line {number}: field '{where}': {first['msg']}") from None
        rows.append(row)
    return rows, requests


def check_file(path: str | Path, out: str | Path | None = None, server: str | None = None, concurrency: int = 8,
               unsafe: bool = False) -> dict:
    """Judge every row of ``path``; write the rows with their verdicts to ``out`` (stdout when None).

    Returns the summary: rows, accepted, accuracy and the count of each verdict.
    """
    rows, requests = read_requests(path)
    with contextlib.ExitStack() as stack:
        url = server or stack.enter_context(local_service(*(["--unsafe"] if unsafe else [])))
        client = stack.enter_context(SandboxClient(url))
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(client.run, requests))
    lines = []
    for row, result in zip(rows, results):
        judged = {**row, "verdict": result.verdict.value, "passed": result.passed, "reward": result.reward,
                  "message": result.message,
                  "test_results": [t.model_dump(mode="json", exclude_none=True) for t in result.tests]}
        lines.append(json.dumps(judged))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("".join(line + "\n" for line in lines))
    else:
        print("\n".join(lines))
    counts = Counter(r.verdict.value for r in results)
    return {"rows": len(rows), "accepted": counts.get("accepted", 0),
            "accuracy": counts.get("accepted", 0) / len(rows) if rows else 0.0, "verdicts": dict(counts)}
