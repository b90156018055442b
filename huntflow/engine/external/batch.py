"""Run one generation of a function or command model: candidates concurrently, each capped.

:func:`run_external` hands candidates to ``workers`` threads; each drives one warm function
worker (:mod:`functions`) or one program at a time (:mod:`commands`) under the walltime. One
bad candidate never fails the batch: its outcome is a failure category. Categories listed in
``retries.categories`` are re-run up to ``retries.max`` times, waiting
``backoff_seconds * 2**k`` (k: retries of that category so far in this batch, capped at 6), so
a flaky licence server or node is given time instead of being hammered.

Each candidate gets a fresh workdir ``<root>/c<index>`` and the seed
:func:`candidate_seed` ``(seed, index)``: re-running a candidate alone reproduces it.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from huntflow.engine.external import commands, functions
from huntflow.engine.external.outcome import Outcome, failed

DEFAULT_WALLTIME = 3600.0


@dataclass(frozen=True)
class Retries:
    max: int = 0
    categories: tuple[str, ...] = ("timeout", "exit_code")
    backoff_seconds: float = 1.0


@dataclass(frozen=True)
class RunSettings:
    """What :func:`run_external` needs: the model, its declared metrics and how to run it."""

    kind: str  # "function" | "command"
    target: str | tuple[str, ...]
    metrics: tuple[str, ...]
    workers: int
    walltime_seconds: float = DEFAULT_WALLTIME
    retries: Retries = field(default_factory=Retries)
    pythonpath: tuple[str, ...] = ()


def candidate_seed(seed: int, index: int) -> int:
    """The int seed a function/command gets for candidate ``index`` of a generation seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def run_external(settings: RunSettings, requests: list[dict[str, Any]], workdir_root: Path) -> list[Outcome]:
    """Evaluate ``requests`` (dicts with ``params``, ``fidelity``, ``seed``, ``index``).

    Returns one :class:`Outcome` per request, in order. Never raises for a candidate's failure.
    """
    workdir_root = Path(workdir_root)
    workdir_root.mkdir(parents=True, exist_ok=True)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(requests)):
        todo.put(i)
    outcomes: list[Outcome | None] = [None] * len(requests)
    backoff = _Backoff(settings.retries)
    n = max(1, min(settings.workers, len(requests)))
    fpool = (functions.pool(settings.target, workers=settings.workers, pythonpath=settings.pythonpath)
             if settings.kind == "function" else None)

    names = _workdir_names([int(r["index"]) for r in requests])

    def one(slot: int, i: int) -> Outcome:
        req = requests[i]
        workdir = workdir_root / names[i]
        if workdir.exists():
            shutil.rmtree(workdir)  # a fresh directory for every run of a candidate
        workdir.mkdir(parents=True)
        req = {**req, "workdir": str(workdir)}
        if fpool is not None:
            return fpool.call(slot, req, settings.metrics, settings.walltime_seconds)
        return commands.run_command(tuple(settings.target), req, settings.metrics, settings.walltime_seconds)

    def drive(slot: int) -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            tries = 0
            while True:
                tries += 1
                out = one(slot, i)
                if out.category is None or tries > settings.retries.max or not backoff.wait(out.category):
                    break
            out.tries = tries
            outcomes[i] = out

    lock = fpool.lock if fpool is not None else threading.Lock()
    with lock:
        threads = [threading.Thread(target=drive, args=(s,), name=f"huntflow-external-{s}", daemon=True)
                   for s in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [o if o is not None else failed(settings.metrics, "exception", message="the candidate was not run")
            for o in outcomes]


def _workdir_names(indices: list[int]) -> list[str]:
    """``c<index>``; a candidate given twice in one batch gets ``c<index>-<k>`` for the k-th repeat."""
    seen: dict[int, int] = {}
    out = []
    for index in indices:
        k = seen.get(index, 0)
        seen[index] = k + 1
        out.append(f"c{index:05d}" + (f"-{k}" if k else ""))
    return out


class _Backoff:
    """Shared across a batch: the k-th retry of a category waits ``backoff_seconds * 2**k``."""

    def __init__(self, retries: Retries):
        self.retries = retries
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def wait(self, category: str) -> bool:
        """Sleep before retrying ``category``; False when it is not retried at all."""
        if category not in self.retries.categories:
            return False
        with self.lock:
            k = self.counts.get(category, 0)
            self.counts[category] = k + 1
        time.sleep(self.retries.backoff_seconds * 2 ** min(k, 6))
        return True


def requests_for(param_names: tuple[str, ...], params: np.ndarray, *, fixed: Mapping[str, Any],
                 fidelity: Mapping[str, Any], seed: int, indices: np.ndarray,
                 space: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One request per row: the row's values by name plus ``fixed``, the rung, the candidate seed.

    ``space`` (the spec's ``space`` as JSON) turns a model matrix back into the user's values: a
    categorical's index into its choice, an integer parameter into an ``int``, a fixed one into
    its value; without it (or for a plain bound) a value is a float.
    """
    out = []
    for row, index in zip(np.asarray(params), np.asarray(indices)):
        values: dict[str, Any] = {n: decode_value(v, (space or {}).get(n)) for n, v in zip(param_names, row)}
        values.update(fixed)
        out.append({"params": values, "fidelity": dict(fidelity), "seed": candidate_seed(seed, int(index)),
                    "index": int(index)})
    return out


def decode_value(v: Any, dim: Any) -> Any:
    """A model-matrix entry as the value a function or program is given (see :func:`requests_for`)."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(dim, Mapping):
        if "choices" in dim:
            return dim["choices"][int(round(float(v)))]
        if "value" in dim and "low" not in dim:
            return dim["value"]
        if dim.get("type") == "int":
            return int(round(float(v)))
    return float(v)
