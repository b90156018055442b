"""Warm worker processes for function models, each killable with its whole process group.

A :class:`FunctionPool` keeps ``workers`` processes running :mod:`worker` (stdlib bootstrap +
the user's module, never JAX), each a session leader (``start_new_session``), so that a
candidate past its walltime is ended with ``killpg(SIGKILL)`` — the function and anything it
spawned — and its worker is replaced before the next candidate. Pools are cached per
(function, pythonpath, workers) for the life of the process (a warm worker keeps its imports
between generations) and closed at exit; a worker also exits by itself when its parent dies.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from huntflow.engine.external.outcome import Outcome, check_metrics, failed, own_category, read_tail

WORKER = Path(__file__).with_name("worker.py")
BOOT_SECONDS = float(os.environ.get("HUNTFLOW_WORKER_BOOT_SECONDS", "300"))
"""How long a worker may take to import the function (not counted in any walltime)."""


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads, and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered
        pass


class _Worker:
    def __init__(self, target: str, env: dict[str, str]):
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(WORKER), str(theirs.fileno()), target], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )
        theirs.close()
        self.conn = Connection(mine.detach())
        self.ready: dict[str, Any] | None = None

    def boot(self) -> dict[str, Any]:
        """The worker's ready message (``{"ready": False, ...}`` if its import failed)."""
        if self.ready is None:
            if not self.conn.poll(BOOT_SECONDS):
                self.ready = {"ready": False, "type": "TimeoutError",
                              "message": f"the worker did not import the function within {BOOT_SECONDS:.0f} s"}
            else:
                try:
                    self.ready = json.loads(self.conn.recv_bytes())
                except (EOFError, OSError):
                    self.ready = {"ready": False, "type": "EOFError",
                                  "message": f"the worker exited while importing (code {self.proc.poll()})"}
        return self.ready

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        kill_group(self.proc)


class FunctionPool:
    """``workers`` warm processes evaluating one function; :meth:`call` is thread-safe per slot."""

    def __init__(self, target: str, *, workers: int, pythonpath: tuple[str, ...] = ()):
        self.target, self.workers = target, int(workers)
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        # the worker imports what this process can: the spec's pythonpath, then this process's path
        path = [*pythonpath, *(p for p in sys.path if p and os.path.isdir(p))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
        self.env = env
        self.slots: list[_Worker | None] = [None] * self.workers
        self.lock = threading.Lock()  # one batch at a time

    def _slot(self, i: int) -> _Worker:
        w = self.slots[i]
        if w is None or w.proc.poll() is not None:
            if w is not None:
                w.close()
            w = self.slots[i] = _Worker(self.target, self.env)
        return w

    def call(self, slot: int, request: dict[str, Any], declared: tuple[str, ...], walltime: float) -> Outcome:
        """Evaluate one candidate on worker ``slot`` under ``walltime`` seconds (never raises)."""
        workdir = Path(request["workdir"])
        w = self._slot(slot)
        ready = w.boot()
        if not ready.get("ready"):
            self.slots[slot] = None
            w.close()
            return failed(declared, "exception", type=ready.get("type"), message=ready.get("message"),
                          traceback=ready.get("traceback"), where="importing the function")
        t0 = time.perf_counter()
        try:
            w.conn.send_bytes(json.dumps(request).encode())
            if not w.conn.poll(walltime):
                self.slots[slot] = None
                w.close()
                out = failed(declared, "timeout", message=f"killed after {walltime:g} s (walltime)",
                             walltime_seconds=walltime)
                out.seconds = time.perf_counter() - t0
                return out
            reply = json.loads(w.conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            self.slots[slot] = None
            w.close()
            out = failed(declared, "exit_code", code=w.proc.returncode,
                         message="the worker process died during the call",
                         stderr_tail=read_tail(workdir / "stderr.txt"))
            out.seconds = time.perf_counter() - t0
            return out
        elapsed = time.perf_counter() - t0
        if reply.get("ok"):
            out = check_metrics(reply.get("value"), declared)
        else:
            category = own_category(reply.get("category")) or "exception"
            out = failed(declared, category, type=reply.get("type"), message=reply.get("message"),
                         traceback=reply.get("traceback"))
        out.seconds = elapsed
        return out

    def close(self) -> None:
        for i, w in enumerate(self.slots):
            if w is not None:
                w.close()
                self.slots[i] = None


SECRET_ENV = frozenset({"SUPABASE_DB_URL", "PREFECT_API_KEY", "SUPABASE_SERVICE_ROLE_KEY"})
"""Never handed to a simulator: it has no business with the database or Prefect."""

_POOLS: dict[tuple, FunctionPool] = {}
_POOLS_LOCK = threading.Lock()


def pool(target: str, *, workers: int, pythonpath: tuple[str, ...] = ()) -> FunctionPool:
    """The process's warm pool for this function (created on first use)."""
    key = (target, tuple(pythonpath), int(workers))
    with _POOLS_LOCK:
        p = _POOLS.get(key)
        if p is None:
            p = _POOLS[key] = FunctionPool(target, workers=workers, pythonpath=tuple(pythonpath))
        return p


def close_pools() -> None:
    """Stop every warm worker of this process."""
    with _POOLS_LOCK:
        for p in _POOLS.values():
            p.close()
        _POOLS.clear()


atexit.register(close_pools)
