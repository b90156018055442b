"""The embedded Postgres (pgserver) under ``$HUNTFLOW_DATA_DIR/pgdata`` and its lifecycle.

pgserver reference-counts the processes using a data dir (``pgdata/.handle_pids.json``) and the
last one to exit stops the server. This module makes that dependable:

* **dead handles are pruned** before every start, so a killed process no longer keeps the server
  up for ever (nor makes the last live one think it is not the last);
* **``huntflow db start`` pins the server** (``pgdata/huntflow.keep``): every huntflow process
  then leaves it running when it exits, so psql or Studio sessions reading it are not cut off,
  until ``huntflow db stop``;
* **a half-initialised data dir** (a first start killed during initdb) is recognised — no
  ``huntflow.ready`` marker and not a complete cluster — moved aside (never deleted) to
  ``pgdata.incomplete-<time>`` and initialised afresh, with one line on stderr; a complete one
  that fails to start is refused with one line pointing at its log.

First starts are serialised by a file lock next to the data dir.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huntflow.errors import StoreError

KEEP = "huntflow.keep"
READY = "huntflow.ready"
HANDLES = ".handle_pids.json"

_SERVERS: dict[Path, Any] = {}
_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


def pinned(pgdata: Path) -> bool:
    """Whether ``huntflow db start`` asked the server to stay up."""
    return (pgdata / KEEP).exists()


def _complete(pgdata: Path) -> bool:
    base = pgdata / "base"
    return ((pgdata / "PG_VERSION").exists() and (pgdata / "global" / "pg_control").exists()
            and (pgdata / "postgresql.conf").exists() and base.is_dir() and len(list(base.iterdir())) >= 3)


def state(pgdata: Path) -> str:
    """``absent`` (nothing there yet), ``ready`` or ``incomplete`` (an interrupted initdb)."""
    if not pgdata.exists() or not any(pgdata.iterdir()):
        return "absent"
    if (pgdata / READY).exists() or _complete(pgdata):
        return "ready"
    return "incomplete"


def postmaster_pid(pgdata: Path) -> int | None:
    """The running server's pid, from ``postmaster.pid``, or None when it is not running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def live_handles(pgdata: Path) -> list[int]:
    """Pids in pgserver's handle list that are still alive; dead ones are removed from it."""
    path = pgdata / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    alive = [p for p in pids if _alive(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return alive


@contextlib.contextmanager
def _first_start_lock(pgdata: Path) -> Iterator[None]:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with open(pgdata.parent / f".{pgdata.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _quarantine(pgdata: Path) -> Path:
    aside = pgdata.with_name(f"{pgdata.name}.incomplete-{dt.datetime.now():%Y%m%dT%H%M%S}")
    pgdata.rename(aside)
    print(f"huntflow: the embedded database at {pgdata} was half-initialised (a first start was interrupted);"
          f" moved it to {aside} and initialising a new one", file=sys.stderr)
    return aside


def server(pgdata: Path, *, keep: bool = False) -> Any:
    """This process's handle on the embedded server for ``pgdata``, starting it when needed.

    Args:
        keep: pin the server (``huntflow db start``): it outlives every huntflow process.
    Raises:
        StoreError: the data dir cannot be started (the message names it and its log).
    """
    pgdata = pgdata.resolve()
    with _LOCK:
        if pgdata in _SERVERS:
            return _SERVERS[pgdata]
        with _first_start_lock(pgdata):
            if state(pgdata) == "incomplete":
                if postmaster_pid(pgdata) is not None:
                    raise StoreError(f"the embedded database at {pgdata} is incomplete but a server is running on it;"
                                     " stop it (huntflow db stop --force) and retry")
                _quarantine(pgdata)
            if pgdata.exists():
                live_handles(pgdata)
            handle = _start(pgdata, keep or pinned(pgdata))
            (pgdata / READY).touch()
            if keep:
                (pgdata / KEEP).touch()
        _SERVERS[pgdata] = handle
        atexit.register(_honour_pin, handle, pgdata)  # runs before pgserver's own handler (LIFO)
        return handle


def _start(pgdata: Path, keep: bool) -> Any:
    import subprocess

    import pgserver

    last: Exception | None = None
    for _ in range(2):  # a postmaster.pid caught half-written by a concurrent start: once more
        try:
            return pgserver.get_server(pgdata, cleanup_mode=None if keep else "stop")
        except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            last = e
            time.sleep(1.0)
    raise StoreError(f"the embedded database at {pgdata} did not start ({type(last).__name__});"
                     f" see {pgdata / 'log'}") from last


def _honour_pin(handle: Any, pgdata: Path) -> None:
    """At exit (or release): leave a pinned server running, stop an unpinned one if last."""
    handle.cleanup_mode = None if pinned(pgdata) else "stop"
    live_handles(pgdata)


def url(pgdata: Path) -> str:
    """The connection URL of the embedded server (started when needed)."""
    return server(pgdata).get_uri()


def release_all() -> None:
    """Drop this process's handles (the last user stops an unpinned server)."""
    with _LOCK:
        for pgdata, handle in _SERVERS.items():
            _honour_pin(handle, pgdata)
            handle.cleanup()
        _SERVERS.clear()


def status(pgdata: Path) -> dict[str, Any]:
    """What ``huntflow db status`` shows; starts nothing."""
    pgdata = pgdata.resolve()
    pid = postmaster_pid(pgdata) if pgdata.exists() else None
    out: dict[str, Any] = {"pgdata": str(pgdata), "state": state(pgdata), "running": pid is not None, "pid": pid,
                           "pinned": pinned(pgdata), "handles": live_handles(pgdata) if pgdata.exists() else []}
    out["url"] = running_url(pgdata) if pid is not None else None
    return out


def running_url(pgdata: Path) -> str | None:
    """The URL of the running server (from ``postmaster.pid``), or None."""
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, OSError, ValueError):
        return None
    return info.get_uri() if info is not None and info.is_running() else None


def stop(pgdata: Path, *, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """Unpin the server and stop it if no live huntflow process uses it (``force``: stop it now,
    a fast shutdown that ends open sessions). Returns the status after."""
    pgdata = pgdata.resolve()
    (pgdata / KEEP).unlink(missing_ok=True)
    pid = postmaster_pid(pgdata)
    others = [p for p in live_handles(pgdata) if p != os.getpid()]
    if pid is not None and (force or not others):
        os.kill(pid, signal.SIGINT)  # Postgres' fast shutdown
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            raise StoreError(f"the embedded server (pid {pid}) did not stop within {timeout:.0f} s")
    out = status(pgdata)
    out["still_used_by"] = [] if force else others
    return out
