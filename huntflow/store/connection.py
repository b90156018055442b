"""Connections: ``SUPABASE_DB_URL`` when set, else an embedded Postgres (pgserver).

The embedded server lives under ``$HUNTFLOW_DATA_DIR/pgdata``; several processes may share it
(pgserver reference-counts its users and stops the server when the last one exits). Every
connection is autocommit with dict rows; code that needs atomicity opens
``with conn.transaction():`` explicitly.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from huntflow.config import Settings, get_settings, redact_url
from huntflow.errors import StoreError

_EMBEDDED: dict[Path, object] = {}
_LOCK = threading.Lock()
_MIGRATED: set[str] = set()


def _embedded_url(pgdata: Path) -> str:
    with _LOCK:
        server = _EMBEDDED.get(pgdata)
        if server is None:
            import pgserver

            pgdata.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            _EMBEDDED[pgdata] = server
        return server.get_uri()


def database_url(settings: Settings | None = None) -> str:
    """The URL of the database to use, starting the embedded server when needed."""
    settings = settings or get_settings()
    if settings.supabase_db_url:
        return settings.supabase_db_url
    return _embedded_url(settings.pgdata_dir.resolve())


def stop_embedded() -> None:
    """Release this process's handles on embedded servers (the last user stops the server)."""
    with _LOCK:
        for server in _EMBEDDED.values():
            server.cleanup()  # type: ignore[attr-defined]
        _EMBEDDED.clear()
        _MIGRATED.clear()


def connect(url: str | None = None, *, migrate: bool = True) -> psycopg.Connection:
    """Open an autocommit connection with dict rows, applying migrations once per process.

    Raises:
        StoreError: the database cannot be reached (the message never contains the password).
    """
    url = url or database_url()
    try:
        conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as e:
        raise StoreError(f"cannot connect to {redact_url(url)}: {e}") from e
    if migrate and url not in _MIGRATED:
        from huntflow.store.migrations import apply_migrations

        apply_migrations(conn)
        _MIGRATED.add(url)
    return conn


@contextlib.contextmanager
def session(url: str | None = None) -> Iterator[psycopg.Connection]:
    """``with session() as conn:`` — a connection closed on exit."""
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.close()
