"""Prompt samplers: which prompts each RL iteration trains on. State is checkpointed for resume."""

from __future__ import annotations

import random


class UniformSampler:
    """Draw prompts uniformly without replacement, reshuffling after each pass over the pool.

    Args:
        num_prompts: size of the prompt pool (prompt indices are 0..num_prompts-1).
        seed: shuffling seed.
    """

    def __init__(self, num_prompts: int, seed: int):
        if num_prompts <= 0:
            raise ValueError("the prompt pool is empty")
        self.num_prompts = num_prompts
        self.rng = random.Random(seed)
        self.order: list[int] = []
        self.position = 0

    def sample(self, n: int) -> list[int]:
        """`n` prompt indices; may repeat across passes but not within one pass."""
        out = []
        while len(out) < n:
            if self.position >= len(self.order):
                self.order = list(range(self.num_prompts))
                self.rng.shuffle(self.order)
                self.position = 0
            take = self.order[self.position: self.position + n - len(out)]
            self.position += len(take)
            out.extend(take)
        return out

    def update(self, prompt_indices: list[int], rewards: list[float]) -> None:
        """Record outcomes (unused by uniform sampling; prioritized samplers track success rates)."""

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "order": list(self.order), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.order, self.position = list(state["order"]), state["position"]
