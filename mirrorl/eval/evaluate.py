"""Held-out evaluation: pass@1 (averaged over samples), accuracy per level, mean response tokens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mirrorl.config import EvalConfig
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.tasks.problem import Problem


def encode_prompt(tokenizer, text: str, chat_template: bool = False) -> list[int]:
    """Token ids of a prompt, through the tokenizer's chat template when asked (instruction-tuned models)."""
    if chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
    return tokenizer(text)["input_ids"]


@dataclass
class EvalResult:
    """accuracy: pass@1 in [0, 1]; per_level: level -> accuracy; mean_response_tokens: tokens;
    parse_failures: share of responses without a checkable answer; samples: a few decoded responses."""

    accuracy: float
    per_level: dict[int, float]
    mean_response_tokens: float
    parse_failures: float
    num_prompts: int
    samples: list[dict] = field(default_factory=list)

    def as_metrics(self, prefix: str) -> dict:
        out = {f"{prefix}/accuracy": self.accuracy, f"{prefix}/mean_response_tokens": self.mean_response_tokens}
        out.update({f"{prefix}/accuracy_level_{k}": v for k, v in sorted(self.per_level.items())})
        return out


def evaluate(engine, tokenizer, problems: list[Problem], cfg: EvalConfig, chat_template: bool = False
             ) -> EvalResult:
    """Answer every problem `cfg.samples` times and verify each response with the task's reward.

    Greedy decoding when `cfg.temperature == 0` (then one sample suffices).
    """
    if not problems:
        raise ValueError("no problems to evaluate")
    samples = 1 if cfg.temperature <= 0 else cfg.samples
    prompts = [encode_prompt(tokenizer, p.prompt, chat_template) for p in problems for _ in range(samples)]
    segments = engine.generate(prompts, SamplingParams(cfg.temperature, 1.0, cfg.max_response_tokens))
    by_level, tokens, failures, shown = defaultdict(list), [], 0, []
    for i, seg in enumerate(segments):
        problem = problems[i // samples]
        text = tokenizer.decode(seg.token_ids, skip_special_tokens=True)
        verdict = score(problem, text)
        by_level[problem.level].append(float(verdict.correct))
        tokens.append(len(seg.token_ids))
        failures += verdict.reason in ("no_answer", "parse_error", "timeout")
        if len(shown) < 8 and i % samples == 0 and i % max(1, len(segments) // 8) < samples:
            shown.append({"prompt": problem.prompt, "response": text, "gold": problem.answer, "correct": verdict.correct})
    all_scores = [s for scores in by_level.values() for s in scores]
    return EvalResult(
        accuracy=sum(all_scores) / len(all_scores),
        per_level={level: sum(v) / len(v) for level, v in sorted(by_level.items())},
        mean_response_tokens=sum(tokens) / len(tokens),
        parse_failures=failures / len(segments),
        num_prompts=len(problems),
        samples=shown,
    )
