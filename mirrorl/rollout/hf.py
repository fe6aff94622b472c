"""Rollout engine on Hugging Face `model.generate` (CPU or GPU), batched by prompt length.

A batch is generated `chunk_tokens` at a time, each chunk a `generate` call that continues the KV cache
of the last; between chunks the rows that finished leave the batch, so no finished row is decoded while
the longest response goes on (the demo's responses average 100 tokens and reach 220).

In the default single-process mode the engine and the trainer hold the same `nn.Module`, so a weight
update is free (the colocated case of the report's section 2.6.3 with zero-copy transfer); when given
a separate model, `update_weights` copies a state dict in place. Repeat detection runs inside
`generate` as a `transformers` `StoppingCriteria`, so a looping row stops while the others go on.
Image tensors of vision prompts are batched with their rows (`mirrorl.models.multimodal.collate`).

With `SamplingParams.logprobs`, each token's log-probability comes from `generate`'s raw logits
(`output_logits`, before temperature and top-p) through `compute_transition_scores`. That keeps every
step's logits until `generate` returns, (B, T, V) floats per batch: cheap for the demo's 62-token
vocabulary, many GB for a 150k vocabulary and long responses (then turn `rollout.logprob_parity` off or
lower `eval.batch_size`). Colocation needs nothing here: the engine holds no memory of its own, so
`sleep` and `wake_up` do nothing.
"""

from __future__ import annotations

import torch
from tqdm import tqdm
from transformers import DynamicCache, StaticCache, StoppingCriteria, StoppingCriteriaList

from mirrorl.models.multimodal import collate, placeholder_token_ids
from mirrorl.rollout.engine import SamplingParams, Segment
from mirrorl.rollout.repeat import repeating_tail
from mirrorl.trainer.precision import autocast


class RepeatStop(StoppingCriteria):
    """Ends a row of `generate` once its response ends in a loop (`repeating_tail`).

    Only windows that lie inside the response (prefix + tokens generated in this call) count, so a
    repetitive prompt never triggers it.

    Args:
        width: columns of the left-padded input (prompt + prefix) passed to `generate`.
        prefix_lengths: (B,) long, response tokens already in each row's input (0 without partial rollouts).
        window, max_period: see `repeating_tail` (tokens).
    Attributes:
        stopped_at: (B,) long, tokens the row had generated in this call when its loop was found; -1 if never.
    """

    def __init__(self, width: int, prefix_lengths: torch.Tensor, window: int, max_period: int):
        self.width, self.prefix_lengths, self.window, self.max_period = width, prefix_lengths, window, max_period
        self.stopped_at = torch.full_like(prefix_lengths, -1)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.width
        looping = repeating_tail(input_ids, self.window, self.max_period)
        looping &= self.prefix_lengths + generated >= self.window
        self.stopped_at[looping & (self.stopped_at < 0)] = generated
        return looping


class HFEngine:
    """Generate with `transformers` `generate` in batches of at most `batch_size` prompts.

    Args:
        model: a causal LM (`PreTrainedModel`).
        eos_token_id, pad_token_id: token ids from the tokenizer.
        batch_size: prompts per `generate` call (memory knob).
        precision: "bf16" (autocast), "fp32", or "auto" (bf16 where native, `resolve_precision`).
        static_cache: a preallocated KV cache (batch x (input + max_new_tokens) positions per layer) written
            in place, instead of a cache that grows by concatenation and is copied every step.
        chunk_tokens: tokens per `generate` call; between calls, rows that finished leave the batch
            (`_generate_batch`). 0 = each batch in one call, every row running until the last one ends.
    The model's image placeholder tokens (`placeholder_token_ids`) are suppressed in every response.
    """

    def __init__(self, model, eos_token_id: int, pad_token_id: int, batch_size: int = 256,
                 precision: str = "fp32", progress: bool = False, static_cache: bool = True, chunk_tokens: int = 16):
        self.model, self.eos, self.pad = model, eos_token_id, pad_token_id
        self.batch_size, self.precision, self.progress = batch_size, precision, progress
        self.static_cache, self.chunk_tokens = static_cache, chunk_tokens
        self.suppressed = placeholder_token_ids(model.config)
        self.policy_version = 0

    @classmethod
    def from_config(cls, model, tokenizer, cfg, progress: bool = False) -> "HFEngine":
        """An engine with the run's generation batch size (`eval.batch_size`), `run.generation_precision`,
        `rollout.static_cache` and `rollout.chunk_tokens`."""
        return cls(model, tokenizer.eos_token_id, tokenizer.pad_token_id, cfg.eval.batch_size,
                   cfg.run.generation_precision, progress, cfg.rollout.static_cache, cfg.rollout.chunk_tokens)

    def update_weights(self, state_dict: dict | None, version: int) -> None:
        if state_dict is not None:
            self.model.load_state_dict(state_dict)
        self.policy_version = version

    def sleep(self) -> None:
        """Nothing to release: the engine's weights are the trainer's and the KV cache lives only inside `generate`."""

    def wake_up(self) -> None:
        """Nothing to take back (see `sleep`)."""

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], sampling: SamplingParams,
                 prefixes: list[list[int]] | None = None, multimodal: list[dict | None] | None = None
                 ) -> list[Segment]:
        """Sample one response (or continuation of `prefixes[i]`) per prompt; see `RolloutEngine.generate`.

        Inputs (prompt + prefix) are sorted by length and left-padded per batch, so a batch pads little.
        A row's finish reason is the first of: end-of-sequence ("stop"), a loop ("repeat", tokens
        kept up to the one that completed the loop) and the token limit ("length").
        """
        prefixes = prefixes or [[] for _ in prompts]
        multimodal = multimodal or [None] * len(prompts)
        inputs = [p + q for p, q in zip(prompts, prefixes)]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out: list[Segment | None] = [None] * len(inputs)
        was_training = self.model.training
        self.model.eval()
        for start in tqdm(range(0, len(order), self.batch_size), desc="rollout", leave=False, disable=not self.progress):
            idx = order[start:start + self.batch_size]
            rows = self._generate_batch([inputs[i] for i in idx], [len(prefixes[i]) for i in idx], sampling,
                                        collate([multimodal[i] for i in idx], next(self.model.parameters()).device))
            for i, (tokens, reason, logprobs) in zip(idx, rows):
                out[i] = Segment(prompts[i], tokens, reason, self.policy_version, logprobs)
        self.model.train(was_training)
        return out

    def _generate_batch(self, inputs: list[list[int]], prefix_lengths: list[int], sampling: SamplingParams,
                        images: dict) -> list[tuple[list[int], str, list[float] | None]]:
        """(token ids, finish reason, log-probs or None) per input, generated `chunk_tokens` at a time.

        Each chunk is one `generate` call that continues from the KV cache of the last; between calls the
        rows that finished leave the batch and their cache rows go (`Cache.reorder_cache`), so the batch
        costs about the sum of its response lengths instead of rows x the longest response. Batches with
        image inputs run in one call (a model may keep per-row state from its prefill, e.g. Qwen2-VL's
        rope offsets, that a shrinking batch would misalign).
        """
        device = next(self.model.parameters()).device
        width = max(map(len, inputs))
        ids = torch.full((len(inputs), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, tokens in enumerate(inputs):
            ids[row, width - len(tokens):] = torch.tensor(tokens)
            mask[row, width - len(tokens):] = 1
        ids, mask = ids.to(device), mask.to(device)
        limit = sampling.max_new_tokens
        cache = (StaticCache(config=self.model.config, max_cache_len=width + limit) if self.static_cache
                 else DynamicCache(config=self.model.config))
        chunk = limit if images or not self.chunk_tokens else self.chunk_tokens
        greedy = sampling.temperature <= 0
        tokens, logprobs = [[] for _ in inputs], [[] for _ in inputs]
        reasons: list[str | None] = [None] * len(inputs)
        rows, done = list(range(len(inputs))), 0  # batch row -> input; tokens generated per row so far
        while rows:
            repeat = None
            if sampling.repeat_window_tokens:
                repeat = RepeatStop(ids.shape[1], torch.tensor([prefix_lengths[r] + done for r in rows], device=device),
                                    sampling.repeat_window_tokens, sampling.repeat_max_period_tokens)
            with autocast(self.precision, device):
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=min(chunk, limit - done),
                    do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p, top_k=None, eos_token_id=self.eos, pad_token_id=self.pad,
                    stopping_criteria=StoppingCriteriaList([repeat] if repeat else []),
                    suppress_tokens=self.suppressed or None, output_logits=sampling.logprobs,
                    return_dict_in_generate=True, **images)
            images = {}  # in the cache now
            new = gen.sequences[:, ids.shape[1]:]
            done += new.shape[1]
            scores = None
            if sampling.logprobs:  # (B, T): log_softmax of each step's raw logits at the sampled token
                scores = self.model.compute_transition_scores(
                    gen.sequences, [step.float() for step in gen.logits], normalize_logits=True).tolist()
            stopped_at = repeat.stopped_at.tolist() if repeat else [-1] * len(rows)
            keep = []
            for b, r in enumerate(rows):
                row = new[b].tolist()
                end, reason = len(row), "length" if done >= limit else None
                if self.eos in row:
                    end, reason = row.index(self.eos) + 1, "stop"
                if 0 < stopped_at[b] <= end:  # after a row stops, generate pads it (pad may equal eos)
                    end, reason = stopped_at[b], "repeat"
                tokens[r] += row[:end]
                logprobs[r] += scores[b][:end] if scores else []
                reasons[r] = reason
                if reason is None:
                    keep.append(b)
            kept = torch.tensor(keep, dtype=torch.long, device=device)
            ids, mask = gen.sequences[kept], torch.cat([mask, torch.ones_like(new)], dim=1)[kept]
            if keep:
                cache.reorder_cache(kept)
            rows = [rows[b] for b in keep]
        return [(t, r, lp if sampling.logprobs else None) for t, r, lp in zip(tokens, reasons, logprobs)]
