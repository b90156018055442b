"""Connections: ``SUPABASE_DB_URL`` when set, else an embedded Postgres (pgserver).

The embedded server lives under ``$HUNTFLOW_DATA_DIR/pgdata``; several processes may share it
(pgserver reference-counts its users and stops the server when the last one exits, unless
``huntflow db start`` pinned it: :mod:`huntflow.store.embedded`). Every
connection is autocommit with dict rows; code that needs atomicity opens
``with conn.transaction():`` explicitly.

:func:`session` lends a connection from a per-process pool (psycopg_pool) instead of opening
one per stage: a connection costs ~10–30 ms and a tick takes dozens. The pool is created on
first use for a URL (after one direct connection that applies the migrations and turns an
unreachable database into a clear :class:`StoreError` at once), checked on a loan when the
connection sat idle for :data:`CHECK_IDLE_SECONDS` or more (a server restarted under us costs one
reconnect, not an error; a connection handed back a moment ago is not checked again: a tick's
stages pass connections back and forth dozens of times a second, and each check is a round
trip), and keyed by process id, so a forked child never shares its parent's sockets.
``HUNTFLOW_DB_POOL_SIZE`` caps it (default 12, raised to what ``HUNTFLOW_TICK_CONCURRENCY``
threads can hold at once). Pooled connections prepare each statement server-side on its first
execution (:func:`prepare_threshold`): the pool lends its connections in turn, so psycopg's
default of five executions a connection left a tick re-planning its statements.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from huntflow.config import Settings, get_settings, redact
from huntflow.errors import DatabaseUrlError, InputError, StoreError

_LOCK = threading.Lock()
_MIGRATED: set[str] = set()
_POOLS: dict[tuple[int, str], ConnectionPool] = {}
_POOL_TIMEOUT_SECONDS = 60.0
CHECK_IDLE_SECONDS = 2.0
"""A pooled connection idle this long is checked (one round trip) before it is lent again."""
_RETURNED: dict[int, float] = {}
"""``id(connection)`` -> when it was opened or last handed back (``time.monotonic()``)."""


def _embedded_url(pgdata: Path) -> str:
    from huntflow.store import embedded

    return embedded.url(pgdata)


_EMBEDDED_URLS: dict[tuple[str | None, ...], str] = {}
"""What the embedded data dir resolves to -> its server's URL, for :func:`database_url`'s common
case (a tick asks ~20 times: settings, path resolution and the server's lookup were ~65 us each);
cleared with the handles (:func:`stop_embedded`)."""


def database_url(settings: Settings | None = None) -> str:
    """The URL of the database to use, starting the embedded server when needed."""
    if settings is None:  # the common case, without building Settings (~10 ms) on every loan
        given = os.environ.get("SUPABASE_DB_URL") or os.environ.get("HUNTFLOW_SUPABASE_DB_URL")
        if given:
            return given
        key = (os.environ.get("HUNTFLOW_DATA_DIR"), os.environ.get("HOME"), os.environ.get("XDG_DATA_HOME"),
               os.getcwd())  # what the default data dir, or a relative one, depends on
        url = _EMBEDDED_URLS.get(key)
        if url is None:
            url = _EMBEDDED_URLS[key] = _embedded_url(get_settings().pgdata_dir.resolve())
        return url
    if settings.supabase_db_url:
        return settings.supabase_db_url
    return _embedded_url(settings.pgdata_dir.resolve())


def stop_embedded() -> None:
    """Release this process's handles on embedded servers (the last user stops the server)."""
    close_pools()
    from huntflow.store import embedded

    embedded.release_all()
    _MIGRATED.clear()
    _EMBEDDED_URLS.clear()


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
    _json_rows(conn)
    if migrate and url not in _MIGRATED:
        from huntflow.store.migrations import apply_migrations

        apply_migrations(conn)
        _MIGRATED.add(url)
    return conn


def _json_rows(conn: psycopg.Connection) -> None:
    """json/jsonb columns parsed by orjson (~10x the standard library's speed; a steady demo
    tick reads ~350 such values). The same values: what Postgres sends is finite, standard JSON
    (jsonb keeps no NaN and no duplicate keys), which both parse to the same objects, each
    number correctly rounded."""
    set_json_loads(orjson.loads, conn)


def prepare_threshold() -> int | None:
    """``HUNTFLOW_DB_PREPARE_THRESHOLD``: executions of a statement on a pooled connection
    before psycopg prepares it server-side (default 0: at once; ``none``: never, for a pooler in
    transaction mode such as Supabase's port 6543, where prepared statements do not survive).

    The pool lends its connections in turn, so with psycopg's default (5) each connection
    re-plans each of a tick's statements five times before preparing it; planning was 11-18 ms
    of the server's CPU a steady demo tick (benchmarks/RESULTS.md, "The database's share")."""
    value = os.environ.get("HUNTFLOW_DB_PREPARE_THRESHOLD", "0").strip().lower()
    if value in ("none", "off", ""):
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise InputError(f"HUNTFLOW_DB_PREPARE_THRESHOLD: expected a whole number or 'none', got {value!r}") from None


def _opened(conn: psycopg.Connection, threshold: int | None) -> None:
    conn.prepare_threshold = threshold
    _json_rows(conn)
    _RETURNED[id(conn)] = time.monotonic()


def _check_if_idle(conn: psycopg.Connection) -> None:
    """The pool's loan check: a round trip only for a connection that sat idle a while."""
    if time.monotonic() - _RETURNED.get(id(conn), -math.inf) >= CHECK_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


def pool_size() -> int:
    """``HUNTFLOW_DB_POOL_SIZE`` (default 12), at least what a tick's threads hold at once (two
    connections per concurrently advanced campaign, plus discover's and the tick's own)."""
    threads = max(1, int(os.environ.get("HUNTFLOW_TICK_CONCURRENCY", "4")))
    return max(1, int(os.environ.get("HUNTFLOW_DB_POOL_SIZE", "12")), 2 * threads + 2)


def _pool(url: str) -> ConnectionPool:
    key = (os.getpid(), url)
    pool = _POOLS.get(key)
    if pool is not None:
        return pool
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            connect(url).close()  # migrations once, and a clear error when unreachable
            threshold = prepare_threshold()  # a bad value is one clear error here, not in the pool's thread
            pool = ConnectionPool(
                url, kwargs={"autocommit": True, "row_factory": dict_row},
                min_size=1, max_size=pool_size(), configure=lambda conn: _opened(conn, threshold),
                check=_check_if_idle, timeout=_POOL_TIMEOUT_SECONDS,
                name="huntflow", open=True,
            )
            _POOLS[key] = pool
    return pool


def close_pools() -> None:
    """Close this process's pooled connections and idle heartbeat sessions (before the embedded server is stopped)."""
    with _LOCK:
        pools = [p for (pid, _), p in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.close(timeout=1.0)
    from huntflow.store.leases import close_spares  # idle heartbeat sessions too

    close_spares()


atexit.register(close_pools)


def lend(url: str | None = None) -> psycopg.Connection:
    """A pooled connection for a caller that keeps it past one block (a tick's stage handing its
    connection to the campaign's next stage); hand it back with :func:`give_back`.

    Raises:
        StoreError: no connection could be had within a minute.
    """
    url = url or database_url()
    try:
        return _pool(url).getconn()
    except PoolTimeout as e:
        raise store_error(e, url, "cannot connect") from None


def give_back(conn: psycopg.Connection, url: str | None = None) -> None:
    """Return a connection :func:`lend` lent (a transaction left open is rolled back first)."""
    _RETURNED[id(conn)] = time.monotonic()
    _pool(url or database_url()).putconn(conn)


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
        _RETURNED[id(conn)] = time.monotonic()
        pool.putconn(conn)
