"""Metrics: one JSON line per step in `metrics.jsonl` plus TensorBoard scalars, and phase timers."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path


class MetricsLogger:
    """Append metrics for one stage (e.g. "rl", "sft") of a run.

    Each record is `{"stage": stage, "step": step, **metrics}`. TensorBoard events go to
    `<run_dir>/tb/<stage>`. `truncate_after(step)` drops records newer than a checkpoint on resume,
    so a resumed run's log reads as if it had never stopped.
    """

    def __init__(self, run_dir: str | Path, stage: str, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(Path(run_dir) / "tb" / stage))

    def log(self, step: int, metrics: dict) -> None:
        record = {"stage": self.stage, "step": step, **metrics}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{self.stage}/{key}", value, step)
            self.writer.flush()

    def truncate_after(self, step: int) -> None:
        """Remove this stage's records with `step > step` (records of other stages are kept)."""
        if not self.path.exists():
            return
        records = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        kept = [r for r in records if not (r["stage"] == self.stage and r["step"] > step)]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path, stage: str | None = None) -> list[dict]:
    """All records of `metrics.jsonl` (of one stage if given), in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if stage is None or r["stage"] == stage]


class PhaseTimer:
    """Wall seconds per named phase, e.g. `with timer("rollout"): ...`; `pop()` returns and resets them."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        out, self.seconds = {f"time/{k}_s": v for k, v in self.seconds.items()}, {}
        return out
