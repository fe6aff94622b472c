"""Weight transfer from a trainer worker to rollout workers through Ray's object store, on CPU.

    .venv/bin/python bench/weight_transfer.py [--sizes 3M 20M 100M] [--rollout-workers 2] [--bucket-mb 256]

For each model size it saves a Llama model (`mirrorl.models.tiny.create_tiny_model`, character
vocabulary, so nearly all parameters sit in the transformer layers), starts the Ray backend with one
trainer worker and `--rollout-workers` rollout workers, and times `RayBackend.push_weights`: the
trainer flattens its fp32 parameters into buckets, Ray stores them, every rollout worker reads them and
copies them into its model in place. It checks that every worker ends with the trainer's weights
(SHA-256) and prints seconds per push (median of `--repeats`) and GB/s (model bytes / seconds; each
worker receives the full model). For reference it also times the same copy inside one process
(`load_buckets` from buckets already in memory), the floor on one machine. The local backend moves
nothing (the engine shares the trainer's module), so it has no row.

The GPU reference for this step is `checkpoint-engine` (PyPI; report section 2.6.3), which moves
bucketed weights over NCCL/RDMA into vLLM in place; it needs GPUs and was not run here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch
import transformers

from mirrorl.config import load_config
from mirrorl.distributed.ray_backend import RayBackend
from mirrorl.models.loading import load_policy
from mirrorl.models.tiny import create_tiny_model
from mirrorl.weights.transfer import load_buckets, to_buckets

# name -> (hidden_size, layers, heads): about 3.2M (the demo model), 19M and 99M parameters
SIZES = {"3M": (256, 4, 4), "20M": (512, 6, 8), "100M": (768, 14, 12)}


def bench(size: str, folder: Path, workers: int, bucket_mb: float, repeats: int) -> dict:
    hidden, layers, heads = SIZES[size]
    path = create_tiny_model(folder / size, hidden, layers, heads)
    model, _ = load_policy(path)
    params = sum(p.numel() for p in model.parameters())
    bucket_bytes = int(bucket_mb * 2**20)
    copy_s = []
    for _ in range(repeats):
        buckets = to_buckets(model.named_parameters(), bucket_bytes)
        start = time.perf_counter()
        load_buckets(model, buckets)
        copy_s.append(time.perf_counter() - start)
    cfg = load_config(None, ["distributed.backend=ray", f"distributed.rollout_workers={workers}",
                             "distributed.trainer_workers=1", "distributed.cpus_per_worker=0.5",
                             f"distributed.bucket_mb={bucket_mb}"])
    backend = RayBackend(cfg, path)
    try:
        seconds = []
        for version in range(1, repeats + 1):
            start = time.perf_counter()
            stats = backend.push_weights(version)
            seconds.append(time.perf_counter() - start)
        expected = ray.get(backend.trainers[0].weights_digest.remote())
        assert ray.get([w.weights_digest.remote() for w in backend.pool.workers]) == [expected] * workers
    finally:
        backend.close()
    push = statistics.median(seconds)
    return {"size": size, "params": params, "bytes": stats["weight_sync_bytes"], "buckets": len(backend.transfer.sizes),
            "push_s": push, "gb_per_s": stats["weight_sync_bytes"] / push / 1e9,
            "copy_s": statistics.median(copy_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rollout-workers", type=int, default=2)
    parser.add_argument("--bucket-mb", type=float, default=256.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-cpus", type=float, default=4, help="logical CPUs of the local Ray instance")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(1)  # as each worker (distributed.threads_per_worker)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    print(f"| model | parameters | fp32 bytes | buckets | push to {args.rollout_workers} workers (s) | GB/s | "
          "in-process copy (s) | GB/s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            r = bench(size, Path(folder), args.rollout_workers, args.bucket_mb, args.repeats)
            copy_gb_per_s = r["bytes"] / r["copy_s"] / 1e9
            print(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['bytes'] / 1e6:.0f} MB | {r['buckets']} | "
                  f"{r['push_s']:.3f} | {r['gb_per_s']:.2f} | {r['copy_s']:.3f} | {copy_gb_per_s:.2f} |", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
