"""Where the RL loop's workers live: `make_backend` picks the local or the Ray backend (`distributed.backend`).

The master loop (`mirrorl.rl.train_rl`) is the same for both; it talks to a `Backend`:

    engine.generate(...)               rollouts and held-out evaluation (a `RolloutEngine`)
    update(batch, advantages, ...)     one iteration's optimizer steps on the trainer worker(s)
    push_weights(version)              trainer -> rollout engines (`mirrorl.weights.transfer`)
    save_checkpoint / save_final / load_optimizer_state / close

`LocalBackend` keeps one `TrainerWorker` in the calling process and the engine named by `rollout.engine`:
`hf` on the same module, so weight transfer is free, or `vllm` with its own copy, updated in place. `RayBackend` (`mirrorl.distributed.ray_backend`) places rollout and
trainer workers as Ray actors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from mirrorl.config import Config
from mirrorl.distributed.workers import TrainerWorker
from mirrorl.rollout.engine import RolloutEngine, make_engine
from mirrorl.weights.transfer import InProcessTransfer


class Backend(Protocol):
    """The workers of one RL run, seen from the master."""

    engine: RolloutEngine
    tokenizer: object

    def update(self, batch: list, advantages: torch.Tensor, nominal_size: float, iteration: int, lr: float) -> dict:
        """`TrainerWorker.update` on every trainer; returns the step statistics.
        Raises: TrainingError on a non-finite loss."""
        ...

    def push_weights(self, version: int) -> dict:
        """Send the trainer's weights to every engine (`WeightTransfer.push`); returns transfer statistics."""
        ...

    def save_checkpoint(self, run_dir: Path, step: int, state: dict, keep: int) -> None:
        """Write checkpoint `step`: weights, tokenizer, the master's `state` and the optimizer state."""
        ...

    def save_final(self, path: Path) -> None: ...

    def load_optimizer_state(self, state: dict) -> None: ...

    def close(self) -> None: ...


class LocalBackend:
    """Trainer and engine in the calling process, sharing one `nn.Module` (zero-copy weight transfer)."""

    def __init__(self, cfg: Config, model_path: str | Path):
        self.trainer = TrainerWorker(model_path, cfg)  # threads: as the command set them
        self.trainer.connect()
        self.tokenizer = self.trainer.tokenizer
        self.engine = make_engine(cfg, self.trainer.module, self.tokenizer, str(model_path))
        self.transfer = InProcessTransfer(self.engine, None if cfg.rollout.engine == "hf" else self.trainer.module)

    def update(self, batch, advantages, nominal_size, iteration, lr) -> dict:
        return self.trainer.update(batch, advantages, nominal_size, iteration, lr)

    def push_weights(self, version: int) -> dict:
        return self.transfer.push(version)

    def save_checkpoint(self, run_dir, step, state, keep) -> None:
        self.trainer.save_checkpoint(run_dir, step, state, keep)

    def save_final(self, path) -> None:
        self.trainer.save_final(path)

    def load_optimizer_state(self, state: dict) -> None:
        self.trainer.load_optimizer_state(state)

    def close(self) -> None:
        self.trainer.close()


def make_backend(cfg: Config, model_path: str | Path) -> Backend:
    """The backend named by `cfg.distributed.backend`, its workers started from `model_path`."""
    if cfg.distributed.backend == "ray":
        from mirrorl.distributed.ray_backend import RayBackend  # Ray is imported only when used
        return RayBackend(cfg, model_path)
    return LocalBackend(cfg, model_path)
