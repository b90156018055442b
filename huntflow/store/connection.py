"""Connections: ``SUPABASE_DB_URL`` when set, else an embedded Postgres (pgserver).

The embedded server lives under ``$HUNTFLOW_DATA_DIR/pgdata``; several processes may share it
(pgserver reference-counts its users and stops the server when the last one exits, unless
``huntflow db start`` pinned it: :mod:`huntflow.store.embedded`). Every
connection is autocommit with dict rows; code that needs atomicity opens
``with conn.transaction():`` explicitly.

:func:`session` lends a connection from a per-process pool (psycopg_pool) instead of opening
one per stage: a connection costs ~10–30 ms and a tick takes dozens. The pool is created on
first use for a URL (after one direct connection that applies the migrations and turns an
unreachable database into a clear :class:`StoreError` at once), checked on every loan (a server
restarted under us costs one reconnect, not an error), and keyed by process id, so a forked
child never shares its parent's sockets. ``HUNTFLOW_DB_POOL_SIZE`` caps it (default 12).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from huntflow.config import Settings, get_settings, redact
from huntflow.errors import DatabaseUrlError, StoreError

_LOCK = threading.Lock()
_MIGRATED: set[str] = set()
_POOLS: dict[tuple[int, str], ConnectionPool] = {}
_POOL_TIMEOUT_SECONDS = 60.0


def _embedded_url(pgdata: Path) -> str:
    from huntflow.store import embedded

    return embedded.url(pgdata)


def database_url(settings: Settings | None = None) -> str:
    """The URL of the database to use, starting the embedded server when needed."""
    if settings is None:  # the common case, without building Settings (~10 ms) on every loan
        given = os.environ.get("SUPABASE_DB_URL") or os.environ.get("HUNTFLOW_SUPABASE_DB_URL")
        if given:
            return given
    settings = settings or get_settings()
    if settings.supabase_db_url:
        return settings.supabase_db_url
    return _embedded_url(settings.pgdata_dir.resolve())


def stop_embedded() -> None:
    """Release this process's handles on embedded servers (the last user stops the server)."""
    close_pools()
    from huntflow.store import embedded

    embedded.release_all()
    _MIGRATED.clear()


def store_error(e: BaseException, url: str | None = None, doing: str = "database error") -> StoreError:
    """The one translation of a driver exception: a one-line :class:`StoreError` whose message
    is redacted (:func:`huntflow.config.redact`) and names the SQLSTATE when there is one.
    Use as ``raise store_error(e, url) from e``."""
    first = " ".join(str(e).split()) or type(e).__name__
    state = getattr(e, "sqlstate", None)
    where = f" to {describe(url)}" if url else ""
    return StoreError(redact(f"{doing}{where}: {first}" + (f" [SQLSTATE {state}]" if state else ""), url=url))


def describe(url: str) -> str:
    """``postgres at host:port/dbname as user``: a conninfo without anything secret in it."""
    try:
        info = conninfo_to_dict(url)
    except (psycopg.Error, ValueError):
        return "the configured database"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    text = f"postgres at {host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"
    return text + (f" as {info['user']}" if info.get("user") else "")


def check_url(url: str) -> None:
    """Parse ``url`` as a libpq conninfo (URL or keyword string) without connecting.

    Raises:
        DatabaseUrlError: it is malformed (the message is redacted and names SUPABASE_DB_URL).
    """
    try:
        if "\x00" in url:
            raise ValueError("contains a NUL character")
        conninfo_to_dict(url)
    except (psycopg.Error, ValueError) as e:
        raise DatabaseUrlError(redact(f"SUPABASE_DB_URL: malformed database URL: {' '.join(str(e).split())}",
                                      url=url)) from None


def connect(url: str | None = None, *, migrate: bool = True) -> psycopg.Connection:
    """Open an autocommit connection with dict rows, applying migrations once per process.

    Raises:
        DatabaseUrlError: the URL is malformed.
        StoreError: the database cannot be reached or refuses us (the message never contains
            the password; the driver's exception is not chained, its text could).
    """
    url = url or database_url()
    check_url(url)
    try:
        conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    except psycopg.Error as e:
        raise store_error(e, url, "cannot connect") from None
    if migrate and url not in _MIGRATED:
        from huntflow.store.migrations import apply_migrations

        apply_migrations(conn)
        _MIGRATED.add(url)
    return conn


def _pool(url: str) -> ConnectionPool:
    key = (os.getpid(), url)
    pool = _POOLS.get(key)
    if pool is not None:
        return pool
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            connect(url).close()  # migrations once, and a clear error when unreachable
            pool = ConnectionPool(
                url, kwargs={"autocommit": True, "row_factory": dict_row},
                min_size=1, max_size=max(1, int(os.environ.get("HUNTFLOW_DB_POOL_SIZE", "12"))),
                check=ConnectionPool.check_connection, timeout=_POOL_TIMEOUT_SECONDS,
                name="huntflow", open=True,
            )
            _POOLS[key] = pool
    return pool


def close_pools() -> None:
    """Close this process's pooled connections (before the embedded server is stopped)."""
    with _LOCK:
        pools = [p for (pid, _), p in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.close(timeout=1.0)


atexit.register(close_pools)


@contextlib.contextmanager
def session(url: str | None = None) -> Iterator[psycopg.Connection]:
    """``with session() as conn:`` — a pooled connection, returned to the pool on exit (a
    transaction left open by an error is rolled back first).

    Raises:
        StoreError: no connection could be had within a minute, or a driver error nobody below
            handled (one redacted line; the password never shows).
    """
    url = url or database_url()
    pool = _pool(url)
    try:
        conn = pool.getconn()
    except PoolTimeout as e:
        raise store_error(e, url, "cannot connect") from None
    try:
        yield conn
    except psycopg.Error as e:
        raise store_error(e, url) from e
    finally:
        pool.putconn(conn)
