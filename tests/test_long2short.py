"""Long2short: shortest rejection sampling, DPO pairs by the 1.5x rule, and DPO training on a tiny model."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mirrorl.config import load_config
from mirrorl.long2short.dpo import build_pairs, sequence_logprobs, train_dpo
from mirrorl.long2short.shortest import Sample, sample_groups, shortest_correct, shortest_rejection_sampling, write_rows
from mirrorl.models.loading import load_policy
from mirrorl.models.tiny import char_tokenizer
from mirrorl.rollout.engine import SamplingParams, Segment
from mirrorl.tasks.datasets import load_sft_examples
from mirrorl.tasks.problem import Problem


class FakeEngine:
    """Answers the i-th prompt of a generate call with the i-th scripted (text, finish_reason)."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script = tokenizer, script

    def generate(self, prompts, sampling):
        assert len(prompts) == len(self.script)
        eos = [self.tokenizer.eos_token_id]
        return [Segment(p, self.tokenizer(t, add_special_tokens=False)["input_ids"] + eos * (f == "stop"), f, 0)
                for p, (t, f) in zip(prompts, self.script)]


def contains_answer(problem, text):  # deterministic scorer: correct iff the gold answer appears
    return SimpleNamespace(correct=problem.answer in text)


PROBLEMS = [Problem("a", "1+1=?", "2"), Problem("b", "2+2=?", "4")]


def test_shortest_rejection_sampling_keeps_shortest_correct_or_nothing(tmp_path):
    tok = char_tokenizer()
    script = [("so 2", "stop"), ("x 2", "length"), ("it is 2", "stop"), ("3", "stop"),   # a: "x 2" was cut
              ("5", "stop"), ("no", "stop"), ("6", "stop"), ("7", "length")]             # b: none correct
    groups = sample_groups(FakeEngine(tok, script), tok, PROBLEMS, 4, SamplingParams(), scorer=contains_answer)
    assert [s.tokens for s in groups[0]] == [5, 3, 8, 2]  # responses + eos when finished
    assert [s.correct for s in groups[0]] == [True, False, True, False]
    assert shortest_correct(groups[0]) == Sample("so 2", 5, True)
    assert shortest_correct(groups[1]) is None
    rows = shortest_rejection_sampling(PROBLEMS, groups)
    assert rows == [{"prompt": "1+1=?", "response": "so 2", "id": "a", "tokens": 5}]
    assert load_sft_examples(write_rows(rows, tmp_path / "shortest.jsonl"))[0]["response"] == "so 2"


def test_dpo_pairs_follow_the_length_rule():
    group = [Sample("pos", 10, True), Sample("c14", 14, True), Sample("c15", 15, True), Sample("c16", 16, True),
             Sample("w8", 8, False), Sample("w12", 12, False), Sample("w30", 30, False), Sample("c10", 10, True)]
    pairs = build_pairs(PROBLEMS[0], group, length_ratio=1.5)
    assert {p["chosen"] for p in pairs} == {"pos"}
    # 1.4x and exactly 1.5x correct ones are kept out; 1.6x correct and longer incorrect ones are negatives
    assert [p["rejected"] for p in pairs] == ["c16", "w12", "w30"]
    assert pairs[0] == {"prompt": "1+1=?", "chosen": "pos", "rejected": "c16", "id": "a", "chosen_tokens": 10,
                        "rejected_tokens": 16}
    assert build_pairs(PROBLEMS[0], [Sample("w", 3, False)]) == []


def test_dpo_training_prefers_chosen_over_rejected(tiny_model_dir, tmp_path):
    cfg = load_config(None, ["dpo.steps=5", "dpo.lr=1e-2", "dpo.batch_size=2", "dpo.micro_batch_size=1",
                             "dpo.beta=0.5", "dpo.nll_weight=0", "run.precision=fp32"])
    model, tok = load_policy(tiny_model_dir)
    pairs = [{"prompt": "1+1=?\n", "chosen": "\\boxed{2}", "rejected": "1+1 is 2, check 2-1=1 \\boxed{2}"},
             {"prompt": "3+4=?\n", "chosen": "\\boxed{7}", "rejected": "3+4=8 \\boxed{8}"}]

    def margins():
        prompts = [tok(p["prompt"])["input_ids"] for p in pairs]
        enc = [[tok(p[k], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for p in pairs]
               for k in ("chosen", "rejected")]
        with torch.no_grad():
            return (sequence_logprobs(model, prompts, enc[0], tok.pad_token_id, "fp32")
                    - sequence_logprobs(model, prompts, enc[1], tok.pad_token_id, "fp32"))

    before = margins()
    info = train_dpo(model, tok, pairs, cfg, tmp_path)
    assert info["steps"] == 5 and info["pairs"] == 2
    assert torch.all(margins() > before)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["loss"] == pytest.approx(0.693147, abs=1e-4)  # policy == reference at step 1: log 2
    with pytest.raises(ValueError, match="no DPO pairs"):
        train_dpo(model, tok, [], cfg, tmp_path)
    # with the chosen-NLL term (the default weight 1) the first loss is log 2 plus the chosen per-token NLL
    cfg.dpo.nll_weight, cfg.dpo.steps = 1.0, 1
    first = train_dpo(model, tok, pairs[:1], cfg, tmp_path / "nll")
    record = json.loads((tmp_path / "nll" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["chosen_nll"] > 0 and first["final_loss"] == pytest.approx(0.693147 + record["chosen_nll"], abs=1e-4)


TINY_RUN = ["task.heldout_size=4", "task.dev_size=4", "task.rl_prompts=8", "task.warmup_size=4", "long2short.prompts=4",
            "long2short.samples_per_prompt=4", "long2short.max_response_tokens=64", "eval.max_response_tokens=8",
            "sft.max_steps=2", "sft.eval_every=1", "sft.batch_size=2", "dpo.steps=2", "dpo.batch_size=2",
            "long2short.short_sft_prompts=4", "long2short.short_sft_steps=2", "long2short.rl_iterations=1",
            "long2short.rl_max_response_tokens=8", "rl.prompts_per_iteration=2", "rl.samples_per_prompt=2"]


def test_run_long2short_builds_every_model_and_the_figure(tmp_path, tiny_model_dir):
    from mirrorl.long2short.run import run_long2short
    from mirrorl.models.tiny import create_tiny_model
    from mirrorl.tasks.datasets import build_datasets
    cfg = load_config(None, TINY_RUN)
    short = create_tiny_model(tmp_path / "short", hidden_size=32, num_layers=2, num_heads=2, seed=7)
    finished_is_correct = lambda problem, text: SimpleNamespace(correct=True)  # noqa: E731
    summary = run_long2short(cfg, build_datasets(cfg.task, 0), tiny_model_dir, short, tmp_path / "out",
                             scorer=finished_is_correct)
    assert list(summary["models"]) == ["long", "short", "merge", "shortest", "dpo", "rl"]
    assert 0 < summary["sft_rows"] <= 4 and summary["dpo_pairs"] > 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "shortest" / "shortest.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (tmp_path / "out" / "dpo" / "pairs.jsonl").read_text().splitlines()]
    assert all(p["rejected_tokens"] > p["chosen_tokens"] for p in pairs)
    assert {p["chosen"] for p in pairs} <= {r["response"] for r in rows}
    for name in ("merge/model.safetensors", "shortest/model/model.safetensors", "dpo/model/model.safetensors",
                 "eval.json", "token_efficiency.png", "token_efficiency.md"):
        assert (tmp_path / "out" / name).is_file(), name
    for stage in ("shortest", "dpo", "rl"):
        assert (tmp_path / "out" / stage / "metrics.jsonl").is_file(), stage
    l2s_rl = load_config(tmp_path / "out" / "rl" / "config.yaml")
    assert l2s_rl.rl.length_penalty_weight == cfg.long2short.rl_length_penalty_weight > 0
    assert l2s_rl.rl.length_penalty_warmup == 0 and l2s_rl.rl.max_response_tokens == 8
    assert l2s_rl.model.path == str(tiny_model_dir)


def test_merge_weight_is_chosen_on_dev(tmp_path, tiny_model_dir, monkeypatch):
    from safetensors.torch import load_file

    import mirrorl.long2short.run as l2s_run
    from mirrorl.models.tiny import create_tiny_model
    from mirrorl.tasks.datasets import build_datasets
    short = create_tiny_model(tmp_path / "short", hidden_size=32, num_layers=2, num_heads=2, seed=7)
    cfg = load_config(None, TINY_RUN + ["long2short.merge_weights=[0.6,0.2,0.4]"])
    data = build_datasets(cfg.task, 0)
    evaluated = []

    def fake_evaluate(folder, problems, cfg, eval_cfg=None):  # dev accuracy by call: long, then weights ascending
        assert problems == data.dev
        evaluated.append(folder)
        return SimpleNamespace(accuracy=accuracies[len(evaluated) - 1], mean_response_tokens=10.0)

    def merged_weight(folder):  # recover w from one merged tensor: (1 - w) * A + w * B
        name = "model.embed_tokens.weight"
        a, b, m = (load_file(Path(f) / "model.safetensors")[name] for f in (tiny_model_dir, short, folder))
        return ((m - a).flatten() @ (b - a).flatten() / (b - a).flatten().square().sum()).item()

    monkeypatch.setattr(l2s_run, "evaluate_folder", fake_evaluate)
    accuracies = [0.5, 0.3, 0.5, 0.9]  # 0.2 falls short of the long model, 0.4 reaches it: 0.6 is never tried
    folder, weight, sweep = l2s_run.merge_on_dev(cfg, data, tiny_model_dir, short, tmp_path / "merge")
    assert [p["weight"] for p in sweep] == [0.0, 0.2, 0.4] and len(evaluated) == 3 and weight == 0.4
    assert merged_weight(folder) == pytest.approx(0.4, abs=1e-3)

    evaluated.clear()
    accuracies = [0.8, 0.3, 0.6, 0.5]  # none reaches 0.8: the most accurate (0.4) is written back
    folder, weight, sweep = l2s_run.merge_on_dev(cfg, data, tiny_model_dir, short, tmp_path / "merge2")
    assert [p["dev_accuracy"] for p in sweep] == [0.8, 0.3, 0.6, 0.5] and weight == 0.4
    assert merged_weight(folder) == pytest.approx(0.4, abs=1e-3)

    cfg.long2short.merge_weights = [0.5]  # one weight: the report's plain average, no dev evaluation
    evaluated.clear()
    folder, weight, sweep = l2s_run.merge_on_dev(cfg, data, tiny_model_dir, short, tmp_path / "merge3")
    assert sweep == [] and evaluated == [] and merged_weight(folder) == pytest.approx(0.5, abs=1e-3)


def _rl_run(folder, evals, kept, model_dir):
    """An RL run folder with held-out evaluations {step: (accuracy, tokens)} and checkpoints at `kept` steps."""
    import shutil
    lines = [json.dumps({"stage": "rl", "step": step, "heldout/accuracy": acc, "heldout/mean_response_tokens": tokens})
             for step, (acc, tokens) in evals.items()]
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for step in kept:
        shutil.copytree(model_dir, folder / "checkpoints" / f"iter_{step:06d}")
    shutil.copytree(model_dir, folder / "final")


def test_long_checkpoint_is_the_shortest_of_those_near_the_best_accuracy(tmp_path, tiny_model_dir):
    from mirrorl.long2short.run import choose_long_checkpoint
    evals = {0: (0.40, 121.0), 8: (0.60, 90.0), 16: (0.715, 110.0), 24: (0.72, 118.0)}
    _rl_run(tmp_path, evals, kept=(16, 24), model_dir=tiny_model_dir)  # iteration 8 was pruned
    assert choose_long_checkpoint(tmp_path, 0.01) == tmp_path / "checkpoints" / "iter_000016"
    assert choose_long_checkpoint(tmp_path, 0.0) == tmp_path / "final"  # the last iteration's weights
    with pytest.raises(FileNotFoundError, match="no RL checkpoint"):
        choose_long_checkpoint(tmp_path / "missing", 0.01)


def test_short_cot_model_is_trained_on_verified_short_traces(tmp_path, tiny_model_dir):
    from mirrorl.long2short.run import train_short_cot
    from mirrorl.rewards import score
    from mirrorl.tasks.datasets import Datasets, build_datasets
    cfg = load_config(None, TINY_RUN)
    data = build_datasets(cfg.task, 0)
    folder = train_short_cot(cfg, data, tiny_model_dir, tmp_path / "short")
    rows = load_sft_examples(tmp_path / "short" / "short.jsonl")
    by_prompt = {p.prompt: p for p in data.rl}
    assert len(rows) == 4 and all(score(by_prompt[r["prompt"]], r["response"]).correct for r in rows)
    assert all("check" not in r["response"] and r["response"].count("\n") == by_prompt[r["prompt"]].level + 1
               for r in rows)  # one line per step (level + 1 steps) and the answer line
    assert (folder / "model.safetensors").is_file() and (tmp_path / "short" / "metrics.jsonl").is_file()
    text_only = Datasets(rl=[Problem("q", "What is 2+2?", "4")], heldout=data.heldout, dev=data.dev, warmup=[])
    with pytest.raises(ValueError, match="--short-model"):
        train_short_cot(cfg, text_only, tiny_model_dir, tmp_path / "none")


def test_long2short_command(tmp_path, tiny_model_dir, capsys):
    from mirrorl.cli import main
    out = tmp_path / "l2s"
    assert main(["long2short", "--model", str(tiny_model_dir), "--short-model", str(tiny_model_dir), "--out", str(out),
                 *TINY_RUN, "long2short.max_response_tokens=8"]) == 0
    assert set(json.loads((out / "eval.json").read_text())["models"]) >= {"long", "short", "merge"}
    # a demo run folder: saved config and prompt sets, rl/final and sft/model
    import shutil
    from mirrorl.config import save_config
    from mirrorl.tasks.datasets import build_datasets, save_datasets
    run = tmp_path / "run"
    cfg = load_config(None, TINY_RUN)
    save_config(cfg, run / "config.yaml")
    save_datasets(build_datasets(cfg.task, 0), run / "data")
    _rl_run(run / "rl", {0: (0.1, 9.0), 2: (0.1, 8.0)}, kept=(2,), model_dir=tiny_model_dir)
    shutil.copytree(tiny_model_dir, run / "sft" / "model")
    assert main(["long2short", "--run", str(run), "long2short.max_response_tokens=8"]) == 0
    result = json.loads((run / "long2short" / "eval.json").read_text())
    assert result["heldout_size"] == 4 and result["models"]["long"]["path"] == str(run / "rl" / "final")
    assert result["models"]["short"]["path"] == str(run / "long2short" / "short" / "model")
    assert main(["long2short", "--model", str(tiny_model_dir), "--out", str(out)]) == 2
    assert "--short-model" in capsys.readouterr().err
    assert main(["long2short", "--run", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
