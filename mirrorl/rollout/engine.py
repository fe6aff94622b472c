"""The rollout-engine interface: prompts in, response segments out.

Every engine (Hugging Face `generate` in `hf.py`, vLLM in `vllm.py`) returns `Segment`s that carry the
token ids, why generation stopped, which policy version produced them and, on request, each token's
log-probability under the engine's copy of the policy, so the trainer and the replay buffer never depend
on the backend. `make_engine` picks the backend named by `rollout.engine`.
Prompts about a picture carry its image inputs beside their token ids (`multimodal`, see
`mirrorl.models.multimodal`): the processor's tensors, which `HFEngine` takes, and the picture itself,
which `VLLMEngine` hands to vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image
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
        logprobs: also return each generated token's log-probability (`Segment.logprobs`) under the
            model's own distribution, log pi(y_t | x, y_<t) at temperature 1 before top-p: the quantity
            the trainer recomputes, whatever `temperature` and `top_p` the sampling used.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    repeat_window_tokens: int = 0
    repeat_max_period_tokens: int = 0
    logprobs: bool = False


@dataclass
class Segment:
    """One generated continuation of one prompt.

    Attributes:
        prompt_ids: the prompt token ids (no padding; without the response prefix it continued).
        token_ids: token ids generated in this call, including the end-of-sequence token when it stopped.
        finish_reason: ``"stop"`` (end-of-sequence produced), ``"length"`` (hit max_new_tokens) or
            ``"repeat"`` (stopped in a loop by repeat detection).
        policy_version: the iteration whose weights generated it (see `RolloutEngine.update_weights`).
        logprobs: one log-probability (nats) per entry of `token_ids` under the engine's weights, when
            `SamplingParams.logprobs` was set; None otherwise.
    """

    prompt_ids: list[int]
    token_ids: list[int]
    finish_reason: str
    policy_version: int
    logprobs: list[float] | None = None


class RolloutEngine(Protocol):
    """What the RL loop needs from an inference backend."""

    policy_version: int

    def generate(self, prompts: list[list[int]], sampling: SamplingParams,
                 prefixes: list[list[int]] | None = None,
                 multimodal: list[dict[str, Tensor | Image.Image] | None] | None = None) -> list[Segment]:
        """One segment per prompt, in order. With `prefixes`, continue each response from its prefix
        (tokens generated earlier, partial rollouts): the model conditions on prompt + prefix, the
        segment holds only the new tokens, and repeat detection counts the prefix as response.
        `multimodal[i]` holds prompt i's image inputs (None for a text prompt), as
        `mirrorl.models.multimodal.encode_image_prompt` returns them: tensors such as ``pixel_values``
        (1, 3, H, W) and the PIL picture; image placeholder tokens are never generated."""
        ...

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        """Load the trainer's new weights (None when the engine already shares them) and record `version`."""
        ...

    def sleep(self) -> None:
        """Release the engine's memory while the trainer uses the device (colocated mode, report section
        2.6.3); `wake_up` and then `update_weights` before the next `generate`."""
        ...

    def wake_up(self) -> None:
        """Take the memory back after `sleep`."""
        ...


def make_engine(cfg, model, tokenizer, model_path: str, progress: bool = False) -> RolloutEngine:
    """The rollout engine named by `cfg.rollout.engine`.

    "hf" shares `model` (the trainer's module) and needs no weight transfer; "vllm" loads its own copy
    from `model_path` (an HF folder holding the same weights as `model`) and receives the trainer's
    state dict in `update_weights`. vLLM is imported only here, so the "hf" path runs without it.
    Raises: ImportError naming the install command when "vllm" is asked for and not installed.
    """
    if cfg.rollout.engine == "vllm":
        from mirrorl.rollout.vllm import VLLMEngine
        return VLLMEngine.from_config(model_path, cfg, progress)
    from mirrorl.rollout.hf import HFEngine
    return HFEngine.from_config(model, tokenizer, cfg, progress)


def memory_in_use_bytes(device: str) -> int:
    """Memory taken on `device` now (bytes): on "cuda*" the whole device's used memory
    (`torch.cuda.mem_get_info`, so memory vLLM allocates outside PyTorch's caching allocator counts);
    on CPU this process's resident set size (psutil)."""
    if device.startswith("cuda"):
        import torch
        free, total = torch.cuda.mem_get_info(torch.device(device))
        return total - free
    import psutil
    return psutil.Process().memory_info().rss
