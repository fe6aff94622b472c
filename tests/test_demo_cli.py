"""The CLI end to end at toy size, and its errors on bad input."""

import json
from pathlib import Path

import pytest
import torch

import mirrorl.demo
from mirrorl.cli import main
from mirrorl.models.loading import load_policy
from mirrorl.trainer.precision import bf16_supported

QUICK = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2", "task.heldout_size=8", "task.dev_size=4",
         "task.rl_prompts=40", "task.warmup_size=16", "sft.max_steps=6", "sft.eval_every=3", "sft.batch_size=8",
         "rl.iterations=2", "rl.prompts_per_iteration=4", "rl.samples_per_prompt=4", "rl.max_response_tokens=24",
         "rl.minibatches=2", "eval.max_response_tokens=24", "rl.eval_every=1", "rl.save_every=1"]
LONG2SHORT = ["demo.long2short=true", "long2short.prompts=4", "long2short.samples_per_prompt=4",
              "long2short.max_response_tokens=24", "dpo.steps=2", "dpo.batch_size=2", "long2short.short_sft_prompts=4",
              "long2short.short_sft_steps=2", "long2short.rl_iterations=1", "long2short.rl_max_response_tokens=8"]


def test_demo_quick_run_writes_every_output(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    greedy_calls, evaluate_folder = [], mirrorl.demo.evaluate_folder

    def spy(folder, problems, cfg, eval_cfg=None, **kwargs):  # which models the greedy stage decodes, and how
        greedy_calls.append((Path(folder).relative_to(out).as_posix(), eval_cfg.temperature))
        return evaluate_folder(folder, problems, cfg, eval_cfg, **kwargs)
    monkeypatch.setattr(mirrorl.demo, "evaluate_folder", spy)
    assert main(["demo", "--config", "configs/demo.yaml", "--out", str(out), *QUICK, *LONG2SHORT]) == 0
    for name in ("config.yaml", "summary.json", "report.md", "plots/reward.png", "plots/heldout_accuracy.png",
                 "plots/response_length.png", "plots/accuracy_vs_time.png", "data/heldout.jsonl",
                 "data/warmup_sft.jsonl", "base_model/model.safetensors", "sft/model/model.safetensors",
                 "rl/final/model.safetensors", "rl/checkpoints/latest", "rl/metrics.jsonl",
                 "sft_control/model/model.safetensors", "long2short/eval.json", "long2short/token_efficiency.png",
                 "long2short/merge/model.safetensors"):
        assert (out / name).exists(), name
    assert list((out / "rl" / "tb" / "rl").glob("events.out.tfevents.*"))
    summary = json.loads((out / "summary.json").read_text())
    for key in ("sft_accuracy", "rl_accuracy", "sft_continued_accuracy", "heldout_size", "mean_response_tokens",
                "wall_seconds", "sft_per_level", "rl_per_level"):
        assert summary[key] is not None, key
    assert summary["heldout_size"] == 8
    if summary["decoding"].startswith("sampled"):  # the demo recipe samples; greedy pass@1 is reported beside it
        assert set(summary["greedy_per_level"]) == {"sft", "rl", "sft_continued"}
        assert greedy_calls == [("sft/model", 0.0), ("rl/final", 0.0), ("sft_control/model", 0.0)]
        assert 0 <= summary["rl_greedy_accuracy"] <= 1
    base, _ = load_policy(out / "base_model")
    sft, _ = load_policy(out / "sft" / "model")
    control, _ = load_policy(out / "sft_control" / "model")
    assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), sft.state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(sft.state_dict().values(), control.state_dict().values()))
    assert summary["sft_continued_curve"][-1][2] == summary["sft_continued_accuracy"]
    # long2short ran from the RL run; its points are in the summary and the report
    l2s = json.loads((out / "long2short" / "eval.json").read_text())
    long2short = l2s["models"]
    assert set(summary["long2short"]) == set(long2short) >= {"long", "short", "merge", "rl"}
    assert summary["long2short"]["merge"]["accuracy"] == long2short["merge"]["accuracy"]
    # the recipe's merge weights were tried on dev (the long model first as weight 0); the kept one is among them
    assert [p["weight"] for p in l2s["merge_sweep"]][0] == 0.0 and len(l2s["merge_sweep"]) >= 2
    assert summary["long2short_merge_weight"] == l2s["merge_weight"] in [p["weight"] for p in l2s["merge_sweep"]]
    report = (out / "report.md").read_text()
    assert "## Long2short" in report and "| merge |" in report and "long2short/token_efficiency.png" in report
    assert f"weighs the short model {l2s['merge_weight']:g}" in report
    # a second run reuses every finished stage
    assert main(["demo", "--config", "configs/demo.yaml", "--out", str(out), *QUICK, *LONG2SHORT]) == 0


def test_rl_on_gsm8k_format(tmp_path, tiny_model_dir, capsys):
    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"
    if not data.exists():
        pytest.skip(f"{data} not found (public GSM8K test split; see README)")
    rows = data.read_text().splitlines()[:24]
    small = tmp_path / "gsm8k.jsonl"
    small.write_text("\n".join(rows) + "\n")
    assert main(["rl", "--model", str(tiny_model_dir), "--data", str(small), "--out", str(tmp_path / "run"),
                 "task.heldout_size=8", "rl.iterations=1", "rl.prompts_per_iteration=2", "rl.samples_per_prompt=2",
                 "rl.minibatches=1", "rl.max_response_tokens=8", "eval.max_response_tokens=8"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["stage"] == "rl" and records[-1]["step"] == 1 and "reward" in records[-1]
    expected = "bf16" if bf16_supported("cpu") else "fp32"  # the default run.precision is auto
    assert f"training in {expected} (run.precision=auto)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["rl", "--model", "/nonexistent/model"], "/nonexistent/model: not a model folder"),
    (["rl", "--model", "{model}", "--data", "{bad_jsonl}"], "bad.jsonl line 2"),
    (["rl", "--model", "{model}", "--data", "{empty_jsonl}"], "empty.jsonl"),
    (["rl", "--model", "{model}", "rl.tau=0"], "rl.tau must be > 0"),
    (["rl", "--resume", "{tmp}"], "not a run folder"),
    (["rl", "--model", "{model}", "--out", "{existing_run}"], "already holds an RL run"),
    (["sft", "--model", "{model}", "--sft-data", "{bad_sft}"], "field 'response'"),
])
def test_bad_input_exits_with_clear_error(tmp_path, tiny_model_dir, capsys, argv, needle):
    (tmp_path / "bad.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "no answer"}\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "bad_sft.jsonl").write_text('{"prompt": "1+1=?", "answer": "2"}\n')
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    subs = {"{model}": str(tiny_model_dir), "{bad_jsonl}": str(tmp_path / "bad.jsonl"),
            "{empty_jsonl}": str(tmp_path / "empty.jsonl"), "{tmp}": str(tmp_path), "{bad_sft}": str(tmp_path / "bad_sft.jsonl"),
            "{existing_run}": str(tmp_path / "run")}
    argv = [subs.get(a, a) for a in argv] + ["--out", str(tmp_path / "out")] * ("--resume" not in argv and "--out" not in argv)
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["rl", "--help"])
    text = capsys.readouterr().out
    for key in ("rl.tau", "rl.samples_per_prompt", "rl.reset_optimizer", "task.data", "eval.temperature", "--resume"):
        assert key in text


@pytest.mark.slow
def test_vision_demo_quick_run_reports_text_and_image_accuracy(tmp_path):
    out = tmp_path / "demo_vl"
    quick = [q for q in QUICK if not q.startswith("task.heldout_size")] + ["task.heldout_size=12"]
    assert main(["demo", "--config", "configs/demo_vl.yaml", "--out", str(out), *quick]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sft_per_task"]) == set(summary["rl_per_task"]) == {"count", "compare", "read", "read_text"}
    assert "read_text" in (out / "report.md").read_text()
    assert type(load_policy(out / "rl" / "final")[0]).__name__ == "LlavaForConditionalGeneration"
