"""Repeat detection (report section 2.6.2, Fig. 3b "repeat, early stop"): is a response stuck in a loop?

The test is a period test on the tail of the response: the last `window` tokens are a loop when some
period p <= max_period makes them periodic (token t equals token t + p throughout the window), i.e.
a span of p tokens has been written at least window / p times in a row. The HF engine calls it after
every generated token and stops a looping row early (finish reason "repeat"); engines without a
per-token stopping hook (vLLM) cut finished responses with `first_loop_end`, which finds the same point.
"""

from __future__ import annotations

import torch
from torch import Tensor


def repeating_tail(token_ids: Tensor, window: int, max_period: int) -> Tensor:
    """Whether each row ends in a loop: its last `window` tokens have a period of at most `max_period`.

    Args:
        token_ids: (B, L) long, token ids; only the last `window` columns are read.
        window: tokens the loop must cover, > 0.
        max_period: longest loop period in tokens, 1 <= max_period <= window // 2 (so the span is seen
            at least twice).
    Returns: (B,) bool; all False when L < window.
    Raises: ValueError when max_period is outside [1, window // 2].

    >>> repeating_tail(torch.tensor([[5, 1, 2, 3, 1, 2, 3, 1, 2, 3]]), window=9, max_period=3).tolist()
    [True]
    >>> repeating_tail(torch.tensor([[5, 1, 2, 3, 1, 2, 3, 1, 2, 3]]), window=10, max_period=3).tolist()
    [False]
    """
    if not 1 <= max_period <= window // 2:
        raise ValueError(f"max_period must lie in [1, window // 2 = {window // 2}], got {max_period}")
    found = torch.zeros(token_ids.shape[0], dtype=torch.bool, device=token_ids.device)
    if token_ids.shape[1] < window:
        return found
    tail = token_ids[:, -window:]
    for period in range(1, max_period + 1):
        found |= (tail[:, period:] == tail[:, :-period]).all(dim=1)
    return found


def first_loop_end(response_ids: list[int], start: int, window: int, max_period: int) -> int | None:
    """The shortest length n > `start` at which `response_ids[:n]` ends in a loop (`repeating_tail`).

    This is where per-token repeat stopping would have stopped a response whose first `start` tokens
    were already there (a partial-rollout prefix): the tokens before n do not depend on whether
    generation went on after n, so cutting a finished response at n gives the same tokens.

    Args:
        response_ids: the whole response (prefix + new tokens).
        start: tokens of `response_ids` generated before this call (0 without partial rollouts).
        window, max_period: see `repeating_tail`.
    Returns: n in (start, len(response_ids)], or None when no loop ends after `start`.
    Raises: ValueError when max_period is outside [1, window // 2].

    >>> first_loop_end([5, 1, 2, 1, 2, 1, 2, 1, 2], start=0, window=4, max_period=2)
    5
    >>> first_loop_end([5, 1, 2, 1, 2, 1, 2, 1, 2], start=7, window=4, max_period=2)  # loops ending at 8 and 9
    8
    """
    if len(response_ids) < window:
        repeating_tail(torch.zeros(1, 0, dtype=torch.long), window, max_period)  # validates the arguments
        return None
    offset = max(0, start + 1 - window)  # first window that ends after `start`
    windows = torch.tensor(response_ids).unfold(0, window, 1)[offset:]
    hits = repeating_tail(windows, window, max_period).nonzero()
    return None if len(hits) == 0 else offset + int(hits[0]) + window
