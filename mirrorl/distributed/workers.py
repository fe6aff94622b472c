"""The two worker roles of the RL loop as plain classes (report section 2.6.1, Fig. 3a).

`RolloutWorker` owns an engine and its own copy of the policy; `TrainerWorker` owns the policy being
trained, its optimizer and one rank of a `torch.distributed` data-parallel group. The Ray backend
(`mirrorl.distributed.ray_backend`) runs them as actors; the local backend and the tests build them
in the calling process. Neither knows about Ray.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import transformers
from torch.nn.parallel import DistributedDataParallel

from mirrorl.config import Config
from mirrorl.models.loading import load_policy, load_processor
from mirrorl.models.multimodal import freeze_vision_tower, trainable_parameters
from mirrorl.rl import policy_update
from mirrorl.rollout.engine import SamplingParams, Segment
from mirrorl.rollout.hf import HFEngine
from mirrorl.trainer.checkpoint import save_checkpoint
from mirrorl.trainer.precision import set_threads
from mirrorl.weights.transfer import Bucket, bucket_sizes, load_buckets, to_buckets, weights_digest


class RolloutWorker:
    """An `HFEngine` on its own copy of the policy, loaded from `model_path`.

    Args:
        model_path: HF model folder (the run's starting policy or checkpoint).
        cfg: the run config (`run.device`, `run.generation_precision`, `eval.batch_size`).
        threads: torch intra-op threads for this worker (0 = one per core; None = leave as set).
    """

    def __init__(self, model_path: str | Path, cfg: Config, threads: int | None = None):
        _quiet(threads)
        model, tokenizer = load_policy(model_path, device=cfg.run.device)
        self.engine = HFEngine.from_config(model, tokenizer, cfg)

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, prefixes: list[list[int]] | None,
                 seed: int) -> list[Segment]:
        """`RolloutEngine.generate` after seeding torch's generator with `seed`, so a shard's samples
        depend only on the seed the master drew, not on the process that runs it."""
        torch.manual_seed(seed)
        return self.engine.generate(prompts, sampling, prefixes)

    def load_weights(self, version: int, *buckets: Bucket) -> int:
        """Copy bucketed weights into the model in place and tag later segments `version`; returns bytes."""
        copied = load_buckets(self.engine.model, buckets)
        self.engine.update_weights(None, version)
        return copied

    def weights_digest(self) -> str:
        """SHA-256 of the engine's weights (`mirrorl.weights.transfer.weights_digest`)."""
        return weights_digest(self.engine.model.named_parameters())


class TrainerWorker:
    """One data-parallel rank of the policy update: model, optimizer and `policy_update`.

    Call `connect` once before training: with `world_size > 1` it joins the process group (gloo on
    CPU, NCCL on GPU) and wraps the model in DDP (a full replica per rank, gradients averaged) or FSDP
    (`fully_shard` on each decoder layer, as the model's `_no_split_modules` names them, and on the
    whole model: parameters sharded); it then builds the optimizer (`rl.optimizer`, `rl.lr`).

    Args:
        model_path: HF model folder to start from.
        cfg: the run config.
        rank, world_size: this worker's place in the group.
        strategy: "ddp" or "fsdp" (only with `world_size > 1`).
        threads: torch intra-op threads (0 = one per core; None = leave as set).
    """

    def __init__(self, model_path: str | Path, cfg: Config, rank: int = 0, world_size: int = 1,
                 strategy: str = "ddp", threads: int | None = None):
        _quiet(threads)
        self.cfg, self.rank, self.world_size, self.strategy = cfg, rank, world_size, strategy
        self.module, self.tokenizer = load_policy(model_path, device=cfg.run.device)
        self.processor = load_processor(model_path)  # saved with the weights; None for a text-only model
        if cfg.model.freeze_vision_tower:
            freeze_vision_tower(self.module)
        self.model = self.module  # what forward/backward runs on: the module itself or its DDP wrapper
        self.optimizer = None

    def rendezvous(self) -> str:
        """A `tcp://host:port` address on this worker's node with a free port, for `connect` (rank 0)."""
        host = _node_ip()
        with socket.socket() as s:
            s.bind(("", 0))
            return f"tcp://{host}:{s.getsockname()[1]}"

    def connect(self, init_method: str | None = None) -> None:
        """Join the group at `init_method` (rank 0's `rendezvous`; unused when `world_size == 1`),
        wrap the model for data parallelism and build the optimizer."""
        if self.world_size > 1:
            backend = "nccl" if torch.device(self.cfg.run.device).type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size)
            if self.strategy == "fsdp":
                from torch.distributed.fsdp import fully_shard
                blocks = set(self.module._no_split_modules or ())  # transformers names its decoder-layer classes
                for layer in [m for m in self.module.modules() if type(m).__name__ in blocks]:
                    fully_shard(layer)
                fully_shard(self.module)
            else:
                self.model = DistributedDataParallel(self.module)
        rl = self.cfg.rl
        self.optimizer = (torch.optim.AdamW if rl.optimizer == "adamw" else torch.optim.SGD)(
            trainable_parameters(self.module), lr=rl.lr, weight_decay=rl.weight_decay)

    def update(self, batch: list, advantages: torch.Tensor, nominal_size: float, iteration: int, lr: float) -> dict:
        """One iteration's optimizer steps on this rank's share of `batch` (`mirrorl.rl.policy_update`).

        Every rank receives the whole batch and takes the same permutation of it, then its own slice
        of every minibatch; gradients are averaged over ranks, so all replicas take the same step.
        Args: as `policy_update`; `lr` is this iteration's learning rate.
        Returns: the step statistics, reduced over ranks (equal on every rank).
        Raises: TrainingError on a non-finite loss (on every rank).
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.cfg.rl.reset_optimizer:
            self.optimizer.state.clear()  # the report resets optimizer state every iteration (section 2.3.2)
        generator = torch.Generator().manual_seed(self.cfg.run.seed * 1_000_003 + iteration)
        return policy_update(self.model, self.optimizer, batch, advantages, self.cfg, generator, nominal_size,
                             iteration, self.rank, self.world_size)

    def _full_state(self) -> dict[str, torch.Tensor]:
        """Full (unsharded) parameters by name; with FSDP a collective, complete on rank 0 only."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
            state = get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            return {name: state[name] for name, _ in self.module.named_parameters() if name in state}
        return dict(self.module.named_parameters())

    def bucket_sizes(self, bucket_bytes: int) -> list[int]:
        """Bytes of each weight bucket (`mirrorl.weights.transfer.bucket_sizes`)."""
        return bucket_sizes(_param_shapes(self.module), bucket_bytes)

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.world_size > 1

    def weight_buckets(self, bucket_bytes: int):
        """The weights as buckets (`to_buckets`) on rank 0, Nones on the other ranks; a single bucket
        is returned as itself, not in a list, as Ray's `num_returns=1` expects (with FSDP every rank
        must call it: the full tensors are gathered collectively)."""
        state = self._full_state() if self.sharded or self.rank == 0 else None
        count = len(self.bucket_sizes(bucket_bytes))
        buckets = to_buckets(state.items(), bucket_bytes) if self.rank == 0 else [None] * count
        return buckets[0] if count == 1 else buckets

    def weights_digest(self) -> str | None:
        """SHA-256 of the full weights (`weights_digest`) on rank 0, None elsewhere; with FSDP call it
        on every rank."""
        state = self._full_state() if self.sharded or self.rank == 0 else None
        return weights_digest(state.items()) if self.rank == 0 else None

    def optimizer_state(self) -> dict:
        """The optimizer's state dict (with FSDP: unsharded, a collective)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
            return get_optimizer_state_dict(self.module, self.optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict) -> None:
        """Restore a state dict saved by `optimizer_state` (resume)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
            set_optimizer_state_dict(self.module, self.optimizer, state,
                                     options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        else:
            self.optimizer.load_state_dict(state)

    def save_checkpoint(self, run_dir: str | Path, step: int, state: dict, keep: int) -> str | None:
        """Write checkpoint `step` (weights, tokenizer, `state` + this optimizer's state) from rank 0
        (`mirrorl.trainer.checkpoint.save_checkpoint`); every rank must call it. Returns the folder on
        rank 0, None elsewhere."""
        optimizer = self.optimizer_state()
        weights = self._full_state() if self.sharded else None
        if self.rank != 0:
            return None
        return str(save_checkpoint(run_dir, step, self._savable(weights), self.processor or self.tokenizer,
                                   state | {"optimizer": optimizer}, keep=keep))

    def save_final(self, path: str | Path) -> None:
        """Save the policy and tokenizer (or processor) as an HF folder from rank 0; every rank must call it."""
        weights = self._full_state() if self.sharded else None
        if self.rank == 0:
            model = self._savable(weights)
            model.save_pretrained(path, safe_serialization=True)
            (self.processor or self.tokenizer).save_pretrained(path)

    def _savable(self, weights: dict | None):
        """The module itself, or (FSDP) a fresh unsharded copy holding the gathered `weights`."""
        if weights is None:
            return self.module
        model = type(self.module)(self.module.config)
        model.load_state_dict(weights, strict=False)
        model.tie_weights()
        return model

    def close(self) -> None:
        """Leave the process group `connect` joined (none with `world_size == 1`: a default group in this
        process then belongs to someone else, e.g. an in-process vLLM engine, and stays)."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _quiet(threads: int | None) -> None:
    """Worker process set-up: torch threads (None = leave as set) and no transformers progress bars."""
    if threads is not None:
        set_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _param_shapes(module):
    """(name, meta tensor of the full shape and dtype) per parameter, sharded or not."""
    for name, p in module.named_parameters():
        shape = p.shape  # a DTensor reports its global shape
        yield name, torch.empty(shape, dtype=p.dtype, device="meta")


def _node_ip() -> str:
    """This node's address as Ray knows it, or loopback outside Ray."""
    with contextlib.suppress(ImportError):
        import ray
        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    return os.environ.get("MASTER_ADDR", "127.0.0.1")
