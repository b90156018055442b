"""Tick leases kept alive by a heartbeat, and the guard that makes a lost lease stop a tick.

A tick claims campaigns with a short lease (``hunt.settings.lease_seconds``, default 30 s) and a
:class:`Heartbeat` thread renews it every third of that while any stage or inline generation
runs. The heartbeat's own connection holds a session-level advisory lock, and its backend pid is
recorded on every campaign it holds (``campaigns.lease_pid``): when the tick's process dies the
database drops that connection and its lock, and the next tick may claim the campaign at once
(``hunt.lease_session_alive``). A tick that is alive but silent (stopped, partitioned, a stalled
database) loses the lease when it expires. Why both: the lock gives recovery in seconds after a
kill, the expiry covers a VM that vanished without closing its socket (TCP keepalive would take
hours) and poolers that do not keep sessions.

A heartbeat that ends gives the lock up (``pg_advisory_unlock``) and leaves its session idle for
the next heartbeat of the process (at most :data:`SPARES_KEPT`): a one-shot tick then takes its
liveness lock in one round trip instead of starting a backend. The lock is what proves an owner
alive, so a session taken again first frees any lease still recorded under its backend pid by
an earlier owner (a tick that did not release it, or a dead backend whose pid the server reused):
such a lease is free at once, as when its session ended.

A stage's connection is tied to its tick with :func:`guard`: from then on the database refuses
(:class:`LeaseLost`) any write to a campaign the tick no longer leases, in the writing
transaction itself (``hunt.guard_lease``).

A loop that owns its process (``tick --until-done``, the demo) keeps one :class:`Heartbeat`
(owner ``loop:<id>``) for all its ticks, so a campaign whose inline generation is still on the
loop's executor keeps its lease between ticks and the next tick re-claims it as the same owner;
:meth:`Heartbeat.hold` of a re-claimed campaign forgets an earlier loss, and
:func:`release_all` drops what the loop still holds at its end.

:meth:`Heartbeat.limit` bounds a stage that runs in a worker thread, where Prefect's task
timeout cannot interrupt a blocking call: once the stage runs past its limit the heartbeat gives
the campaign's lease up, so the stage's next write is refused and the campaign's tick ends
(its row ``skipped``: lease lost); the next tick carries on from the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

import psycopg

from huntflow.errors import HuntflowError

LOCK_NAMESPACE = 1213550164
"""First key of the heartbeat session's advisory lock ('HUNT'); the second is its backend pid."""
LEASE_LOST_SQLSTATE = "HF409"
DEFAULT_LEASE_SECONDS = 30.0

_log = logging.getLogger(__name__)


class LeaseLost(HuntflowError, RuntimeError):
    """Raised when a tick writes to a campaign whose lease it no longer holds."""


def guard(conn: psycopg.Connection, owner: str | None) -> None:
    """Tie ``conn``'s writes to ``owner``'s leases (``None`` unties it). A pooled connection
    must be untied before it goes back: use :func:`guarded`."""
    conn.execute("select set_config('huntflow.lease_owner', %s, false)", (owner or "",))


@contextlib.contextmanager
def guarded(conn: psycopg.Connection, owner: str | None) -> Iterator[psycopg.Connection]:
    """``with guarded(conn, owner):`` — :func:`guard` for the block, untied after (even on error)."""
    if owner is None:
        yield conn
        return
    guard(conn, owner)
    try:
        yield conn
    finally:
        try:
            guard(conn, None)
        except psycopg.Error:  # a broken connection: the pool discards it
            pass


def lease_lost(error: BaseException) -> LeaseLost | None:
    """The :class:`LeaseLost` a driver error stands for (``hunt.guard_lease`` refused), else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, LeaseLost):
            return seen
        if isinstance(seen, psycopg.Error) and getattr(seen, "sqlstate", None) == LEASE_LOST_SQLSTATE:
            return LeaseLost(str(seen.diag.message_primary or seen).strip())
        seen = seen.__cause__ or seen.__context__
    return None


def release_all(conn: psycopg.Connection, owner: str) -> int:
    """Drop every lease ``owner`` holds (a loop's end); returns how many."""
    return conn.execute(
        "update hunt.campaigns set lease_owner = null, lease_expires_at = null, lease_pid = null, updated_at = now()"
        " where lease_owner = %s", (owner,)).rowcount


_SPARES: dict[tuple[int, str], list[psycopg.Connection]] = {}
"""(process id, url) -> idle heartbeat sessions, their liveness lock given up (at most :data:`SPARES_KEPT`)."""
SPARES_KEPT = 2
_SPARES_LOCK = threading.Lock()


def _spare(url: str) -> psycopg.Connection | None:
    """An idle heartbeat session of this process for ``url`` (None when there is none); a
    forked child never gets its parent's (keyed by process id)."""
    with _SPARES_LOCK:
        spares = _SPARES.get((os.getpid(), url))
        while spares:
            conn = spares.pop()
            if not conn.closed and not conn.broken:
                return conn
    return None


def _keep_spare(url: str, conn: psycopg.Connection) -> None:
    with _SPARES_LOCK:
        spares = _SPARES.setdefault((os.getpid(), url), [])
        if len(spares) < SPARES_KEPT:
            spares.append(conn)
            return
    conn.close()


def close_spares() -> None:
    """Close this process's idle heartbeat sessions (before the embedded server is stopped)."""
    with _SPARES_LOCK:
        mine = [k for k in _SPARES if k[0] == os.getpid()]
        conns = [c for k in mine for c in _SPARES.pop(k)]
    for conn in conns:
        try:
            conn.close()
        except Exception:
            pass


_REGISTRY: dict[str, Heartbeat] = {}
_REGISTRY_LOCK = threading.Lock()


def heartbeat_of(owner: str) -> Heartbeat | None:
    """The running heartbeat of the tick ``owner`` in this process, if any."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(owner)


class Heartbeat:
    """Renews a tick's leases from a daemon thread on a connection of its own.

    ``with Heartbeat(url, owner) as hb:`` opens the connection, takes the liveness lock and reads
    ``lease_seconds``; :meth:`hold` adds claimed campaigns, :meth:`release` drops them, and
    :meth:`lost` says whether a campaign's lease went to someone else. A database outage only
    stops the renewals (the lease then expires by itself); the thread reconnects when it can.
    """

    def __init__(self, url: str, owner: str, lease_seconds: float | None = None) -> None:
        self.url, self.owner = url, owner
        self.lease_seconds = lease_seconds
        self.pid: int | None = None
        self._held: set[UUID] = set()
        self._lost: set[UUID] = set()
        self._deadlines: dict[UUID, tuple[float, str]] = {}
        self.overdue: dict[UUID, str] = {}
        """Campaigns whose lease was given up because a stage ran past its limit: what ran."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._thread: threading.Thread | None = None
        self.beats = 0

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Heartbeat:
        self._connect()
        with _REGISTRY_LOCK:
            _REGISTRY[self.owner] = self
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {self.owner}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with _REGISTRY_LOCK:
            _REGISTRY.pop(self.owner, None)
        if self._thread is not None and self._thread.is_alive():
            self._close()  # a beat still running on the session: never reuse it
        else:
            self._retire()

    def _connect(self) -> None:
        from huntflow.store.connection import connect

        # its own connection (never a pooled one: it holds a session lock), a spare one a finished
        # heartbeat of this process left idle (:func:`_spare`) when there is one: a one-shot tick
        # then pays one round trip for its session, not a new backend (~3 ms and its cold caches)
        spare = _spare(self.url)
        if spare is not None:
            try:
                self._start_session(spare)
                return
            except psycopg.Error:  # a spare the server dropped (restarted): a new session instead
                pass
        self._start_session(connect(self.url))

    def _start_session(self, conn: psycopg.Connection) -> None:
        """Take the liveness lock on ``conn`` and make it this heartbeat's session (closed on failure)."""
        try:
            # one round trip: the backend pid, the liveness lock on it, the lease length, and (14+) a
            # backend that notices its client died only when it next talks to it: one busy in a
            # renewal waiting on a row lock would hold the lock (the lease) on for a dead tick.
            # Leases recorded under this backend's pid by an earlier owner (an earlier heartbeat on
            # this session whose tick did not release them, or a dead backend whose pid the server
            # reused) are released first: the lock proves *this* owner alive, not theirs (without
            # this their leases would look alive again; with it they are free at once, as when
            # their session ended). Nothing to release (the usual case) writes nothing.
            check = ", set_config('client_connection_check_interval', '1000', false) as checked" \
                if conn.info.server_version >= 140000 else ""
            row = conn.execute(
                "with stale as (update hunt.campaigns set lease_owner = null, lease_expires_at = null, lease_pid = null,"
                " updated_at = now() where lease_pid = pg_backend_pid() and lease_owner is distinct from %s"
                " returning 1)"
                f" select pid, pg_advisory_lock(%s, pid) as locked{check},"
                " (select value from hunt.settings where key = 'lease_seconds') as lease_seconds,"
                " (select count(*) from stale) as released"
                " from (select pg_backend_pid() as pid) me",
                (self.owner, LOCK_NAMESPACE),
            ).fetchone()
            pid = row["pid"]
            if self.lease_seconds is None:
                self.lease_seconds = float(row["lease_seconds"]) if row["lease_seconds"] is not None \
                    else DEFAULT_LEASE_SECONDS
        except BaseException:
            try:
                conn.close()
            except Exception:
                pass
            raise
        self._conn, self.pid = conn, pid

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # the advisory lock goes with the session
            except Exception:
                pass

    def _retire(self) -> None:
        """At exit: give the liveness lock up and keep the session as a spare for the next
        heartbeat of this process (:func:`_spare`); a session that cannot (broken, in a
        transaction, the unlock refused) is closed, which drops the lock as well."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise psycopg.OperationalError("not reusable")
            unlocked = conn.execute("select pg_advisory_unlock(%s, pg_backend_pid()) as ok",
                                    (LOCK_NAMESPACE,)).fetchone()
            if not (unlocked["ok"] if isinstance(unlocked, dict) else unlocked[0]):
                raise psycopg.OperationalError("lock not held")
        except Exception:
            try:
                conn.close()
            except Exception:
                pass
            return
        _keep_spare(self.url, conn)

    @property
    def interval(self) -> float:
        return max(0.2, float(self.lease_seconds or DEFAULT_LEASE_SECONDS) / 3.0)

    # what it holds ---------------------------------------------------------------------
    def hold(self, campaign_ids: Iterable[UUID]) -> None:
        """Renew these campaigns' leases from now on (claimed again after a loss: no longer lost)."""
        ids = set(campaign_ids)
        with self._lock:
            self._held.update(ids)
            self._lost.difference_update(ids)
            for c in ids:
                self.overdue.pop(c, None)

    def release(self, campaign_id: UUID) -> None:
        with self._lock:
            self._held.discard(campaign_id)

    def lost(self, campaign_id: UUID) -> bool:
        """True once a renewal found the campaign leased by someone else (or by nobody)."""
        with self._lock:
            return campaign_id in self._lost

    @contextlib.contextmanager
    def limit(self, campaign_id: UUID, seconds: float, what: str) -> Iterator[None]:
        """``with hb.limit(cid, 600, "evolve"):`` — give the campaign's lease up at the first
        beat after ``seconds`` if the block is still running (see the module's docstring)."""
        with self._lock:
            self._deadlines[campaign_id] = (time.monotonic() + float(seconds), f"{what} ({seconds:g} s limit)")
        try:
            yield
        finally:
            with self._lock:
                self._deadlines.pop(campaign_id, None)

    # the thread ------------------------------------------------------------------------
    def beat(self) -> None:
        """Renew every held lease now (also called by the thread every :attr:`interval`); give up
        those whose stage ran past its :meth:`limit`."""
        now = time.monotonic()
        with self._lock:
            overdue = {c: what for c, (at, what) in self._deadlines.items()
                       if at <= now and c in self._held and c not in self._lost}
            held = sorted(self._held - self._lost - set(overdue))
        if not held and not overdue:
            return
        if self._conn is None or self._conn.closed:
            self._close()
            self._connect()
        if overdue:
            self._give_up(overdue)
        if not held:
            return
        rows = self._conn.execute(
            "update hunt.campaigns set lease_expires_at = now() + make_interval(secs => %s), lease_pid = %s"
            " where campaign_id = any(%s) and lease_owner = %s returning campaign_id",
            (float(self.lease_seconds), self.pid, held, self.owner),
        ).fetchall()
        renewed = {r["campaign_id"] for r in rows}
        with self._lock:
            self._lost.update(c for c in held if c not in renewed and c in self._held)
        self.beats += 1

    def _give_up(self, overdue: dict[UUID, str]) -> None:
        self._conn.execute(
            "update hunt.campaigns set lease_owner = null, lease_expires_at = null, lease_pid = null,"
            " updated_at = now() where campaign_id = any(%s) and lease_owner = %s",
            (list(overdue), self.owner))
        with self._lock:
            self._lost.update(overdue)
            self.overdue.update(overdue)
        for campaign_id, what in overdue.items():
            _log.warning("campaign %s: %s ran past its limit; lease given up, its next write is refused",
                         campaign_id, what)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as e:  # an outage: the lease expires by itself; retry next beat
                _log.warning("heartbeat of %s failed: %s", self.owner, type(e).__name__)
                conn = self._conn
                if conn is None or conn.closed or conn.broken:
                    self._close()  # reconnect next beat (a live session is kept: it proves us alive)
