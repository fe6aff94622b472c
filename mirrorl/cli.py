"""The `mirrorl` command: demo, sft, rl, eval, merge, long2short, curate, tiny-model, verify and sandbox.

Every command takes `--config FILE.yaml` plus `section.key=value` overrides; its --help lists every
option with its default. Shortcuts such as `--model DIR` and `--data FILE` set the matching keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirrorl.config import Config, ConfigError, describe, load_config

COMMANDS = {
    "demo": ("Run the CPU demo end to end: tiny model -> warm-up SFT -> k1.5 RL -> control -> report.",
             ("run", "model", "task", "sft", "rl", "rollout", "eval", "demo")),
    "sft": ("Supervised fine-tuning (long-CoT warm-up) with dev-set early stopping.",
            ("run", "model", "task", "sft", "eval")),
    "rl": ("RL with the k1.5 online mirror-descent loss; --resume RUN_DIR continues a stopped run.",
           ("run", "model", "task", "rl", "rollout", "eval", "judge", "distributed")),
    "eval": ("Held-out accuracy (pass@1), accuracy per level and mean response tokens of one or more models.",
             ("run", "model", "task", "eval")),
    "merge": ("Average two checkpoints of one architecture: OUT = (1 - weight) * A + weight * B (report 2.4).",
              ("run",)),
    "long2short": ("From a long-CoT model: merge with a short-CoT model, shortest rejection sampling + SFT, DPO and "
                   "long2short RL, then accuracy against tokens for all of them on the same held-out prompts "
                   "(report 2.4).",
                   ("run", "model", "task", "sft", "eval", "long2short", "dpo")),
    "curate": ("Curate an RL prompt set (report 2.1): drop guessable and uncheckable question types, measure each "
               "prompt's pass rate over curate.samples samples, drop too easy and answer-only-guessable prompts, tag "
               "the rest; writes curated.jsonl and report.md/json/png to --out (resumable).",
               ("run", "model", "task", "eval", "curate")),
    "validate-tests": ("Validate code test cases (report 2.3.5): run every reference solution on every candidate input "
                       "in the sandbox; keep tests most solutions agree on and problems most solutions pass.",
                       ("validate",)),
    "tiny-model": ("Create the demo's tiny Llama model and character tokenizer in --out (--vision: the tiny LLaVA "
                   "with its processor).", ("run", "model")),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirrorl", description="RL for reasoning LLMs after the Kimi k1.5 report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, sections) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="options (set in --config YAML or as section.key=value):\n" + describe(sections))
        if name == "validate-tests":
            p.add_argument("input", metavar="IN.jsonl", help="rows {id, prompt, solutions, inputs, mode, setup} "
                           "(see mirrorl/curation/code_tests.py)")
            p.add_argument("--server", metavar="URL", help="a running sandbox service (default: start one on loopback)")
            p.add_argument("--unsafe", action="store_true",
                           help="let the local service start below the minimum isolation")
        if name == "merge":
            p.add_argument("model_a", metavar="A", help="first model folder (its config and tokenizer are copied)")
            p.add_argument("model_b", metavar="B", help="second model folder, same architecture")
            p.add_argument("--weight", type=float, default=0.5, help="weight of B in [0, 1] (default 0.5)")
        p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
        p.add_argument("--config", help="YAML recipe (see configs/); overrides apply on top")
        p.add_argument("--out", help="run folder (sets run.out_dir)")
        if name in ("sft", "rl", "eval", "long2short", "curate"):
            p.add_argument("--data", help="jsonl of prompts (GSM8K, MATH, Countdown or mirrorl format; sets task.data)")
        if name in ("sft", "rl", "long2short", "curate"):
            p.add_argument("--model", help="Hugging Face model folder to start from (sets model.path)")
        if name == "long2short":
            p.add_argument("--short-model", help="the short-CoT merge partner, same architecture (default with "
                           "--run: RUN_DIR/sft/model fine-tuned on short traces, in OUT/short)")
            p.add_argument("--run", metavar="RUN_DIR", help="a demo run folder: its saved config and prompt sets, and "
                           "the long model chosen among its RL checkpoints (held-out accuracy within "
                           "long2short.checkpoint_tolerance of the best, then fewest tokens) unless --model; "
                           "output in RUN_DIR/long2short (unless --out)")
        if name == "tiny-model":
            p.add_argument("--vision", action="store_true",
                           help="a tiny LLaVA: CLIP vision tower + the tiny Llama, with its processor")
        if name == "sft":
            p.add_argument("--sft-data", help="jsonl with prompt/response rows (sets sft.data)")
        if name == "eval":
            p.add_argument("--model", nargs="+", help="one or more model folders to evaluate")
        if name == "curate":
            p.add_argument("--limit", type=int, help="curate only the first N prompts (default: all; without --data "
                           "the generated RL pool of task.rl_prompts)")
        if name == "rl":
            p.add_argument("--resume", metavar="RUN_DIR",
                           help="continue a stopped run from its last checkpoint, with its saved config")
    verify = sub.add_parser("verify", help="Grade a jsonl of model outputs against gold answers with the math verifier.",
                            description="Grade a jsonl of model outputs with the math verifier. Rows have `gold` and "
                            "either `response` (a whole output; its final answer is extracted) or `answer` (compared "
                            "as given); output rows add `equal`, `reason` and `extracted`. A summary line ends it.")
    verify.add_argument("input", metavar="IN.jsonl")
    verify.add_argument("--out", metavar="OUT.jsonl", help="write the judged rows here (default: standard output)")
    verify.add_argument("--lenient", action="store_true", help="grade outputs that do not box their answers as "
                        "math-verify-based harnesses do: the last expression of the text, boxes on one line joined, "
                        "decimal commas (never used for RL rewards)")
    _sandbox_parser(sub)
    return parser


def _sandbox_parser(sub) -> None:
    text = "The code-execution sandbox: serve it over HTTP, or judge a jsonl file of submissions."
    sandbox = sub.add_parser("sandbox", help=text, description=text)
    actions = sandbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="run the sandbox service (POST /run, GET /health, /openapi.json)",
                               description="Run the sandbox service. It probes the isolation layers at start-up, "
                                           "prints them, and refuses to start below the minimum unless --unsafe.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument("--workers", type=int, help="programs run at once (default: one per CPU core)")
    serve.add_argument("--python", help="Python for submissions (default: /usr/bin/python3)")
    serve.add_argument("--unsafe", action="store_true",
                       help="start even when isolation layers are missing (untrusted code can then reach the machine)")
    check = actions.add_parser("check", help="judge every row (code + tests) of a jsonl file",
                               description="Judge every row of IN.jsonl: rows with `code` and `tests` (strings of "
                                           "Python run after the code, or {\"stdin\", \"expected_stdout\"} "
                                           "objects). Each output row adds verdict, passed, reward, message and "
                                           "test_results; a summary line ends the run.")
    check.add_argument("input", metavar="IN.jsonl")
    check.add_argument("--server", metavar="URL", help="a running service (default: start one on loopback)")
    check.add_argument("--out", metavar="OUT.jsonl", help="where to write the judged rows (default: stdout)")
    check.add_argument("--concurrency", type=int, default=8, help="requests in flight (default: 8)")
    check.add_argument("--unsafe", action="store_true", help="let the local service start below the minimum isolation")


def _load(args) -> Config:
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"run.out_dir={args.out}")
    if getattr(args, "data", None):
        overrides.append(f"task.data={args.data}")
    if getattr(args, "sft_data", None):
        overrides.append(f"sft.data={args.sft_data}")
    if isinstance(getattr(args, "model", None), str):
        overrides.append(f"model.path={args.model}")
    elif getattr(args, "model", None):  # eval: `--model A B key=value` puts overrides after the folders
        overrides += [m for m in args.model if "=" in m]
        args.model = [m for m in args.model if "=" not in m]
    return load_config(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)  # overrides may follow options given after a positional input
    if extra and (not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "validate-tests":
        return _validate_tests(args)
    from mirrorl.long2short.merge import MergeError
    from mirrorl.models.loading import ModelLoadError
    from mirrorl.rewards.cot_judge import JudgeError
    from mirrorl.sft import TrainingError
    from mirrorl.tasks.problem import DataError
    try:
        if args.command == "rl" and isinstance(args.resume, str):
            saved = Path(args.resume) / "config.yaml"
            if not saved.is_file():
                raise ConfigError(f"{args.resume}: not a run folder (no config.yaml)")
            cfg = load_config(saved, list(args.overrides) + [f"run.out_dir={args.resume}"])
        elif args.command == "long2short" and args.run:
            saved = Path(args.run) / "config.yaml"
            if not saved.is_file():
                raise ConfigError(f"{args.run}: not a run folder (no config.yaml)")
            cfg = load_config(saved, list(args.overrides) + [f"run.out_dir={args.out or Path(args.run) / 'long2short'}"])
        else:
            cfg = _load(args)
            if cfg.run.out_dir == "runs/demo" and args.command != "demo":
                cfg.run.out_dir = f"runs/{args.command}"  # keep other commands out of the demo's folder
        return _run(args, cfg)
    except (ConfigError, DataError, MergeError, ModelLoadError, TrainingError, JudgeError, ValueError,
            OSError) as err:
        print(f"mirrorl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (RL continues with: mirrorl rl --resume RUN_DIR; demo: run the same command again)"
        print(f"mirrorl {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


def _verify(args) -> int:
    from mirrorl.rewards.verify_file import verify_file
    from mirrorl.tasks.problem import DataError
    try:
        summary = verify_file(args.input, args.out, args.lenient)
    except (DataError, OSError) as err:
        print(f"mirrorl verify: error: {err}", file=sys.stderr)
        return 2
    reasons = ", ".join(f"{name} {count}" for name, count in sorted(summary["reasons"].items()))
    print(f"{summary['rows']} rows: {summary['equal']} equal ({summary['accuracy']:.1%}); {reasons}"
          + (f"; rows written to {args.out}" if args.out else ""), file=sys.stdout if args.out else sys.stderr)
    return 0


def _validate_tests(args) -> int:
    from mirrorl.curation.code_tests import validate_file
    from mirrorl.sandbox.client import SandboxError
    from mirrorl.sandbox.service import SandboxUnavailable
    from mirrorl.tasks.problem import DataError
    try:
        cfg = _load(args)
        out = args.out or "runs/validate-tests"
        summary = validate_file(args.input, out, cfg.validate, args.server, args.unsafe)
    except (ConfigError, DataError, SandboxError, SandboxUnavailable, OSError) as err:
        print(f"mirrorl validate-tests: error: {err}", file=sys.stderr)
        return 2
    print(f"{summary['problems']} problems: {summary['kept']} kept; {summary['valid_tests']} of {summary['tests']} "
          f"tests valid; {Path(out) / 'validated.jsonl'}, details in {Path(out) / 'validation.jsonl'}")
    return 0


def _sandbox(args) -> int:
    from mirrorl.sandbox.client import SandboxError
    from mirrorl.sandbox.service import SandboxUnavailable, serve
    try:
        if args.action == "serve":
            serve(host=args.host, port=args.port, workers=args.workers, python=args.python, unsafe=args.unsafe)
        else:
            from mirrorl.sandbox.check import check_file
            summary = check_file(args.input, args.out, args.server, args.concurrency, args.unsafe)
            verdicts = ", ".join(f"{name} {count}" for name, count in sorted(summary["verdicts"].items()))
            print(f"{summary['rows']} rows: {summary['accepted']} accepted ({summary['accuracy']:.1%}); {verdicts}"
                  + (f"; rows written to {args.out}" if args.out else ""), file=sys.stderr if not args.out else sys.stdout)
        return 0
    except (SandboxUnavailable, SandboxError, ValueError, OSError) as err:
        print(f"mirrorl sandbox {args.action}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args, cfg) -> int:
    import transformers

    from mirrorl.trainer.precision import resolve_precision, set_threads
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    threads = set_threads(cfg.run.threads)
    if args.command in ("demo", "sft", "rl", "long2short"):
        print(f"[mirrorl] {cfg.run.device}, {threads} threads, training in "
              f"{resolve_precision(cfg.run.precision, cfg.run.device)} (run.precision={cfg.run.precision})",
              file=sys.stderr)
    if args.command == "tiny-model":
        from mirrorl.models.tiny import create_tiny_model
        from mirrorl.models.tiny_vl import create_tiny_vl_model
        create = create_tiny_vl_model if args.vision else create_tiny_model
        path = create(cfg.run.out_dir, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.num_heads,
                      seed=cfg.run.seed)
        print(f"tiny model written to {path}")
    elif args.command == "demo":
        from mirrorl.demo import run_demo
        run_demo(cfg)
    elif args.command == "sft":
        _sft(cfg)
    elif args.command == "rl":
        from mirrorl.rl import train_rl
        from mirrorl.tasks.datasets import build_datasets, load_run_datasets, save_datasets
        if not cfg.model.path and not args.resume:
            raise ConfigError("rl: give the starting policy with --model DIR (or model.path=...)")
        out = Path(cfg.run.out_dir)
        if args.resume:
            data = load_run_datasets(out / "data")
        else:
            data = build_datasets(cfg.task, cfg.run.seed)
            save_datasets(data, out / "data")
        summary = train_rl(cfg, data, out, resume=bool(args.resume))
        print(json.dumps({k: v for k, v in summary.items() if k not in ("curve", "samples")}, indent=2))
    elif args.command == "eval":
        _eval(args, cfg)
    elif args.command == "long2short":
        _long2short(args, cfg)
    elif args.command == "curate":
        _curate(args, cfg)
    elif args.command == "merge":
        from mirrorl.long2short.merge import merge_models
        out = merge_models(args.model_a, args.model_b, cfg.run.out_dir, args.weight)
        print(f"merged model ({1 - args.weight:g} * A + {args.weight:g} * B) written to {out}")
    return 0


def _sft(cfg) -> None:
    from mirrorl.models.loading import load_policy, load_processor
    from mirrorl.sft import run_sft
    from mirrorl.tasks.datasets import build_datasets, load_sft_examples
    if not cfg.model.path:
        raise ConfigError("sft: give the starting model with --model DIR (or model.path=...)")
    data = build_datasets(cfg.task, cfg.run.seed)
    examples = load_sft_examples(cfg.sft.data) if cfg.sft.data else data.warmup
    if not examples:
        raise ConfigError("sft: no training examples; give --sft-data FILE (jsonl with prompt/response rows)")
    model, tokenizer = load_policy(cfg.model.path, device=cfg.run.device)
    processor = load_processor(cfg.model.path)  # vision-language models; None for text
    out = Path(cfg.run.out_dir)
    info = run_sft(model, tokenizer, examples, data.dev, cfg, out, processor=processor)
    model.save_pretrained(out / "model", safe_serialization=True)
    (processor or tokenizer).save_pretrained(out / "model")
    print(f"best dev accuracy {info['best_eval_accuracy']:.3f} after {info['steps']} steps; model in {out / 'model'}")


def _eval(args, cfg) -> None:
    from mirrorl.eval.evaluate import evaluate_folder
    from mirrorl.eval.report import write_token_efficiency
    from mirrorl.tasks.datasets import build_datasets
    if not args.model:
        raise ConfigError("eval: give at least one model folder with --model DIR [DIR ...]")
    heldout = build_datasets(cfg.task, cfg.run.seed).heldout
    rows = {}
    for path in args.model:
        result = evaluate_folder(path, heldout, cfg, progress=True)
        rows[path] = {"accuracy": result.accuracy, "mean_response_tokens": result.mean_response_tokens,
                      "per_level": result.per_level, "per_task": result.per_task,
                      "parse_failures": result.parse_failures}
        print(f"{path}: accuracy {result.accuracy:.3f}  mean tokens {result.mean_response_tokens:.1f}  "
              f"per level {result.per_level}" + (f"  per task {result.per_task}" if result.per_task else ""))
    out = Path(cfg.run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps({"heldout_size": len(heldout), "models": rows}, indent=2))
    _, table = write_token_efficiency(out, rows, len(heldout))
    print(f"results in {out / 'eval.json'}; accuracy against tokens in {table} and token_efficiency.png")


def _curate(args, cfg) -> None:
    from mirrorl.curation.run import curate, load_models
    from mirrorl.tasks.datasets import build_datasets
    from mirrorl.tasks.jsonl import load_problems
    if not cfg.model.path:
        raise ConfigError("curate: give the model that measures pass rates with --model DIR (or model.path=...)")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"curate: --limit must be >= 1, got {args.limit}")
    if cfg.task.data:
        problems = load_problems(cfg.task.data, args.limit)
    else:
        problems = build_datasets(cfg.task, cfg.run.seed).rl[:args.limit]
    summary = curate(cfg, problems, cfg.run.out_dir, *load_models(cfg))
    out = Path(cfg.run.out_dir)
    dropped = ", ".join(f"{why} {n}" for why, n in summary["dropped"].items()) or "none"
    print(f"{summary['prompts']} prompts, {summary['kept']} kept (dropped: {dropped}) in "
          f"{sum(summary['seconds'].values()):.0f} s; {out / 'curated.jsonl'}, report in {out / 'report.md'}")


def _long2short(args, cfg) -> None:
    from mirrorl.long2short.run import choose_long_checkpoint, run_long2short
    from mirrorl.tasks.datasets import build_datasets, load_run_datasets
    base_model = None
    if args.run:
        run = Path(args.run)
        data = load_run_datasets(run / "data")
        long_model = args.model or choose_long_checkpoint(run / "rl", cfg.long2short.checkpoint_tolerance)
        short_model, base_model = args.short_model, run / "sft" / "model"
        print(f"[long2short] long-CoT model: {long_model}")
    elif cfg.model.path and args.short_model:
        data = build_datasets(cfg.task, cfg.run.seed)
        long_model, short_model = cfg.model.path, args.short_model
    else:
        raise ConfigError("long2short: give --run RUN_DIR (a demo run folder) or --model LONG --short-model SHORT")
    summary = run_long2short(cfg, data, long_model, short_model, cfg.run.out_dir, base_model=base_model)
    print(json.dumps({label: {k: row[k] for k in ("accuracy", "mean_response_tokens")}
                      for label, row in summary["models"].items()}, indent=2))
    print(f"table and plot: {Path(cfg.run.out_dir) / 'token_efficiency.md'}, token_efficiency.png")


if __name__ == "__main__":
    sys.exit(main())
