"""Held-out evaluation: pass@1 (averaged over samples), accuracy per level and per task, mean response tokens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mirrorl.config import Config, EvalConfig
from mirrorl.models.loading import load_policy, load_processor
from mirrorl.models.multimodal import encode_image_prompt
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.problem import Problem


def encode_prompt(tokenizer, text: str, chat_template: bool = False) -> list[int]:
    """Token ids of a prompt, through the tokenizer's chat template when asked (instruction-tuned models)."""
    if chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
    return tokenizer(text)["input_ids"]


def encode_problem(tokenizer, problem: Problem, chat_template: bool = False, processor=None
                   ) -> tuple[list[int], dict | None]:
    """Prompt token ids of a problem and its image tensors (None for a text prompt).

    A problem with an `image` goes through the model's multimodal `processor` (`encode_image_prompt`).
    Raises: ValueError naming the problem when it has an image and there is no processor (a text-only
        model); DataError when the image cannot be decoded.
    """
    if not problem.image:
        return encode_prompt(tokenizer, problem.prompt, chat_template), None
    if processor is None:
        raise ValueError(f"problem {problem.id} has an image, but the model has no image processor "
                         "(a text-only model): use a vision-language model")
    return encode_image_prompt(processor, problem.prompt, problem.image, chat_template)


@dataclass
class EvalResult:
    """accuracy: pass@1 in [0, 1]; per_level: level -> accuracy; per_task: `meta["task"]` -> accuracy
    for problems that name their task (the generated vision tasks), else empty; mean_response_tokens:
    tokens; parse_failures: share of responses without a checkable answer; samples: a few decoded responses."""

    accuracy: float
    per_level: dict[int, float]
    per_task: dict[str, float]
    mean_response_tokens: float
    parse_failures: float
    num_prompts: int
    samples: list[dict] = field(default_factory=list)

    def as_metrics(self, prefix: str) -> dict:
        out = {f"{prefix}/accuracy": self.accuracy, f"{prefix}/mean_response_tokens": self.mean_response_tokens}
        out.update({f"{prefix}/accuracy_level_{k}": v for k, v in sorted(self.per_level.items())})
        out.update({f"{prefix}/accuracy_{k}": v for k, v in sorted(self.per_task.items())})
        return out


def evaluate(engine, tokenizer, problems: list[Problem], cfg: EvalConfig, chat_template: bool = False,
             processor=None) -> EvalResult:
    """Answer every problem `cfg.samples` times and verify each response with the task's reward.

    Greedy decoding when `cfg.temperature == 0` (then one sample suffices). Problems with an image
    need the model's `processor` (see `encode_problem`).
    """
    if not problems:
        raise ValueError("no problems to evaluate")
    samples = 1 if cfg.temperature <= 0 else cfg.samples
    encoded = [encode_problem(tokenizer, p, chat_template, processor) for p in problems]
    prompts = [ids for ids, _ in encoded for _ in range(samples)]
    images = [mm for _, mm in encoded for _ in range(samples)]
    segments = engine.generate(prompts, SamplingParams(cfg.temperature, 1.0, cfg.max_response_tokens),
                               **({"multimodal": images} if any(images) else {}))
    by_level, by_task, tokens, failures, shown = defaultdict(list), defaultdict(list), [], 0, []
    for i, seg in enumerate(segments):
        problem = problems[i // samples]
        text = tokenizer.decode(seg.token_ids, skip_special_tokens=True)
        verdict = score(problem, text)
        by_level[problem.level].append(float(verdict.correct))
        if "task" in problem.meta:
            by_task[problem.meta["task"]].append(float(verdict.correct))
        tokens.append(len(seg.token_ids))
        failures += verdict.reason in ("no_answer", "parse_error", "timeout")
        if len(shown) < 8 and i % samples == 0 and i % max(1, len(segments) // 8) < samples:
            shown.append({"id": problem.id, "prompt": problem.prompt, "response": text, "gold": problem.answer,
                          "correct": verdict.correct})
    all_scores = [s for scores in by_level.values() for s in scores]
    return EvalResult(
        accuracy=sum(all_scores) / len(all_scores),
        per_level={level: sum(v) / len(v) for level, v in sorted(by_level.items())},
        per_task={task: sum(v) / len(v) for task, v in sorted(by_task.items())},
        mean_response_tokens=sum(tokens) / len(tokens),
        parse_failures=failures / len(segments),
        num_prompts=len(problems),
        samples=shown,
    )


def evaluate_folder(model_dir, problems: list[Problem], cfg: Config, eval_cfg: EvalConfig | None = None,
                    progress: bool = False) -> EvalResult:
    """`evaluate` for the model saved in `model_dir` (loaded with its processor, if it has one), generating
    with the run's `HFEngine` settings; `eval_cfg` overrides `cfg.eval` (e.g. greedy beside a sampled run).

    Raises: ModelLoadError for a folder that holds no loadable model; see `evaluate`.
    """
    model, tokenizer = load_policy(model_dir, device=cfg.run.device)
    engine = HFEngine.from_config(model, tokenizer, cfg, progress)
    return evaluate(engine, tokenizer, problems, eval_cfg or cfg.eval, cfg.model.chat_template,
                    load_processor(model_dir))
