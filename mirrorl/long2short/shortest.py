"""Shortest rejection sampling (report section 2.4): sample n responses per prompt, keep the shortest correct.

The kept (prompt, response) rows form an SFT dataset in the format `mirrorl sft --sft-data` reads.
`sample_groups` is also where DPO pairs start (`mirrorl.long2short.dpo.build_pairs`): both methods
judge the same n samples of the long-CoT model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mirrorl.eval.evaluate import encode_prompt
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.tasks.problem import Problem


@dataclass(frozen=True)
class Sample:
    """One judged response: decoded text (no end-of-sequence token), length in tokens, and whether it
    is correct (finished before the token limit and accepted by the task's checker)."""

    text: str
    tokens: int
    correct: bool


def sample_groups(engine, tokenizer, problems: list[Problem], n: int, sampling: SamplingParams,
                  chat_template: bool = False, scorer=score) -> list[list[Sample]]:
    """Sample `n` responses to each problem with `engine` and judge each with `scorer`.

    Args:
        engine: a `RolloutEngine` (e.g. `HFEngine`); one `generate` call for all len(problems) * n prompts.
        scorer: `scorer(problem, text) -> Verdict` (anything with `.correct`); default `mirrorl.rewards.score`.
            A response cut at `sampling.max_new_tokens` counts as incorrect, as in RL.
    Returns: one list of n `Sample`s per problem, in order.
    """
    prompts = [encode_prompt(tokenizer, p.prompt, chat_template) for p in problems for _ in range(n)]
    segments = engine.generate(prompts, sampling)
    groups = []
    for i, problem in enumerate(problems):
        group = []
        for seg in segments[i * n:(i + 1) * n]:
            text = tokenizer.decode(seg.token_ids, skip_special_tokens=True)
            correct = seg.finish_reason == "stop" and bool(scorer(problem, text).correct)
            group.append(Sample(text, len(seg.token_ids), correct))
        groups.append(group)
    return groups


def shortest_correct(group: list[Sample]) -> Sample | None:
    """The correct sample with the fewest tokens (the first of equals), or None when none is correct."""
    correct = [s for s in group if s.correct]
    return min(correct, key=lambda s: s.tokens) if correct else None


def shortest_rejection_sampling(problems: list[Problem], groups: list[list[Sample]]) -> list[dict]:
    """SFT rows `{"prompt", "response", "id", "tokens"}`: the shortest correct response per problem;
    problems with no correct sample are left out."""
    rows = []
    for problem, group in zip(problems, groups):
        best = shortest_correct(group)
        if best is not None:
            rows.append({"prompt": problem.prompt, "response": best.text, "id": problem.id, "tokens": best.tokens})
    return rows


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """Write rows as jsonl (one JSON object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
