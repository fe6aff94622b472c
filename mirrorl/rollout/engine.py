"""The rollout-engine interface: prompts in, response segments out.

Every engine (Hugging Face `generate` here; vLLM behind the same interface) returns `Segment`s that
carry the token ids, why generation stopped and which policy version produced them, so the trainer
(and later a replay buffer for partial rollouts) never depends on the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding.

    Attributes:
        temperature: softmax temperature (0 = greedy).
        top_p: nucleus sampling mass in (0, 1].
        max_new_tokens: most tokens to generate per response in this call (tokens).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200


@dataclass
class Segment:
    """One generated continuation of one prompt.

    Attributes:
        prompt_ids: the prompt token ids the engine saw (no padding).
        token_ids: generated token ids, including the end-of-sequence token when it stopped.
        finish_reason: ``"stop"`` (end-of-sequence produced) or ``"length"`` (hit max_new_tokens).
        policy_version: the iteration whose weights generated it (see `RolloutEngine.update_weights`).
    """

    prompt_ids: list[int]
    token_ids: list[int]
    finish_reason: str
    policy_version: int


class RolloutEngine(Protocol):
    """What the RL loop needs from an inference backend."""

    policy_version: int

    def generate(self, prompts: list[list[int]], sampling: SamplingParams) -> list[Segment]:
        """One segment per prompt, in order."""
        ...

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        """Load the trainer's new weights (None when the engine already shares them) and record `version`."""
        ...
