"""No orphaned Prefect API: a watchdog ends the ephemeral server when its parent dies.

Without ``PREFECT_API_URL`` Prefect starts a temporary API server as a child process
(``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn ...``) and stops it
from an ``atexit`` handler — which never runs when the command is killed (SIGKILL, OOM), so the
server was left running, holding its port and SQLite file. :func:`start_guarded` starts that
same server up front (Prefect reuses it: it is a per-process singleton) and a tiny watchdog
process that stops it as soon as the parent is gone.

The server starts without registering Prefect's block types (``server.register_blocks_on_start``
off): on a fresh ``PREFECT_HOME`` that registration takes most of its start (about 10 s of a
quiet 2-core machine), and nothing huntflow runs on the ephemeral API uses blocks (its UI is off;
a ``prefect server`` started later on the same home registers them itself). :func:`start_soon`
starts it in a thread, so a command overlaps it with its own start (the embedded Postgres, JAX).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

WATCHDOG = """
import os, signal, sys, time
parent, child = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while os.getppid() == parent and alive(child):
    time.sleep(0.25)
if alive(child):
    os.kill(child, signal.SIGTERM)
    for _ in range(40):
        time.sleep(0.125)
        if not alive(child):
            break
    else:
        os.kill(child, signal.SIGKILL)
"""

_started: dict[str, int] = {}
_LOCK = threading.Lock()


def _watch(server_pid: int) -> int:
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(server_pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True).pid


def start_guarded() -> int | None:
    """Start the ephemeral Prefect API now, watched; returns the watchdog's pid, or None when
    an API is configured (``PREFECT_API_URL``) or ephemeral mode is off.

    The watchdog starts as soon as the server's process exists, not once it answers: under
    load the server takes a minute to come up, and a kill in that minute left it orphaned. A
    thread polls ``server.server_process`` while ``start()`` waits for the health check (Prefect
    sets it right after spawning, and again when it retries on another port).
    """
    with _LOCK:  # one start per process, whichever thread asks first; the others wait for it
        return _start_guarded()


def start_soon() -> threading.Thread:
    """:func:`start_guarded` in a daemon thread (join it, or call :func:`start_guarded`, which
    waits for the start under way, before the first flow run)."""
    thread = threading.Thread(target=_start_quietly, name="ephemeral-api-start", daemon=True)
    thread.start()
    return thread


def _start_quietly() -> None:
    try:
        start_guarded()
    except Exception:  # the caller's own start_guarded() raises it again, in its thread
        pass


def _start_guarded() -> int | None:
    from prefect.settings import get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    if "watchdog" in _started:
        return _started["watchdog"]
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    watched: dict[int, int] = {}  # server pid -> watchdog pid
    done = threading.Event()

    def guard() -> None:
        proc = server.server_process
        if proc is not None and proc.pid not in watched:
            watched[proc.pid] = _watch(proc.pid)

    def poll() -> None:
        while not done.is_set():
            guard()
            done.wait(0.005)

    thread = threading.Thread(target=poll, name="ephemeral-api-guard", daemon=True)
    thread.start()
    try:
        with temporary_settings(updates={"server.register_blocks_on_start": False}):  # exported to the server's env
            server.start()
    finally:
        done.set()
        thread.join()
        guard()
    if server.server_process is None:
        return None
    _started["watchdog"], _started["server"] = watched[server.server_process.pid], server.server_process.pid
    return _started["watchdog"]
