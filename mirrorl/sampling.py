"""Prompt samplers: which prompts each RL iteration trains on (report section 2.3.4). State is
checkpointed for resume.

Every sampler has `sample(n, iteration) -> prompt indices`, `update(prompt_indices, success_rates)`
(each prompt's share of correct responses in the group just scored) and `state_dict` /
`load_state_dict`. `make_sampler` picks one from `rl.sampler`. Prioritized and curriculum sampling
are alternatives here; the report does not say how it combines them. Both start each prompt's success
estimate s_i from its curated pass rate (`Problem.pass_rate`, written by `mirrorl curate`, report
section 2.1) when the data has one, else from `rl.success_initial`.
"""

from __future__ import annotations

import math
import random

from mirrorl.config import RLConfig


def _set_rng(rng: random.Random, state) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def initial_rates(num_prompts: int, initial_success: float, prior: list[float | None] | None = None) -> list[float]:
    """s_i before prompt i is first scored: `prior[i]` (a measured pass rate in [0, 1]) where given and not
    None, else `initial_success`.

    Raises: ValueError when `prior` does not have one entry per prompt.
    """
    if prior is None:
        return [initial_success] * num_prompts
    if len(prior) != num_prompts:
        raise ValueError(f"{len(prior)} prior success rates for {num_prompts} prompts")
    return [initial_success if p is None else float(p) for p in prior]


def update_success_rates(rates: list[float], prompt_indices: list[int], observed: list[float], ema: float) -> None:
    """Exponential moving average of each prompt's success rate, in place:
    `s_i <- (1 - ema) * s_i + ema * observed_i` for every drawn prompt i (others unchanged).

    Args:
        rates: s_i per prompt, each in [0, 1].
        prompt_indices, observed: prompts just scored and their share of correct responses (in [0, 1]).
        ema: weight of the new observation, in (0, 1]; 1 keeps only the latest group.
    """
    for i, value in zip(prompt_indices, observed):
        rates[i] = (1 - ema) * rates[i] + ema * value


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

    def sample(self, n: int, iteration: int = 0) -> list[int]:
        """`n` prompt indices; may repeat across passes but not within one pass (`iteration` is unused)."""
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

    def update(self, prompt_indices: list[int], success_rates: list[float]) -> None:
        """Outcomes are not used by uniform sampling."""

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "order": list(self.order), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        _set_rng(self.rng, state["rng"])
        self.order, self.position = list(state["order"]), state["position"]


class PrioritizedSampler:
    """Prioritized sampling (report section 2.3.4): P(i) proportional to max(1 - s_i, floor).

    s_i is an exponential moving average of prompt i's group success rate (`update_success_rates`),
    starting at `initial_success` for prompts not yet drawn. The floor keeps solved prompts (s_i = 1)
    drawable. The prompts of one call are distinct (weighted sampling without replacement by the
    Efraimidis-Spirakis keys log(u) / w_i), so a single draw follows P(i) exactly and a batch draws
    no prompt twice unless `n` exceeds the pool.

    Args:
        num_prompts: size of the prompt pool.
        seed: sampling seed.
        initial_success: s_i before prompt i is first scored, in [0, 1].
        ema: weight of each new observation in s_i, in (0, 1].
        floor: smallest weight, in (0, 1].
        prior: per prompt, a measured pass rate that replaces `initial_success` (None = not measured).
    """

    def __init__(self, num_prompts: int, seed: int, initial_success: float = 0.5, ema: float = 0.5,
                 floor: float = 0.05, prior: list[float | None] | None = None):
        if num_prompts <= 0:
            raise ValueError("the prompt pool is empty")
        self.rng = random.Random(seed)
        self.success = initial_rates(num_prompts, initial_success, prior)
        self.ema, self.floor = ema, floor

    def weights(self) -> list[float]:
        """Unnormalised sampling weight max(1 - s_i, floor) of every prompt."""
        return [max(1.0 - s, self.floor) for s in self.success]

    def sample(self, n: int, iteration: int = 0) -> list[int]:
        """`n` prompt indices drawn by weight, distinct within a call up to the pool size (`iteration` is unused)."""
        out: list[int] = []
        weights = self.weights()
        while len(out) < n:
            keys = [math.log(1.0 - self.rng.random()) / w for w in weights]  # 1 - random() lies in (0, 1]
            ranked = sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
            out.extend(ranked[: n - len(out)])
        return out

    def update(self, prompt_indices: list[int], success_rates: list[float]) -> None:
        update_success_rates(self.success, prompt_indices, success_rates, self.ema)

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "success": list(self.success)}

    def load_state_dict(self, state: dict) -> None:
        _set_rng(self.rng, state["rng"])
        self.success = list(state["success"])


class CurriculumSampler:
    """Two-phase curriculum as in the report's ablation (section 3.5, Fig. 9): uniform sampling over
    every prompt for the first `switch_iteration` iterations, then uniform sampling over hard prompts only.

    The hard pool is fixed at the switch: prompts whose `level` is in `hard_levels` when that list is
    given, otherwise prompts whose measured success rate s_i (tracked as in `PrioritizedSampler`;
    prompts never drawn keep their `prior` pass rate or `initial_success`) is at most `hard_success`. If no prompt qualifies by
    measured rate, the whole pool stays in use.

    Args:
        levels: difficulty level of every prompt (0 = unknown).
        seed: sampling seed.
        switch_iteration: first 0-based iteration that draws hard prompts only.
        hard_levels: levels that count as hard; empty = judge by measured success rate.
        hard_success, initial_success, ema: see above; rates in [0, 1], ema in (0, 1].
        prior: per prompt, a measured pass rate that replaces `initial_success` (None = not measured).
    Raises: ValueError if `hard_levels` is given and no prompt has one of them.
    """

    def __init__(self, levels: list[int], seed: int, switch_iteration: int, hard_levels: list[int] = (),
                 hard_success: float = 0.5, initial_success: float = 0.5, ema: float = 0.5,
                 prior: list[float | None] | None = None):
        self.levels, self.switch_iteration, self.hard_levels = list(levels), switch_iteration, list(hard_levels)
        if self.hard_levels and not any(level in self.hard_levels for level in self.levels):
            raise ValueError(f"curriculum: no prompt has a hard level {self.hard_levels} "
                             f"(levels present: {sorted(set(self.levels))})")
        self.hard_success, self.ema, self.seed = hard_success, ema, seed
        self.success = initial_rates(len(self.levels), initial_success, prior)
        self.warmup = UniformSampler(len(self.levels), seed)
        self.hard: list[int] | None = None  # the hard pool, fixed at the switch
        self.hard_sampler: UniformSampler | None = None  # uniform over positions in `hard`

    def _hard_pool(self) -> list[int]:
        if self.hard_levels:
            return [i for i, level in enumerate(self.levels) if level in self.hard_levels]
        return [i for i, s in enumerate(self.success) if s <= self.hard_success] or list(range(len(self.levels)))

    def _switch(self, hard: list[int]) -> None:
        self.hard = hard
        self.hard_sampler = UniformSampler(len(hard), self.seed + 1)

    def sample(self, n: int, iteration: int) -> list[int]:
        """`n` prompt indices for 0-based `iteration`: from every prompt before the switch, hard ones after."""
        if iteration < self.switch_iteration:
            return self.warmup.sample(n)
        if self.hard is None:
            self._switch(self._hard_pool())
        return [self.hard[j] for j in self.hard_sampler.sample(n)]

    def update(self, prompt_indices: list[int], success_rates: list[float]) -> None:
        update_success_rates(self.success, prompt_indices, success_rates, self.ema)

    def state_dict(self) -> dict:
        return {"warmup": self.warmup.state_dict(), "hard": self.hard, "success": list(self.success),
                "hard_sampler": None if self.hard_sampler is None else self.hard_sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.warmup.load_state_dict(state["warmup"])
        if state["hard"] is not None:
            self._switch(list(state["hard"]))
            self.hard_sampler.load_state_dict(state["hard_sampler"])
        self.success = list(state["success"])


def make_sampler(cfg: RLConfig, levels: list[int], seed: int, pass_rates: list[float | None] | None = None):
    """The sampler named by `cfg.sampler` over prompts with the given difficulty levels (0 = unknown) and
    curated pass rates (None entries = not measured; see `initial_rates`).

    Raises: ValueError from `CurriculumSampler` when no prompt has one of `cfg.curriculum_hard_levels`,
        or when `pass_rates` is not one entry per prompt.
    """
    if cfg.sampler == "prioritized":
        return PrioritizedSampler(len(levels), seed, cfg.success_initial, cfg.success_ema, cfg.priority_floor,
                                  pass_rates)
    if cfg.sampler == "curriculum":
        return CurriculumSampler(levels, seed, cfg.curriculum_switch_iteration, cfg.curriculum_hard_levels,
                                 cfg.curriculum_hard_success, cfg.success_initial, cfg.success_ema, pass_rates)
    return UniformSampler(len(levels), seed)
