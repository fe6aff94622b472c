"""Partial rollouts and the replay buffer (report section 2.6.2, Fig. 3b).

Each iteration, every unfinished response gets at most a fixed budget of new tokens. A response that
hits the budget without finishing stays in the replay buffer and is continued in the next iteration
from its saved tokens: the engine conditions on prompt + prefix and generates only what follows, so
no token is regenerated. A long response is thus made of segments from several iterations, and each
token records the policy version (iteration) that produced it.

Responses are kept in groups of k per prompt, because the advantage of each needs the rewards of all
k: a group leaves the buffer, to be scored into advantages and trained on, once all k responses have
finished. A response finishes with "stop" (end-of-sequence), "repeat" (stopped in a loop) or
"length" (it reached `max_response_tokens` over all its segments). With a budget of at least
`max_response_tokens` every response finishes in its first iteration, as without partial rollouts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mirrorl.rollout.engine import RolloutEngine, SamplingParams


@dataclass
class Trajectory:
    """One response to one prompt, generated over one or more iterations. Counts are in tokens.

    Attributes:
        prompt_ids: the prompt's token ids.
        response_ids: response tokens so far (all segments, in order).
        token_versions: for each response token, the policy version (iteration) that generated it.
        finish_reason: None while unfinished; then "stop", "repeat" or "length".
        reward: task reward (0/1), set once when the finished response is scored; None before.
        verdict: the checker's reason ("equal", "no_answer", ...; "truncated" or "repeat" unscored).
        multimodal: the prompt's image inputs (`mirrorl.models.multimodal`), None for a text prompt.
        token_logprobs: for each response token, its log-prob under the engine that generated it (NaN
            where the engine returned none; see `SamplingParams.logprobs`).
    """

    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    token_versions: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    reward: float | None = None
    verdict: str = ""
    multimodal: dict | None = None
    token_logprobs: list[float] = field(default_factory=list)


@dataclass
class Group:
    """The k responses to one prompt (`prompt_index` into the RL prompt pool)."""

    prompt_index: int
    trajectories: list[Trajectory]

    @property
    def finished(self) -> bool:
        return all(t.finish_reason is not None for t in self.trajectories)


class ReplayBuffer:
    """Groups whose responses are being generated, oldest first; saved in checkpoints."""

    def __init__(self):
        self.groups: list[Group] = []

    def __len__(self) -> int:
        return len(self.groups)

    def add(self, prompt_index: int, prompt_ids: list[int], k: int, multimodal: dict | None = None) -> None:
        """Start a group of k empty responses to a prompt (with its image tensors, if any)."""
        self.groups.append(Group(prompt_index, [Trajectory(list(prompt_ids), multimodal=multimodal)
                                                for _ in range(k)]))

    def trajectories(self) -> list[Trajectory]:
        """Every response in the buffer, group by group."""
        return [t for g in self.groups for t in g.trajectories]

    def pop_finished(self) -> list[Group]:
        """Remove and return the groups whose k responses have all finished, oldest first."""
        done = [g for g in self.groups if g.finished]
        self.groups = [g for g in self.groups if not g.finished]
        return done

    def state_dict(self) -> dict:
        return {"groups": [{"prompt_index": g.prompt_index,
                            "trajectories": [dataclasses.asdict(t) for t in g.trajectories]} for g in self.groups]}

    def load_state_dict(self, state: dict) -> None:
        # buffers saved before engine log-probs were kept: NaN for each token so far
        self.groups = [Group(g["prompt_index"], [Trajectory(**({"token_logprobs": [math.nan] * len(t["response_ids"])} | t))
                                                 for t in g["trajectories"]]) for g in state["groups"]]


def extend_rollouts(engine: RolloutEngine, trajectories: list[Trajectory], sampling: SamplingParams,
                    budget_tokens: int, max_response_tokens: int) -> int:
    """Generate the next segment of every unfinished trajectory, in place (one iteration of section 2.6.2).

    Each segment has at most `budget_tokens` tokens and never takes a response past
    `max_response_tokens` in total (tokens beyond it are dropped and the response ends as "length").
    New tokens are tagged with `engine.policy_version` and the engine's log-probs (`sampling.logprobs`).

    Args:
        engine: generates continuations of prompt + prefix (`RolloutEngine.generate` with `prefixes`).
        trajectories: responses; finished ones are left alone.
        sampling: temperature, top_p and repeat detection (its `max_new_tokens` is replaced).
        budget_tokens: new tokens per response per call, > 0.
        max_response_tokens: cap on a response's total length, > 0.
    Returns: the number of tokens generated (kept) in this call.
    """
    pending = [t for t in trajectories if t.finish_reason is None]
    if not pending:
        return 0
    most = max(max_response_tokens - len(t.response_ids) for t in pending)
    images = {"multimodal": [t.multimodal for t in pending]} if any(t.multimodal for t in pending) else {}
    segments = engine.generate([t.prompt_ids for t in pending],
                               dataclasses.replace(sampling, max_new_tokens=min(budget_tokens, most)),
                               prefixes=[t.response_ids for t in pending], **images)
    generated = 0
    for t, seg in zip(pending, segments):
        room = max_response_tokens - len(t.response_ids)
        new = seg.token_ids[:room]
        t.response_ids = t.response_ids + new
        t.token_versions = t.token_versions + [seg.policy_version] * len(new)
        t.token_logprobs = t.token_logprobs + (seg.logprobs[:room] if seg.logprobs else [math.nan] * len(new))
        generated += len(new)
        if seg.finish_reason in ("stop", "repeat") and len(seg.token_ids) <= room:
            t.finish_reason = seg.finish_reason
        elif len(t.response_ids) >= max_response_tokens:
            t.finish_reason = "length"
    return generated
