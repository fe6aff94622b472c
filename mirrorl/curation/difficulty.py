"""Pass rates by sampling (report section 2.1): a warm-up model answers each prompt n times at a high
temperature, and the share of correct answers is the prompt's difficulty proxy (lower = harder). The same
sampler, with the response prefilled by the start of an answer (``\\boxed{``) and a few tokens to write it,
asks for the answer alone; a prompt answered right without reasoning within 8 tries is easy to hack.

Every response is judged by the task's rule-based reward (`mirrorl.rewards.score`; code in the sandbox).
"""

from __future__ import annotations

from mirrorl.eval.evaluate import encode_prompt
from mirrorl.rewards import score
from mirrorl.rollout.engine import SamplingParams
from mirrorl.tasks.problem import Problem


def sample_correct(engine, tokenizer, problems: list[Problem], samples: int, sampling: SamplingParams,
                   chat_template: bool = False, instruction: str = "", prefix: str = "",
                   require_stop: bool = True) -> list[list[bool]]:
    """Sample `samples` responses per problem in one batched `engine.generate` call and judge each.

    Args:
        engine: a rollout engine (`mirrorl.rollout.hf.HFEngine`); it batches by `eval.batch_size`.
        problems: the prompts; each gets `instruction` appended before encoding.
        samples: responses per problem (report: 10 for difficulty, 8 for the answer-only guess).
        prefix: text the response starts with (prefilled, not generated); it is judged with the response.
        require_stop: a response cut at `sampling.max_new_tokens` or in a loop counts as wrong (as in RL);
            False judges it as it stands (answer-only guesses have a tiny token budget).
    Returns: per problem, `samples` booleans (True = judged correct).
    Raises: mirrorl.sandbox.client.SandboxError when a code problem's sandbox cannot be reached.
    """
    prompts = [encode_prompt(tokenizer, p.prompt + instruction, chat_template) for p in problems for _ in range(samples)]
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    segments = engine.generate(prompts, sampling, [list(prefix_ids) for _ in prompts] if prefix else None)
    out = []
    for i, problem in enumerate(problems):
        flags = []
        for seg in segments[i * samples:(i + 1) * samples]:
            if require_stop and seg.finish_reason != "stop":
                flags.append(False)
                continue
            flags.append(score(problem, prefix + tokenizer.decode(seg.token_ids, skip_special_tokens=True)).correct)
        out.append(flags)
    return out
