"""End-to-end RL throughput and time to accuracy: mirrorl against TRL's `GRPOTrainer`, side by side.

    bash bench/setup_trl.sh                     # once: bench/.venv-trl with mirrorl + trl (benchmark only)
    bench/.venv-trl/bin/python bench/rl_vs_trl.py runs/demo [--iterations 5] [--rounds 2]
    bench/.venv-trl/bin/python bench/rl_vs_trl.py runs/demo --time-to-accuracy 0.52 [--max-seconds 900]
    make install-vllm VENV=bench/.venv-trl      # once, for --engine vllm (mirrorl's vLLM rollout engine)

Workload (the same for both systems): the warm-up model `RUN_DIR/sft/model` and RL prompts
`RUN_DIR/data/rl_prompts.jsonl` with the learning rate, gradient clipping and seed of `--config`
(configs/demo.yaml); every iteration 32 prompts x 8 responses at temperature 1 and top-p 1, at
most 128 response tokens, one optimizer step (the demo's optimizer, AdamW, its learning rate, weight decay
and gradient clipping), our
rule-based verifier as the reward, the same torch thread count. mirrorl runs its k1.5 loss with its
defaults (bf16 training, fp32 generation); TRL runs `GRPOTrainer` with beta 0 (no reference model, like
k1.5), `use_vllm=False`, no gradient checkpointing (3.2M parameters fit easily; checkpointing only
recomputes) and `--trl-precision` (bf16 autocast by default: measured faster than fp32 for TRL, whose
generation runs under the same setting); both load the model with the attention kernel mirrorl's
`load_policy` picks (eager on CPU). Each system runs in a fresh subprocess, alternating A B A B over
`--rounds`, so machine noise hits both alike; the first iteration of every run is a warm-up and is not
counted. Prints completions/s, generated tokens/s, seconds per phase and the ratio, and writes
`RUN_DIR/bench_rl_vs_trl/throughput.json`.

With `--time-to-accuracy TARGET` each system instead trains until greedy held-out accuracy (the run's
held-out prompts, checked every `--eval-every` iterations, evaluation time not counted) reaches TARGET or
`--max-seconds` of training pass; prints the seconds each needed, the seconds each needed to reach the
highest accuracy that every run reached (a ratio even when TARGET is out of reach), and writes
`time_to_accuracy.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS, K, MAX_TOKENS = 32, 8, 128


def _common_overrides(args) -> list[str]:
    return [f"run.threads={args.threads}", f"rl.prompts_per_iteration={PROMPTS}", f"rl.samples_per_prompt={K}",
            f"rl.max_response_tokens={MAX_TOKENS}", "rl.minibatches=1", "rl.epochs=1", "rl.temperature=1.0",
            "rl.top_p=1.0", f"eval.max_response_tokens={MAX_TOKENS}"]


def run_mirrorl(args, out: Path) -> dict:
    """One mirrorl RL run through `train_rl`; returns per-iteration phase seconds (and held-out curve)."""
    from mirrorl.config import load_config
    from mirrorl.rl import train_rl
    from mirrorl.tasks.datasets import load_run_datasets
    from mirrorl.trainer.precision import set_threads

    iterations = args.iterations
    eval_every = args.eval_every if args.time_to_accuracy else 10 ** 6
    cfg = load_config(args.config, _common_overrides(args) + [
        f"model.path={args.run_dir / 'sft' / 'model'}", f"rl.iterations={iterations}", f"rollout.engine={args.engine}",
        f"rl.eval_every={eval_every}", f"rl.save_every={10 ** 6}", f"rl.max_seconds={args.max_seconds}"])
    set_threads(cfg.run.threads)
    data = load_run_datasets(args.run_dir / "data")
    if not args.time_to_accuracy:
        data.heldout = data.heldout[:8]  # evaluation is not timed; keep it short
    train_rl(cfg, data, out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["step"] > 0]
    return {"iterations": [{"rollout": r["time/rollout_s"], "reward": r["time/reward_s"],
                            "logprobs_update": r["time/update_s"],
                            "other": r["time/sample_s"] + r["time/weight_sync_s"],
                            "tokens": r["rollout_tokens"], "completions": PROMPTS * K} for r in steps],
            "curve": [(r["train_seconds"], r["heldout/accuracy"]) for r in records if "heldout/accuracy" in r]}


def run_trl(args, out: Path) -> dict:
    """One TRL `GRPOTrainer` run on the same model, prompts, reward and budget; same return as `run_mirrorl`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mirrorl.config import load_config
    from mirrorl.eval.evaluate import evaluate
    from mirrorl.metrics import PhaseTimer
    from mirrorl.models.loading import attention_kernel
    from mirrorl.rewards import score
    from mirrorl.rollout.hf import HFEngine
    from mirrorl.tasks.datasets import load_run_datasets
    from mirrorl.trainer.precision import set_threads

    cfg = load_config(args.config, _common_overrides(args))
    set_threads(cfg.run.threads)
    data = load_run_datasets(args.run_dir / "data")
    torch.manual_seed(cfg.run.seed)
    model_dir = args.run_dir / "sft" / "model"
    attn = attention_kernel("auto", "cpu")  # the kernel mirrorl loads with (eager on CPU), for identical work
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    problems = data.rl
    dataset = Dataset.from_list([{"prompt": p.prompt, "index": i} for i, p in enumerate(problems)])

    def verifier_reward(prompts, completions, index, **_):
        return [float(score(problems[i], text).correct) for i, text in zip(index, completions)]

    timer = PhaseTimer()  # the same phase clock as mirrorl's loop

    class Timed(GRPOTrainer):
        def _generate_single_turn(self, *a, **kw):
            with timer("rollout"):
                return super()._generate_single_turn(*a, **kw)

        def _calculate_rewards(self, *a, **kw):
            with timer("reward"):
                return super()._calculate_rewards(*a, **kw)

    iterations, curve, train_seconds = [], [], [0.0]
    # Held-out evaluation runs on a copy: the trainer wraps the policy's forward in bf16 autocast, which the
    # engine's fp32 KV cache cannot take.
    eval_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    engine = HFEngine.from_config(eval_model, tokenizer, cfg)

    def heldout_accuracy() -> float:
        eval_model.load_state_dict(model.state_dict())
        return evaluate(engine, tokenizer, data.heldout, cfg.eval, cfg.model.chat_template).accuracy

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            timer.pop()
            self.start = time.perf_counter()

        def on_step_end(self, _args, state, control, **__):
            seconds = time.perf_counter() - self.start
            phases = {"rollout": timer.seconds.get("rollout", 0.0), "reward": timer.seconds.get("reward", 0.0)}
            lengths = trainer._metrics["train"]["completions/mean_length"]
            iterations.append({"rollout": phases["rollout"], "reward": phases["reward"],
                               "logprobs_update": seconds - phases["rollout"] - phases["reward"], "other": 0.0,
                               "tokens": lengths[-1] * PROMPTS * K if lengths else 0.0,
                               "completions": PROMPTS * K})
            train_seconds[0] += seconds
            if args.time_to_accuracy and state.global_step % args.eval_every == 0:
                curve.append((train_seconds[0], heldout_accuracy()))
                control.should_training_stop = curve[-1][1] >= args.time_to_accuracy
            if train_seconds[0] >= args.max_seconds:
                control.should_training_stop = True

    config = GRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=args.trl_precision == "bf16", gradient_checkpointing=False,
        per_device_train_batch_size=cfg.rl.micro_batch_size, gradient_accumulation_steps=PROMPTS * K // cfg.rl.micro_batch_size,
        num_generations=K, max_completion_length=MAX_TOKENS, temperature=1.0, top_p=1.0, beta=0.0,
        num_iterations=1, learning_rate=cfg.rl.lr, optim={"adamw": "adamw_torch", "sgd": "sgd"}[cfg.rl.optimizer],
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=cfg.rl.weight_decay, max_grad_norm=cfg.rl.grad_clip,
        max_steps=args.iterations, logging_steps=1,
        save_strategy="no", report_to="none", seed=cfg.run.seed, disable_tqdm=True, use_vllm=False,
        dataloader_num_workers=0)
    trainer = Timed(model=model, processing_class=tokenizer, reward_funcs=verifier_reward, args=config,
                    train_dataset=dataset, callbacks=[Clock()])
    if args.time_to_accuracy:
        curve.append((0.0, heldout_accuracy()))
    trainer.train()
    return {"iterations": iterations, "curve": curve}


def _summary(runs: list[dict]) -> dict:
    """Medians over runs of per-run totals (first iteration of each run dropped as warm-up)."""
    per_run = []
    for run in runs:
        its = run["iterations"][1:]
        seconds = sum(sum(v for k, v in it.items() if k not in ("tokens", "completions")) for it in its)
        per_run.append({"completions_per_s": sum(it["completions"] for it in its) / seconds,
                        "tokens_per_s": sum(it["tokens"] for it in its) / seconds,
                        "s_per_iteration": seconds / len(its),
                        **{f"{p}_s": sum(it[p] for it in its) / len(its)
                           for p in ("rollout", "reward", "logprobs_update", "other")}})
    return {key: statistics.median(r[key] for r in per_run) for key in per_run[0]}


def _worker(args, system: str) -> dict:
    cmd = [sys.executable, __file__, str(args.run_dir), "--worker", system, "--config", str(args.config),
           "--engine", args.engine, "--iterations", str(args.iterations),
           "--threads", str(args.threads), "--trl-precision", args.trl_precision, "--eval-every",
           str(args.eval_every), "--max-seconds", str(args.max_seconds)]
    if args.time_to_accuracy:
        cmd += ["--time-to-accuracy", str(args.time_to_accuracy)]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        subprocess.run(cmd + ["--result", str(result)], check=True)
        return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished demo run (its sft/model and data/)")
    parser.add_argument("--config", type=Path, default=Path(__file__).parent.parent / "configs" / "demo.yaml",
                        help="recipe whose rl.* learning rate, gradient clipping and seed both systems use")
    parser.add_argument("--iterations", type=int, default=5, help="iterations per run (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds; figures are medians over rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both systems (0 = one per core)")
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                        help="mirrorl's rollout engine (vllm needs `make install-vllm` in the same environment as trl)")
    parser.add_argument("--trl-precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--time-to-accuracy", type=float, default=0.0, metavar="TARGET",
                        help="measure training seconds until greedy held-out accuracy >= TARGET")
    parser.add_argument("--eval-every", type=int, default=4, help="iterations between held-out evaluations")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="training seconds cap per run")
    parser.add_argument("--worker", choices=["mirrorl", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import transformers
    transformers.utils.logging.disable_progress_bar()
    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            result = (run_mirrorl if args.worker == "mirrorl" else run_trl)(args, Path(tmp) / "run")
        args.result.write_text(json.dumps(result))
        return
    if args.time_to_accuracy:
        args.iterations = 10 ** 4  # bounded by --max-seconds and the target
    out_dir = args.run_dir / "bench_rl_vs_trl"
    out_dir.mkdir(exist_ok=True)
    runs = {"mirrorl": [], "trl": []}
    for round_ in range(args.rounds):
        for system in runs:
            print(f"[rl_vs_trl] round {round_ + 1}/{args.rounds}: {system}", flush=True)
            runs[system].append(_worker(args, system))
    if args.time_to_accuracy:
        report_time_to_accuracy(args, runs, out_dir)
    else:
        report_throughput(args, runs, out_dir)


def report_throughput(args, runs: dict, out_dir: Path) -> None:
    table = {system: _summary(r) for system, r in runs.items()}
    ratio = {key: table["mirrorl"][key] / table["trl"][key] for key in ("completions_per_s", "tokens_per_s")}
    print(f"\n{PROMPTS} prompts x {K} responses, <= {MAX_TOKENS} tokens, {args.iterations - 1} timed iterations x "
          f"{args.rounds} rounds (medians), threads={args.threads or 'one per core'}, mirrorl engine {args.engine}, "
          f"TRL {args.trl_precision}")
    cols = ["completions_per_s", "tokens_per_s", "s_per_iteration", "rollout_s", "reward_s", "logprobs_update_s",
            "other_s"]
    print(f"{'system':>8} " + " ".join(f"{c:>17}" for c in cols))
    for system, row in table.items():
        print(f"{system:>8} " + " ".join(f"{row[c]:>17.2f}" for c in cols))
    print(f"mirrorl / TRL: completions/s {ratio['completions_per_s']:.2f}x, tokens/s {ratio['tokens_per_s']:.2f}x")
    (out_dir / "throughput.json").write_text(json.dumps({"table": table, "ratio": ratio, "runs": runs}, indent=2))


def _seconds_to(curve: list, target: float) -> float | None:
    return next((seconds for seconds, accuracy in curve if accuracy >= target), None)


def report_time_to_accuracy(args, runs: dict, out_dir: Path) -> None:
    """Seconds to TARGET per run, and, so that a target neither reached still gives a ratio, seconds to the
    highest accuracy that every run reached (medians over rounds)."""
    common = min(max(accuracy for _, accuracy in r["curve"]) for rs in runs.values() for r in rs)
    seconds = {system: [_seconds_to(r["curve"], args.time_to_accuracy) for r in rs] for system, rs in runs.items()}
    to_common = {system: statistics.median(_seconds_to(r["curve"], common) for r in rs) for system, rs in runs.items()}
    for system, rs in runs.items():
        print(f"{system:>8}: seconds to held-out accuracy {args.time_to_accuracy}: {seconds[system]}; "
              f"to {common:.4f} (the highest every run reached): {to_common[system]:.0f}")
        for r in rs:
            print(f"{'':>10}curve (training seconds, accuracy): "
                  + ", ".join(f"({s:.0f}, {a:.3f})" for s, a in r["curve"]))
    print(f"TRL / mirrorl seconds to {common:.4f}: {to_common['trl'] / max(to_common['mirrorl'], 1e-9):.2f}x")
    (out_dir / "time_to_accuracy.json").write_text(json.dumps(
        {"target": args.time_to_accuracy, "seconds": seconds, "common_target": common,
         "seconds_to_common_target": to_common, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
