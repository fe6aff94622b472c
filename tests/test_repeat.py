"""Repeat detection: the period test on token tails, and loops stopped inside HF `generate` as "repeat"."""

import doctest
import random
from functools import partial

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from mirrorl.models.loading import load_policy
from mirrorl.rollout import repeat
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.rollout.repeat import repeating_tail
from mirrorl.tasks.arithmetic import cot_trace, generate_arithmetic


def test_doctests():
    assert doctest.testmod(repeat).failed == 0


def _tail(tokens, window=16, max_period=4):
    return repeating_tail(torch.tensor([tokens]), window, max_period).item()


def test_loops_are_found_by_period_and_coverage():
    assert _tail([9] * 16, max_period=1)                      # one token repeated
    assert _tail([7, 3] + [1, 2, 3, 4] * 4)                   # period 4 over the whole window
    assert not _tail([7, 3] + [1, 2, 3, 4] * 4, max_period=3)  # period longer than allowed
    assert not _tail([1, 2, 3, 4] * 4, window=17)             # window longer than the sequence
    assert not _tail([5] + [1, 2, 3, 4] * 3 + [1, 2, 3])      # the loop covers only 15 of 16 tokens
    rows = torch.tensor([[1, 2] * 8, list(range(16))])
    assert repeating_tail(rows, 16, 4).tolist() == [True, False]
    with pytest.raises(ValueError):
        repeating_tail(rows, 16, 9)


def test_normal_reasoning_text_is_not_a_loop(tiny_model_dir):
    _, tok = load_policy(tiny_model_dir)
    rng = random.Random(0)
    for problem in generate_arithmetic(40, seed=1):
        ids = tok(problem.prompt + cot_trace(problem, rng), add_special_tokens=False)["input_ids"]
        for end in range(24, len(ids) + 1):
            assert not _tail(ids[:end], window=24, max_period=12), tok.decode(ids[:end])


class Script(LogitsProcessor):
    """Forces `generate` to emit scripts[i][step] (then end-of-sequence) in the row whose input (its first
    `width` tokens) is inputs[i]: greedy decoding of a fixed text, also while finished rows leave the batch."""

    def __init__(self, scripts, inputs, width, eos):
        self.scripts = {tuple(x): s for x, s in zip(inputs, scripts)}
        self.width, self.eos = width, eos

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.width
        forced = torch.full_like(scores, -float("inf"))
        for row, ids in enumerate(input_ids[:, :self.width].tolist()):
            script = self.scripts[tuple(ids)]
            forced[row, script[step] if step < len(script) else self.eos] = 0.0
        return forced


def _engine(tiny_model_dir, monkeypatch, scripts, inputs, chunk_tokens):
    model, tok = load_policy(tiny_model_dir)
    monkeypatch.setattr(model, "generate", partial(model.generate, logits_processor=LogitsProcessorList(
        [Script(scripts, inputs, len(inputs[0]), tok.eos_token_id)])))
    return HFEngine(model, tok.eos_token_id, tok.pad_token_id, precision="fp32", chunk_tokens=chunk_tokens), tok


@pytest.mark.parametrize("chunk_tokens", [0, 5])  # one generate call per batch; 5 tokens per call
def test_engine_stops_a_looping_row_as_repeat_and_lets_the_others_run(tiny_model_dir, monkeypatch, chunk_tokens):
    _, tok = load_policy(tiny_model_dir)
    enc = partial(tok, add_special_tokens=False)
    prompts = [enc(f"{d}+{d}=?\n")["input_ids"] for d in (1, 2, 3)]
    problem = generate_arithmetic(1, seed=3, levels=(4,))[0]
    normal = enc(cot_trace(problem, random.Random(0)))["input_ids"]
    late_loop = enc("let me see: " + "12+3=15\n" * 40)["input_ids"]
    scripts = [enc("ab" * 200)["input_ids"], normal, late_loop]
    engine, _ = _engine(tiny_model_dir, monkeypatch, scripts, prompts, chunk_tokens)
    budget = len(normal) + 1
    assert budget < min(len(scripts[0]), len(late_loop))
    looping = SamplingParams(temperature=0, max_new_tokens=budget, repeat_window_tokens=16, repeat_max_period_tokens=8)
    first, second, third = engine.generate(prompts, looping)
    assert (first.finish_reason, first.token_ids) == ("repeat", scripts[0][:16])  # stopped once the window filled
    assert (second.finish_reason, second.token_ids) == ("stop", normal + [tok.eos_token_id])
    assert third.finish_reason == "repeat"
    # "let me see: " is 12 tokens; the period-8 loop fills the 16-token window 16 tokens into the loop
    assert third.token_ids == late_loop[:12 + 16]
    off = SamplingParams(temperature=0, max_new_tokens=budget)
    assert [s.finish_reason for s in engine.generate(prompts, off)] == ["length", "stop", "length"]


def test_prefix_counts_as_response_but_the_prompt_does_not(tiny_model_dir, monkeypatch):
    _, tok = load_policy(tiny_model_dir)
    loop = tok("ab" * 30, add_special_tokens=False)["input_ids"]
    text = tok("7-5=2 check 2+5=7 ok\n", add_special_tokens=False)["input_ids"]
    prompts = [loop[:20], loop[:20]]         # a loop of 20 tokens: it must not count
    prefixes = [loop[20:34], loop[21:35]]    # 14 loop tokens generated earlier (shifted by one: the rows differ)
    scripts = [loop[34:], text]              # the first row keeps looping, the second writes text
    engine, _ = _engine(tiny_model_dir, monkeypatch, scripts, [p + q for p, q in zip(prompts, prefixes)], 5)
    params = SamplingParams(temperature=0, max_new_tokens=40, repeat_window_tokens=16, repeat_max_period_tokens=8)
    cont, fresh = engine.generate(prompts, params, prefixes=prefixes)
    assert (cont.finish_reason, cont.token_ids) == ("repeat", loop[34:36])  # 14 + 2 = 16 response tokens
    assert cont.prompt_ids == prompts[0]
    assert fresh.finish_reason == "stop" and fresh.token_ids == text + [tok.eos_token_id]


def test_first_loop_end_is_where_per_token_stopping_stops():
    """Cutting a finished response post hoc (vLLM) keeps what stopping after every token (HF) keeps."""
    rng = random.Random(0)
    found = 0
    for _ in range(300):
        response = [rng.randrange(2) for _ in range(rng.randrange(1, 40))]  # 2 symbols: loops are common
        start = rng.randrange(len(response))
        per_token = next((n for n in range(start + 1, len(response) + 1)
                          if repeating_tail(torch.tensor([response[:n]]), 8, 3).item()), None)
        assert repeat.first_loop_end(response, start, 8, 3) == per_token
        found += per_token is not None
    assert 30 < found < 270  # both outcomes were exercised
    with pytest.raises(ValueError):
        repeat.first_loop_end([1, 2], 0, 8, 5)
