"""No orphaned Prefect API: a watchdog ends the ephemeral server when its parent dies.

Without ``PREFECT_API_URL`` Prefect starts a temporary API server as a child process
(``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn ...``) and stops it
from an ``atexit`` handler — which never runs when the command is killed (SIGKILL, OOM), so the
server was left running, holding its port and SQLite file. :func:`start_guarded` starts that
same server up front, with a tiny watchdog process that stops it as soon as the parent is gone,
polls its health every 50 ms, points this process's Prefect clients at it (the ``api.url`` of
Prefect's process-wide settings, not the environment: children don't inherit it) and stops it at
exit, as ``SubprocessASGIServer`` would. Neither the spawn nor the clients import
``prefect.server`` in this process (seconds of CPU under the GIL, while the command warms up).

The server starts without registering Prefect's block types (``server.register_blocks_on_start``
off): on a fresh ``PREFECT_HOME`` that registration takes most of its start (about 10 s of a
quiet 2-core machine), and nothing huntflow runs on the ephemeral API uses blocks (its UI is off;
a ``prefect server`` started later on the same home registers them itself), and a fresh home's
SQLite database is created from a schema dump rather than by Prefect's migrations (about 5 s of
CPU: :mod:`huntflow.flows.prefect_schema`). :func:`start_soon`
starts it in a thread, so a command overlaps it with its own start (the embedded Postgres, JAX).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

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
_spawned: list[tuple] = []
"""A server :func:`start_soon` spawned that has not answered yet: (server, watchdog, timeout)."""
_LOCK = threading.Lock()


def _watch(server_pid: int) -> int:
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(server_pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True).pid


def start_guarded() -> int | None:
    """Start the ephemeral Prefect API now, watched; returns the watchdog's pid, or None when
    an API is configured (``PREFECT_API_URL``) or ephemeral mode is off.

    The watchdog starts as soon as the server's process exists, not once it answers: under
    load the server takes a minute to come up, and a kill in that minute left it orphaned.
    """
    with _LOCK:  # one start per process, whichever thread asks first; the others wait for it
        return _start_guarded()


def start_soon() -> threading.Thread:
    """Spawn the server now, in the calling thread, and wait for its answer in a daemon thread
    (join it, or call :func:`start_guarded`, which waits for the start under way, before the
    first flow run). The spawn needs Prefect's settings (about 1.5 s of imports this process
    makes anyway): from a thread it competed for the GIL with the command's own imports and
    the server started seconds later."""
    with _LOCK:
        if "watchdog" not in _started and not _spawned:
            try:
                got = _spawn_guarded()
            except Exception:  # start_guarded() tries again and says why
                got = None
            if got is not None:
                _spawned.append(got)
    thread = threading.Thread(target=_start_quietly, name="ephemeral-api-start", daemon=True)
    thread.start()
    return thread


def _start_quietly() -> None:
    try:
        start_guarded()
    except Exception:  # the caller's own start_guarded() raises it again, in its thread
        pass


def uvicorn_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment ``SubprocessASGIServer`` runs its server with (prefect
    3.8's ``_run_uvicorn_command``; ``tests/flows/test_ephemeral.py`` holds them equal), built
    without importing ``prefect.server``: that import takes seconds, and the server's own start
    (the same import, the database migrations) now runs beside it instead of after it."""
    import prefect
    from prefect.settings import get_current_settings

    args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
            "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on"]
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           **get_current_settings().to_environment_variables(exclude_unset=True)}
    return args, env


SERVER_DEFAULTS = {
    # Every state event also went through the reactive triggers (automations) and the
    # stream-out to live subscribers (the UI's event feed): a throwaway API with its UI off has
    # no automations to run nor anyone subscribed, and each cost it CPU per event. Events are
    # still stored (event persister) and task runs recorded.
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    # The events websocket between this process and its own API on 127.0.0.1 uncompressed
    # (uvicorn's option; the client takes what the server offers): no deflate/inflate per event.
    "UVICORN_WS_PER_MESSAGE_DEFLATE": "false",
}
"""Settings for the ephemeral API server alone, in its environment where this process's
environment does not set them (a user's value wins); never in this process's environment, so
a ``prefect server`` that a child process starts (the user's own) is never given them."""


def server_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` (the server's, from :func:`uvicorn_command`) with :data:`SERVER_DEFAULTS` it lacks."""
    return {**SERVER_DEFAULTS, **env}


def _free_port() -> int:
    for _ in range(50):  # Prefect's range for the ephemeral API
        port = random.randrange(8000, 9000)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    from huntflow.errors import HuntflowError

    raise HuntflowError("no free port for the ephemeral Prefect API in 8000-8999")


def _spawn() -> tuple[subprocess.Popen, int, int]:
    """The server process, on a free port, and its watchdog (started before anything else)."""
    port = _free_port()
    args, env = uvicorn_command(port)
    log = server_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(args, env=server_env(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return proc, port, _watch(proc.pid)


def server_log() -> Path:
    """Where the ephemeral API's own output goes (``$PREFECT_HOME/ephemeral-api.log``): not the
    user's terminal, where a server stopped at exit prints the tracebacks of the event flush it
    was cancelled in (harmless: that API's state is thrown away with it)."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home) / "ephemeral-api.log"


def _start_guarded() -> int | None:
    if "watchdog" in _started:  # ours (the adopted URL is in the settings now)
        return _started["watchdog"]
    got = _spawned.pop() if _spawned else _spawn_guarded()
    if got is None:
        return None
    server, watchdog, timeout = got
    try:
        proc, watchdog = _wait_healthy(server, watchdog, timeout)
    except BaseException:
        server.stop()
        raise
    _adopt(server.api_url)
    _started["watchdog"], _started["server"] = watchdog, proc.pid
    return watchdog


def _spawn_guarded() -> tuple | None:
    """Spawn the server and its watchdog: ``(server, watchdog pid, startup timeout)``, or None
    when an API is configured or ephemeral mode is off."""
    from prefect.settings import get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    _seed_database(settings)
    with temporary_settings(updates={"server.register_blocks_on_start": False}):  # exported to the server's env
        proc, port, watchdog = _spawn()
    server = _Server(proc, port)
    atexit.register(server.stop)
    return server, watchdog, settings.server.ephemeral.startup_timeout_seconds


def server_pid() -> int | None:
    """The pid of the API server this process started, or None."""
    return _started.get("server")


class _Server:
    """The spawned server as ``SubprocessASGIServer`` keeps one: process, port, stop at exit."""

    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.server_process, self.port = proc, port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def stop(self) -> None:  # as SubprocessASGIServer.stop: terminate, 5 s, kill
        proc, self.server_process = self.server_process, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _adopt(api_url: str) -> None:
    """Point this process's Prefect clients at the started API, as ``PREFECT_API_URL`` would,
    through Prefect's process-wide settings context rather than the environment: child
    processes (slurm jobs, chained ticks) must not inherit the URL of a server that ends with
    this process. Prefect's clients then never import ``prefect.server`` here (its
    ``SubprocessASGIServer`` singleton is what they would ask otherwise): about 3 s of CPU of
    this process, under the GIL, while the command warms up."""
    import prefect.context

    current = prefect.context.SettingsContext.get() or prefect.context.get_settings_context()
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(
        profile=current.profile, settings=current.settings.copy_with_update(updates={"api.url": api_url}))


def _seed_database(settings) -> None:
    """A fresh home's SQLite database from the packaged schema dump instead of Prefect's
    migrations (:mod:`huntflow.flows.prefect_schema`); a failure leaves it to the migrations."""
    from huntflow.flows import prefect_schema

    url = settings.server.database.connection_url
    try:
        prefect_schema.seed(url.get_secret_value() if hasattr(url, "get_secret_value") else str(url or ""))
    except (OSError, sqlite3.Error):
        pass


def _wait_healthy(server, watchdog: int, timeout: float) -> tuple[subprocess.Popen, int]:
    """Poll the server's health as ``SubprocessASGIServer.start`` does (a server that exits 3
    lost its port to another process: again on another one); returns the process that answered
    and its watchdog."""
    import httpx
    from prefect.settings import temporary_settings

    from huntflow.errors import HuntflowError

    proc = server.server_process
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            code = proc.poll()
            if code == 3:
                with temporary_settings(updates={"server.register_blocks_on_start": False}):
                    proc, server.port, watchdog = _spawn()
                server.server_process = proc
                continue
            if code is not None:
                raise HuntflowError(f"the ephemeral Prefect API exited with code {code} before it answered"
                                   f" (its output: {server_log()})")
            try:
                if client.get(f"{server.api_url}/health").status_code == 200:
                    return proc, watchdog
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise HuntflowError(f"the ephemeral Prefect API did not answer within {timeout:g} s"
                       f" (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS; its output: {server_log()})")
