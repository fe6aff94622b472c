"""Tokens/s of the demo model for generation and training per torch thread count and precision, side by side.

    .venv/bin/python bench/cpu_settings.py [--threads 1 2] [--precision bf16 fp32] [--batch 256] [--new-tokens 128]

Each setting (threads x precision) runs in its own subprocess (torch fixes its thread pool at
start-up), alternating settings over `--repeats` rounds so that machine noise hits them alike;
prints the median tokens/s and the ratio to the first setting. These figures chose the defaults
`run.threads=0` (one per core), `run.precision=auto` (bf16 training where the CPU has native bf16
kernels, fp32 on AVX2-only CPUs, where bf16 trains 19x slower) and `run.generation_precision=fp32`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

WORKER = r"""
import json, sys, time, torch, transformers
transformers.utils.logging.disable_progress_bar()
from mirrorl.models.loading import load_policy
from mirrorl.trainer.precision import autocast, set_threads
set_threads(int(sys.argv[2]))
batch, new, precision = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
model, _ = load_policy(sys.argv[1])
ids = torch.randint(4, 60, (batch, 12))
with torch.inference_mode(), autocast(precision, "cpu"):
    model.eval(); start = time.perf_counter()
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new, do_sample=True, pad_token_id=0)
    gen = batch * new / (time.perf_counter() - start)
model.train()
seq = torch.randint(4, 60, (32, 160))
opt = torch.optim.AdamW(model.parameters(), 1e-4)
start = time.perf_counter()
for _ in range(3):
    with autocast(precision, "cpu"):
        loss = model(seq, labels=seq).loss
    loss.backward(); opt.step(); opt.zero_grad()
train = 3 * seq.numel() / (time.perf_counter() - start)
print(json.dumps({"generate_tok_s": gen, "train_tok_s": train}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import transformers

    from mirrorl.models.tiny import create_tiny_model
    transformers.utils.logging.disable_progress_bar()
    model_dir = create_tiny_model(tempfile.mkdtemp())
    settings = [(t, p) for t in args.threads for p in args.precision]
    results = {s: [] for s in settings}
    for _ in range(args.repeats):
        for t, p in settings:
            out = subprocess.run([sys.executable, "-c", WORKER, str(model_dir), str(t), str(args.batch),
                                  str(args.new_tokens), p], capture_output=True, text=True, check=True)
            results[(t, p)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = {k: statistics.median(r[k] for r in results[settings[0]]) for k in ("generate_tok_s", "train_tok_s")}
    print(f"{'threads':>8} {'precision':>10} {'generate tok/s':>15} {'ratio':>6} {'train tok/s':>12} {'ratio':>6}")
    for t, p in settings:
        gen = statistics.median(r["generate_tok_s"] for r in results[(t, p)])
        train = statistics.median(r["train_tok_s"] for r in results[(t, p)])
        print(f"{t:>8} {p:>10} {gen:>15.0f} {gen / base['generate_tok_s']:>6.2f} {train:>12.0f} "
              f"{train / base['train_tok_s']:>6.2f}")


if __name__ == "__main__":
    main()
