"""Throughput of the math verifier over MATH-500; prints verdicts/s.

    .venv/bin/python bench/verifier.py [--repeat 3]

Three passes over the 500 rows of ../shared/data/math500/test.jsonl, each judged by `verify_math` in this
one thread:
    * reference: the whole reference solution against `answer` (extraction + a string-identical answer,
      the common case in RL when the policy is right);
    * rewritten: `answer` with ``\\dfrac`` and spaces around it (normalised back to `answer`, no SymPy);
    * wrong: the answer with its last number raised by 1, which mostly goes to SymPy.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from mirrorl.rewards.math import verify_math

MATH500 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"


def _raise_last_number(answer: str) -> str:
    core = re.sub(r"\\(?:mbox|text)\{[^{}]*\}.*$", "", answer)  # not the 2 of \mbox{ cm}^2
    numbers = list(re.finditer(r"(?<![\\A-Za-z_{])\d+", core))
    if not numbers:
        return answer + "+1"
    last = numbers[-1]
    return answer[: last.start()] + str(int(last.group()) + 1) + answer[last.end() :]


def _rewrite(answer: str) -> str:
    return "\\boxed{ " + answer.replace("\\frac", "\\dfrac") + " }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="passes of the reference set (it is fast)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()]
    passes = {
        "reference": [(row["solution"], row["answer"]) for row in rows] * args.repeat,
        "rewritten": [(_rewrite(row["answer"]), row["answer"]) for row in rows],
        "wrong": [(rf"\boxed{{{_raise_last_number(row['answer'])}}}", row["answer"]) for row in rows],
    }
    for name, pairs in passes.items():
        start = time.perf_counter()
        equal = sum(verify_math(response, gold).correct for response, gold in pairs)
        seconds = time.perf_counter() - start
        print(f"{name:10s} {len(pairs):5d} verdicts  {equal:5d} equal  {len(pairs) / seconds:9.0f} verdicts/s")


if __name__ == "__main__":
    main()
