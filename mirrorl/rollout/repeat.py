"""Repeat detection (report section 2.6.2, Fig. 3b "repeat, early stop"): is a response stuck in a loop?

The test is a period test on the tail of the response: the last `window` tokens are a loop when some
period p <= max_period makes them periodic (token t equals token t + p throughout the window), i.e.
a span of p tokens has been written at least window / p times in a row. Engines call it after every
generated token and stop a looping row early (finish reason "repeat").
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
