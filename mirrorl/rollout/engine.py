"""The rollout-engine interface: prompts in, response segments out.

Every engine (Hugging Face `generate` here; vLLM behind the same interface) returns `Segment`s that
carry the token ids, why generation stopped and which policy version produced them, so the trainer
(and later a replay buffer for partial rollouts) never depends on the backend. Prompts about a
picture carry its tensors beside their token ids (`multimodal`, see `mirrorl.models.multimodal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy decoding.

    Attributes:
        temperature: softmax temperature (0 = greedy).
        top_p: nucleus sampling mass in (0, 1].
        max_new_tokens: most tokens to generate per response in this call (tokens).
        repeat_window_tokens: stop a response whose last this-many tokens are a loop (see
            `mirrorl.rollout.repeat.repeating_tail`); 0 = no repeat detection.
        repeat_max_period_tokens: longest loop period the detector looks for (tokens).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    repeat_window_tokens: int = 0
    repeat_max_period_tokens: int = 0


@dataclass
class Segment:
    """One generated continuation of one prompt.

    Attributes:
        prompt_ids: the prompt token ids (no padding; without the response prefix it continued).
        token_ids: token ids generated in this call, including the end-of-sequence token when it stopped.
        finish_reason: ``"stop"`` (end-of-sequence produced), ``"length"`` (hit max_new_tokens) or
            ``"repeat"`` (stopped in a loop by repeat detection).
        policy_version: the iteration whose weights generated it (see `RolloutEngine.update_weights`).
    """

    prompt_ids: list[int]
    token_ids: list[int]
    finish_reason: str
    policy_version: int


class RolloutEngine(Protocol):
    """What the RL loop needs from an inference backend."""

    policy_version: int

    def generate(self, prompts: list[list[int]], sampling: SamplingParams,
                 prefixes: list[list[int]] | None = None,
                 multimodal: list[dict[str, Tensor] | None] | None = None) -> list[Segment]:
        """One segment per prompt, in order. With `prefixes`, continue each response from its prefix
        (tokens generated earlier, partial rollouts): the model conditions on prompt + prefix, the
        segment holds only the new tokens, and repeat detection counts the prefix as response.
        `multimodal[i]` holds prompt i's image tensors (None for a text prompt), as
        `mirrorl.models.multimodal.encode_image_prompt` returns them; image placeholder tokens are
        never generated."""
        ...

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        """Load the trainer's new weights (None when the engine already shares them) and record `version`."""
        ...
