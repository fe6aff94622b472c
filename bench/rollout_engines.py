"""Rollout tokens/s of plain `model.generate`, `HFEngine` and `VLLMEngine` on the same model and prompts, side by side.

    .venv/bin/python bench/rollout_engines.py [--model DIR | --sizes 3m 20m] [--prompts 256] [--new-tokens 224]

`HFEngine, 1 call` is the HF engine with `rollout.chunk_tokens=0`: every batch in one `generate` call, so
finished rows are decoded until the longest ends; `HFEngine` (default `rollout.chunk_tokens`) drops them
between chunks. All sample at temperature 1 from the same prompts (the demo task's RL prompts) with the same token
limit, stopping at end-of-sequence. Each backend runs in its own subprocess (vLLM binds the process's
threads; torch fixes its thread pool at start-up): one warm-up call, then `--repeats` timed calls; the
median tokens/s (generated tokens, end-of-sequence included, padding not) and its ratio to plain
`model.generate` are printed, with the engine's start-up seconds, and written to
`bench/results/rollout_engines.json`. Without `--model`, fresh models of each of `--sizes` are measured (the
demo's 3.2M Llama and a 19M one shaped as in `train_step.py`; random weights, whose responses end at
very different lengths); a warm-up SFT model gives the demo's real lengths.
VLLMEngine needs `.[vllm]` (`make install-vllm`) and is left out without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from train_step import SIZES  # name -> (hidden, layers, heads): the demo model, ~20M, ~100M

NAMES = {"generate": "model.generate", "hf_one_call": "HFEngine, 1 call", "hf": "HFEngine", "vllm": "VLLMEngine"}

WORKER = r"""
import json, statistics, sys, time, torch, transformers
transformers.utils.logging.disable_progress_bar()
from mirrorl.config import load_config
from mirrorl.eval.evaluate import encode_prompt
from mirrorl.models.loading import load_policy
from mirrorl.rollout.engine import SamplingParams
from mirrorl.tasks.datasets import build_datasets
from mirrorl.trainer.precision import set_threads

if __name__ == "__main__":
    backend, model_dir, n, new, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    set_threads(0)
    one_call = ["rollout.chunk_tokens=0"] if backend == "hf_one_call" else []
    cfg = load_config(None, [f"model.path={model_dir}", "rl.temperature=1.0"] + one_call)
    model, tok = load_policy(model_dir)
    prompts = [encode_prompt(tok, p.prompt) for p in build_datasets(cfg.task, 0).rl[:n]]
    start = time.perf_counter()
    if backend == "generate":
        width = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = (torch.arange(width) >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
        def run():
            with torch.inference_mode():
                out = model.eval().generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=True,
                                            temperature=1.0, top_p=1.0, top_k=None, pad_token_id=tok.pad_token_id,
                                            eos_token_id=tok.eos_token_id)[:, width:]
            ended = (out == tok.eos_token_id).cumsum(1)  # tokens up to and including the first end-of-sequence
            return int(((ended == 0) | ((ended == 1) & (out == tok.eos_token_id))).sum())
    else:
        if backend.startswith("hf"):
            from mirrorl.rollout.hf import HFEngine
            engine = HFEngine.from_config(model, tok, cfg)
        else:
            from mirrorl.rollout.vllm import VLLMEngine
            engine = VLLMEngine.from_config(model_dir, cfg)
        sampling = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=new)
        run = lambda: sum(len(s.token_ids) for s in engine.generate(prompts, sampling))
    startup = time.perf_counter() - start
    run()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(tokens / (time.perf_counter() - start))
    print(json.dumps({"tok_s": statistics.median(rates), "tokens": tokens, "startup_s": startup}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="HF model folder; default: fresh models of --sizes")
    parser.add_argument("--sizes", nargs="+", default=["3m", "20m"], choices=list(SIZES))
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backends = ["generate", "hf_one_call", "hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    if "vllm" not in backends:
        print("vLLM not installed (make install-vllm): VLLMEngine left out")
    if args.model:
        models = {args.model: args.model}
    else:
        from mirrorl.models.tiny import create_tiny_model
        models = {size: str(create_tiny_model(tempfile.mkdtemp(), *SIZES[size])) for size in args.sizes}
    report = {}
    for name, model_dir in models.items():
        results = {}
        for backend in backends:
            out = subprocess.run([sys.executable, "-c", WORKER, backend, model_dir, str(args.prompts),
                                  str(args.new_tokens), str(args.repeats)], capture_output=True, text=True, check=True)
            results[backend] = json.loads(out.stdout.strip().splitlines()[-1])
        report[name] = results
        print(f"model {name}: {args.prompts} prompts, up to {args.new_tokens} new tokens, temperature 1, "
              f"median of {args.repeats}")
        print(f"{'backend':<16}{'tokens/s':>10}{'ratio':>8}{'tokens':>9}{'start-up s':>12}")
        base = results["generate"]["tok_s"]
        for backend, r in results.items():
            print(f"{NAMES[backend]:<16}{r['tok_s']:>10,.0f}{r['tok_s'] / base:>8.2f}{r['tokens']:>9,}"
                  f"{r['startup_s']:>12.1f}")
    out_file = Path(__file__).parent / "results" / "rollout_engines.json"
    out_file.parent.mkdir(exist_ok=True)
    out_file.write_text(json.dumps({"prompts": args.prompts, "new_tokens": args.new_tokens, "models": report}, indent=2))
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
