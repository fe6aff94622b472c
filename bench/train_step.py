"""The RL update step against the machine's measured matmul peak (model FLOPs utilisation).

    .venv/bin/python bench/train_step.py [--sizes 3m 20m] [--threads 0] [--batch 32] [--seq 160] [--attn auto]

For each model size, one process measures in the same run:
- the matmul peak: the best of `torch.mm` over square and model-shaped operands, fp32 and bf16 (GFLOP/s);
- the update step exactly as `mirrorl.rl.policy_update` runs it: `token_logprobs` under bf16 autocast
  (or fp32), the k1.5 loss (`k15_loss`), backward and an SGD step, on random token batches of
  `--batch` sequences x `--seq` tokens, with the attention kernel `mirrorl.models.loading.load_policy`
  picks (`--attn auto`: eager on CPU) or the one given.

FLOPs per step are counted as 6 x parameters x tokens (forward 2, backward 4; the tied input embedding is
a lookup but the tied output head is a matmul, so every parameter is counted once) plus causal attention,
6 x layers x seq x hidden per token (QK^T and AV: 2 x 2 x seq x hidden per layer forward at full length,
halved for the causal mask, times 3 for forward + backward). Prints tokens/s, achieved GFLOP/s and the
fraction of the peak of the same precision, and writes `bench/results/train_step.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

SIZES = {  # name -> (hidden, layers, heads): the demo model and a ~20M-parameter one
    "3m": (256, 4, 4),
    "20m": (512, 6, 8),
    "100m": (768, 12, 12),
}


def matmul_peak(dtype: torch.dtype, shapes: list[tuple[int, int, int]], seconds: float = 1.0) -> float:
    """Best GFLOP/s of `torch.mm` (M x K) @ (K x N) over `shapes`, each timed for about `seconds`."""
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        torch.mm(a, b)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def update_step_rate(model, batch: int, seq: int, precision: str, steps: int) -> float:
    """Tokens/s of `steps` update steps (after one warm-up step) on random (batch, seq) token ids."""
    from mirrorl.algorithms.losses import k15_loss
    from mirrorl.trainer.logprobs import token_logprobs

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(4, vocab, (batch, seq))
    attn = torch.ones_like(ids)
    mask = torch.ones(batch, seq - 1)
    advantages = torch.randn(batch)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logprobs, _ = token_logprobs(model, ids, attn, precision)
        loss, _ = k15_loss(logprobs, logprobs.detach(), mask, advantages, tau=1.0)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * seq / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["3m", "20m"], choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = one per core)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step (rl.micro_batch_size)")
    parser.add_argument("--seq", type=int, default=160, help="tokens per sequence (prompt + response)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--attn", default="auto", help="attention kernel (auto = what load_policy picks: eager on CPU)")
    args = parser.parse_args()
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from mirrorl.models.loading import attention_kernel
    from mirrorl.trainer.precision import set_threads
    transformers.utils.logging.disable_progress_bar()
    attn = attention_kernel(args.attn, "cpu") or "sdpa"
    threads = set_threads(args.threads)
    tokens = args.batch * args.seq
    rows = {}
    for name in args.sizes:
        hidden, layers, heads = SIZES[name]
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=62, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                                             num_hidden_layers=layers, num_attention_heads=heads,
                                             num_key_value_heads=heads, tie_word_embeddings=True,
                                             attn_implementation=attn))
        params = sum(p.numel() for p in model.parameters())
        flops_per_token = 6 * params + 6 * layers * args.seq * hidden
        shapes = [(1024, 1024, 1024), (tokens, hidden, hidden), (tokens, hidden, int(hidden * 2.6875))]
        peak = {"fp32": matmul_peak(torch.float32, shapes), "bf16": matmul_peak(torch.bfloat16, shapes)}
        for precision in ("bf16", "fp32"):
            rate = update_step_rate(model, args.batch, args.seq, precision, args.steps)
            achieved = rate * flops_per_token / 1e9
            rows[f"{name}/{precision}"] = {"params": params, "tokens_per_s": rate, "gflop_s": achieved,
                                           "peak_gflop_s": peak[precision], "fraction_of_peak": achieved / peak[precision]}
    print(f"update step: {args.batch} x {args.seq} tokens, SGD, k1.5 loss, {threads} threads, {attn} attention")
    print(f"{'model/precision':>15} {'params':>10} {'tokens/s':>9} {'GFLOP/s':>8} {'peak GFLOP/s':>12} {'of peak':>7}")
    for key, r in rows.items():
        print(f"{key:>15} {r['params']:>10,} {r['tokens_per_s']:>9.0f} {r['gflop_s']:>8.1f} "
              f"{r['peak_gflop_s']:>12.1f} {r['fraction_of_peak']:>7.1%}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "train_step.json").write_text(json.dumps({"threads": threads, "attention": attn, "batch": args.batch,
                                                     "seq": args.seq, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
