"""Bucketed weight transfer (mirrorl.weights.transfer) without Ray: pack, unpack in place, digests."""

import torch

from mirrorl.models.loading import load_policy
from mirrorl.weights.transfer import bucket_sizes, load_buckets, to_buckets, weights_digest


def test_buckets_carry_every_weight_in_place(tiny_model_dir):
    source, _ = load_policy(tiny_model_dir)
    target, _ = load_policy(tiny_model_dir)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    assert weights_digest(source.named_parameters()) != weights_digest(target.named_parameters())
    named = list(source.named_parameters())
    total = sum(p.numel() * 4 for _, p in named)  # float32: 4 bytes per parameter
    sizes = bucket_sizes(named, bucket_bytes=4096)
    buckets = to_buckets(named, bucket_bytes=4096)
    assert len(buckets) == len(sizes) > 1 and [b.data.nbytes for b in buckets] == sizes and sum(sizes) == total
    assert all(size <= 4096 or len(b.names) == 1 for size, b in zip(sizes, buckets))  # only a lone tensor exceeds it
    pointers = [p.data_ptr() for p in target.parameters()]
    assert load_buckets(target, buckets) == total
    assert [p.data_ptr() for p in target.parameters()] == pointers  # loaded in place, nothing reallocated
    assert weights_digest(source.named_parameters()) == weights_digest(target.named_parameters())


def test_buckets_split_at_dtype_changes():
    named = [("a", torch.ones(3)), ("b", torch.ones(2, dtype=torch.bfloat16)), ("c", torch.arange(4.0))]
    buckets = to_buckets(named, bucket_bytes=1 << 20)
    assert [b.names for b in buckets] == [["a"], ["b"], ["c"]]  # 12, 4 and 16 bytes
    module = torch.nn.Module()
    for name, tensor in named:
        module.register_parameter(name, torch.nn.Parameter(torch.zeros_like(tensor)))
    load_buckets(module, buckets)
    assert module.b.dtype == torch.bfloat16 and module.c.tolist() == [0.0, 1.0, 2.0, 3.0]
