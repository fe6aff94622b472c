"""Weight transfer from the trainer to the rollout engines (report section 2.6.3).

After each training phase the rollout engines must generate with the new weights theta_{i+1}. Two
ways are implemented behind one interface, `WeightTransfer.push(version) -> stats`:

- `InProcessTransfer` (backend `local`): the engine holds the trainer's own `nn.Module`, so nothing
  moves (zero-copy); only the policy version is recorded.
- `ObjectStoreTransfer` (backend `ray`): the rank-0 trainer flattens its parameters into buckets of
  at most `bucket_bytes` (one contiguous byte array per bucket, `to_buckets`), Ray stores each bucket
  as one object, and every rollout worker reads them (zero-copy out of the node's shared-memory object
  store) and copies them into its parameters in place (`load_buckets`). No state dict is rebuilt and
  no tensor is reallocated on the receiving side.

The GPU reference for this step is Moonshot's `checkpoint-engine` (PyPI, report section 2.6.3): it
moves bucketed weights between trainer and vLLM processes over NCCL/RDMA in place. It was not run
here (no GPU); `bench/weight_transfer.py` measures the object-store path on CPU.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np
import torch


@dataclass
class Bucket:
    """Several tensors of one dtype packed back to back.

    Attributes:
        names, shapes: parameter names and shapes, in packing order.
        dtype: the tensors' dtype.
        data: (nbytes,) uint8 numpy array, the tensors' bytes in order (numpy so that Ray reads it
            zero-copy from its object store).
    """

    names: list[str]
    shapes: list[tuple[int, ...]]
    dtype: torch.dtype
    data: np.ndarray


def bucket_sizes(named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int) -> list[int]:
    """Bytes of each bucket `to_buckets` would make from these tensors (without copying them).

    A bucket closes when the next tensor would take it past `bucket_bytes` or has another dtype; a
    single tensor larger than `bucket_bytes` gets a bucket of its own.
    """
    sizes, dtype = [], None
    for _, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if not sizes or tensor.dtype != dtype or sizes[-1] + nbytes > bucket_bytes:
            sizes.append(0)
            dtype = tensor.dtype
        sizes[-1] += nbytes
    return sizes


def to_buckets(named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int) -> list[Bucket]:
    """Copy tensors (any device) into CPU byte buckets laid out as `bucket_sizes` says.

    Args:
        named_tensors: (name, tensor) pairs, e.g. `module.named_parameters()` (tied weights once).
        bucket_bytes: largest bucket in bytes, > 0.
    Returns: the buckets, in the order of the tensors.
    """
    named_tensors = list(named_tensors)
    buckets, start = [], 0
    for size in bucket_sizes(named_tensors, bucket_bytes):
        names, shapes, parts, total = [], [], [], 0
        while start < len(named_tensors) and total < size:
            name, tensor = named_tensors[start]
            names.append(name)
            shapes.append(tuple(tensor.shape))
            parts.append(tensor.detach().reshape(-1).cpu())
            total += tensor.numel() * tensor.element_size()
            start += 1
        flat = torch.cat(parts) if len(parts) > 1 else parts[0].clone()
        buckets.append(Bucket(names, shapes, flat.dtype, flat.view(torch.uint8).numpy()))
    return buckets


@torch.no_grad()
def load_buckets(module: torch.nn.Module, buckets: Iterable[Bucket]) -> int:
    """Copy bucketed weights into `module`'s parameters in place (same names and shapes).

    Returns: bytes copied.
    Raises: KeyError naming a bucket tensor the module lacks; RuntimeError on a shape mismatch.
    """
    params = dict(module.named_parameters())
    copied = 0
    for bucket in buckets:
        with warnings.catch_warnings():  # the object store hands out read-only memory; it is only read
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.from_numpy(bucket.data).view(bucket.dtype)
        offset = 0
        for name, shape in zip(bucket.names, bucket.shapes):
            numel = int(np.prod(shape))
            params[name].copy_(flat[offset:offset + numel].view(shape))
            offset += numel
        copied += bucket.data.nbytes
    return copied


def weights_digest(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of names and bytes of (name, tensor) pairs, e.g. `module.named_parameters()`, in order:
    equal digests mean equal weights."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class WeightTransfer(Protocol):
    """Moves the trainer's current weights into every rollout engine."""

    def push(self, version: int) -> dict:
        """Make the engines generate with the trainer's weights from now on, tagged `version`.

        Returns: {"weight_sync_bytes": bytes moved, "weight_sync_gb_per_s": bytes / seconds / 1e9}
        (empty when nothing moves).
        """
        ...


class InProcessTransfer:
    """Weights to an engine in this process (backend `local`). An engine on the trainer's own module
    (`rollout.engine=hf`) needs nothing moved; one with its own copy (`vllm`) is given the trainer's
    state dict, which it loads in place.

    Args:
        engine: the rollout engine.
        module: the trainer's module when the engine holds its own copy of the weights, else None.
    """

    def __init__(self, engine, module=None):
        self.engine, self.module = engine, module

    def push(self, version: int) -> dict:
        self.engine.update_weights(None if self.module is None else self.module.state_dict(), version)
        return {}


class ObjectStoreTransfer:
    """Bucketed weights through Ray's object store, from the rank-0 trainer to every rollout worker.

    Args:
        trainers: trainer actor handles (`TrainerWorker`); all of them are asked for buckets, since
            a sharded (FSDP) model gathers full tensors collectively, and rank 0's are sent.
        pool: the `RolloutPool` whose workers load them (`RolloutPool.load_weights`).
        sizes: bucket sizes in bytes (`TrainerWorker.bucket_sizes`), fixed for a model.
        bucket_bytes: largest bucket in bytes.
    """

    def __init__(self, trainers: list, pool, sizes: list[int], bucket_bytes: int):
        self.trainers, self.pool, self.sizes, self.bucket_bytes = trainers, pool, sizes, bucket_bytes

    def push(self, version: int) -> dict:
        start = time.perf_counter()
        calls = [t.weight_buckets.options(num_returns=len(self.sizes)).remote(self.bucket_bytes) for t in self.trainers]
        refs = calls[0] if len(self.sizes) > 1 else [calls[0]]
        self.pool.load_weights(refs, version)
        seconds = time.perf_counter() - start
        total = sum(self.sizes)
        return {"weight_sync_bytes": total, "weight_sync_gb_per_s": total / seconds / 1e9}
