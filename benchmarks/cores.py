"""Dedicated cores for a benchmark: XLA's compute on one core, everything else on the others.

The stand-in for a GPU host on a CPU-only machine. On a shared host XLA's compute threads and
the orchestration (the tick's Python, Prefect's threads, the ephemeral API server, Postgres)
run on the same cores, so an orchestration that never keeps the device waiting still slows
the generation it overlaps (it *steals the compute's cores*). With :meth:`Cores.dedicated` the
compute gets one core of its own and the orchestration the rest, so what is left of the
overhead is the orchestration keeping the compute idle (or doing bookkeeping on its critical
path), as on a GPU host where the device computes while the CPU orchestrates.

What is "compute": the threads XLA's CPU client creates when its backend starts (its executor
threads and intra-op Eigen pool; :meth:`Cores.start` records them, and threads they create
later inherit their mask). Compilation runs on the calling thread and its LLVM workers, so it
counts as host work (on a GPU host XLA compiles on the CPU too). Everything else in this process
and in its child processes (Postgres, the API server) is pinned to the other cores; threads and
processes started later inherit their creator's mask. Linux only (``os.sched_setaffinity`` on
thread ids from ``/proc``). Other processes on the machine are not touched: a shared machine's
load still lands on every core.
"""

from __future__ import annotations

import os
from pathlib import Path


def _tids(pid: int | str = "self") -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()


def _descendants(root: int) -> list[int]:
    """Child processes of ``root``, recursively (from ``/proc/*/stat``)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


class Cores:
    """``start()`` before anything starts JAX's backend; then :meth:`dedicated` / :meth:`shared`
    switch the whole process tree between the two layouts (idempotent)."""

    def __init__(self) -> None:
        self.all = sorted(os.sched_getaffinity(0))
        self.compute_core = {self.all[0]}
        self.host_cores = set(self.all[1:]) or set(self.all)
        self.compute: set[int] = set()
        self.mode = "shared"

    def start(self) -> "Cores":
        import huntflow.engine  # noqa: F401  (sets the CPU device count before JAX's backend starts)
        import jax

        before = _tids()
        jax.devices()  # the CPU client starts its threads now
        self.compute = _tids() - before
        return self

    def _apply(self, compute: set[int], host: set[int]) -> int:
        me, pinned = os.getpid(), 0
        for pid in [me, *_descendants(me)]:
            for tid in _tids(pid):
                try:
                    os.sched_setaffinity(tid, compute if pid == me and tid in self.compute else host)
                    pinned += 1
                except OSError:  # the thread ended meanwhile
                    pass
        return pinned

    def dedicated(self) -> int:
        """XLA's compute threads on one core, every other thread of the process tree on the rest."""
        if not self.compute or len(self.all) < 2:
            raise RuntimeError("dedicated cores need Cores.start() first and at least 2 cores")
        self.mode = "dedicated"
        return self._apply(self.compute_core, self.host_cores)

    def shared(self) -> int:
        """Every thread on every core (the machine as it is)."""
        self.mode = "shared"
        return self._apply(set(self.all), set(self.all))

    def describe(self) -> dict:
        return {"mode": self.mode, "compute_core": sorted(self.compute_core), "host_cores": sorted(self.host_cores),
                "compute_threads": len(self.compute)}
