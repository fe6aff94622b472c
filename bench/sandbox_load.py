"""Load on the sandbox service: N submissions at concurrency C; prints submissions/s and p50/p99 latency.

    .venv/bin/python bench/sandbox_load.py [--submissions 2000] [--concurrency 32] [--server URL]

Without --server it starts `mirrorl sandbox serve` on loopback (one worker per core). Submissions cycle
through HumanEval problems (../shared/data/humaneval, when present) and small generated ones; half carry a
correct solution and half a wrong one, and every submission prints its own number. A submission counts
as lost if no answer came back and as wrong if its verdict or its echoed number is not the expected one;
the run fails (exit 1) if any is lost or wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mirrorl.sandbox.client import SandboxClient, SandboxError, local_service

HUMANEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl"


def submissions(count: int) -> list[tuple[dict, bool]]:
    """``count`` (request, should pass) pairs; request i prints ``#i`` so answers cannot be mixed up."""
    problems = []
    if HUMANEVAL.exists():
        for line in HUMANEVAL.read_text().splitlines():
            row = json.loads(line)
            test = row["test"] + f"\ncheck({row['entry_point']})\n"
            problems.append((row["prompt"] + row["canonical_solution"], row["prompt"] + "    return None\n", test))
    problems.append(("def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n",
                     "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"))
    out = []
    for i in range(count):
        right, wrong, test = problems[(i // 2) % len(problems)]
        good = i % 2 == 0
        out.append(({"code": f"print('#{i}')\n" + (right if good else wrong), "tests": [test]}, good))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--server", help="a running service (default: start one on loopback)")
    args = parser.parse_args()
    work = submissions(args.submissions)
    latencies, lost, wrong = [], [], []

    def one(i: int) -> None:
        request, good = work[i]
        start = time.monotonic()
        try:
            result = client.run(request)
        except SandboxError as err:
            lost.append((i, str(err)))
            return
        latencies.append(time.monotonic() - start)
        if result.passed != good or result.stdout.strip() != f"#{i}":
            wrong.append((i, result.verdict.value, result.stdout[:40], result.message[:80]))

    with contextlib.nullcontext(args.server) if args.server else local_service() as url:
        client = SandboxClient(url, timeout_s=300)
        health = client.health()
        start = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(one, range(args.submissions)))
        elapsed = time.monotonic() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"{args.submissions} submissions at concurrency {args.concurrency} on {health['workers']} workers "
          f"({health['isolation']}): {args.submissions / elapsed:.1f} submissions/s, "
          f"latency p50 {cuts[49]:.3f} s, p99 {cuts[98]:.3f} s; lost {len(lost)}, wrong {len(wrong)}")
    for item in (lost + wrong)[:10]:
        print("  ", item)
    return 1 if lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
