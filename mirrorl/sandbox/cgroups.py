"""Pre-created cgroups, one per worker slot, reused run after run (cgroup v1 memory and pids controllers).

The Kimi k1.5 sandbox reuses pre-created cgroups because creating and deleting them per run is slow at high
concurrency (report section 2.6.4); so does this one. Each slot caps the total memory of a run (all its
processes, and the tmpfs files it writes, which the per-process address-space limit does not see) and its
number of processes, tells an out-of-memory kill from other deaths, and lets the service kill every process
of a run, even one that left its session.

Only cgroup v1 with writable memory and pids hierarchies is supported, and only as root; elsewhere
`CgroupSlots.create` raises OSError and the layer is reported off. The slots live under the service's own
cgroups, so limits set on the service still apply to the runs.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_SLACK_MB = 32  # bubblewrap's own processes and page tables


class CgroupSlots:
    """``workers`` memory+pids cgroup pairs named ``mirrorl-sandbox-<pid>/slot<i>``; remove with `close`."""

    def __init__(self, memory: list[Path], pids: list[Path]):
        self.memory, self.pids = memory, pids

    @classmethod
    def create(cls, workers: int) -> "CgroupSlots":
        if os.geteuid() != 0:
            raise OSError("cgroups need root")
        own = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
        if "memory" not in own or "pids" not in own:
            raise OSError("no cgroup v1 memory and pids hierarchies (cgroup v2 is not supported)")
        parents = [ROOT / c / own[c].lstrip("/") / f"mirrorl-sandbox-{os.getpid()}" for c in ("memory", "pids")]
        slots = cls([], [])
        try:
            for parent, paths in zip(parents, (slots.memory, slots.pids)):
                parent.mkdir(exist_ok=True)
                for i in range(workers):
                    (parent / f"slot{i}").mkdir(exist_ok=True)
                    paths.append(parent / f"slot{i}")
        except OSError:
            slots.close()
            raise
        return slots

    def enter_command(self, slot: int) -> list[str]:
        """A command prefix that moves itself into ``slot`` and then runs the rest of the command."""
        return ["sh", "-c", 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', "sh",
                str(self.memory[slot] / "cgroup.procs"), str(self.pids[slot] / "cgroup.procs")]

    def prepare(self, slot: int, memory_mb: int, processes: int) -> None:
        """Set the slot's limits for the next run and reset its counters."""
        memory = self.memory[slot]
        (memory / "memory.limit_in_bytes").write_text(str((memory_mb + _SLACK_MB) << 20))
        for counter in ("memory.failcnt", "memory.max_usage_in_bytes"):
            (memory / counter).write_text("0")
        (self.pids[slot] / "pids.max").write_text(str(processes + 4))  # + bubblewrap's, sh's and prlimit's

    def oom_kills(self, slot: int) -> int:
        """How many processes the kernel killed for memory in ``slot`` since the cgroup was created."""
        for line in (self.memory[slot] / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def max_usage(self, slot: int) -> int:
        return int((self.memory[slot] / "memory.max_usage_in_bytes").read_text())

    def kill_all(self, slot: int) -> None:
        """SIGKILL every process in ``slot``."""
        for path in (self.memory[slot], self.pids[slot]):
            for pid in (path / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def empty(self, slot: int) -> bool:
        """True when the kernel has released every process of ``slot`` (zombies included)."""
        return int((self.pids[slot] / "pids.current").read_text()) == 0

    def close(self) -> None:
        """Kill what is left in the slots and remove them."""
        for slot in range(min(len(self.memory), len(self.pids))):
            try:
                self.kill_all(slot)
            except OSError:
                pass
        for paths in (self.memory, self.pids):
            for path in paths:
                _rmdir(path)
            if paths:
                _rmdir(paths[0].parent)


def _rmdir(path: Path) -> None:
    for _ in range(50):  # killed processes take a moment to leave the cgroup
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
