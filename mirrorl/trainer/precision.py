"""Numeric settings: threads and mixed precision, chosen once per process."""

from __future__ import annotations

import contextlib
import functools
import os

import torch


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads; 0 picks one per physical core (os.sched_getaffinity, capped at 16).

    Measured on a 2-core machine with the 3.2M-parameter demo model (`bench/cpu_settings.py`, bf16): 2
    threads beat 1 by 1.24x for generation (2,842 vs 2,285 tokens/s at batch 128) and 1.56x for
    training (7,584 vs 4,848 tokens/s); one inter-op thread avoids oversubscription. Returns the number set.
    """
    if threads <= 0:
        threads = min(len(os.sched_getaffinity(0)), 16)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # can only be set before the first parallel op
        torch.set_num_interop_threads(1)
    return threads


@functools.cache
def bf16_supported(device_type: str) -> bool:
    """Whether `device_type` ("cpu", "cuda", ...) computes in bfloat16 natively.

    CUDA: `torch.cuda.is_bf16_supported()` (compute capability 8.0 and newer run it natively). CPU: oneDNN's
    bf16 kernels (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`, true with AVX-512 or AMX); without them
    bf16 is emulated, and on an AVX2-only CPU the demo model trains 19x slower in bf16 autocast than in
    fp32 (174 against 3,324 tokens/s, `bench/cpu_settings.py`).
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """The precision a `run.precision` setting stands for on `device`: "bf16" or "fp32" unchanged, "auto"
    as "bf16" where `bf16_supported(device type)` and "fp32" elsewhere."""
    if precision != "auto":
        return precision
    return "bf16" if bf16_supported(torch.device(device).type) else "fp32"


def autocast(precision: str, device: str | torch.device):
    """bf16 autocast context for "bf16" (and "auto" where bf16 is native), a no-op for "fp32"."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")
