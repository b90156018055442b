"""The machinery every stage task shares: its stage-run row, lease renewal and retry policy.

``run_stage`` opens the ``hunt.stage_runs`` row for (tick, campaign, stage) — a retry reopens the
same row with the next attempt number — renews the campaign's lease, calls the stage's logic and
closes the row with the logic's summary or the error. The exception is re-raised so Prefect's
retry policy (exponential backoff with jitter) applies.

In a real tick (``ctx.guarded``) the stage's connection is tied to the tick's lease
(:func:`huntflow.store.leases.guard`): once another tick holds the campaign, the database refuses
the stage's next write and the stage ends at once — its row ``skipped`` with the reason, no
retry, and a summary ``{"lease_lost": ...}`` the tick stops the campaign on.

In a tick that runs a campaign's stages in order in this process (``ctx.chained``: the
``hunt-tick`` flow), a stage that succeeded leaves its row open, and its connection (still tied
to the lease) to the campaign's next stage, whose opening closes the row — ``succeeded``, with
its summary and the time it ended — in the same statement: one round trip and one commit fewer
a stage. That closing commits only if the guard lets the opening through (the lease held); when
the opening is refused, or the stages end early, the row is closed on its own with the lease
checked then (:func:`skip_stage`); the last one's (learn's) is closed by :func:`end_campaign`
with the lease's release, in one statement. A process that dies between two stages leaves that row ``running``; the next tick's reaper
closes it ``crashed`` (the stage's writes are committed either way: the row is the record, the
hunt's state is in its own rows).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from huntflow.config import get_settings
from huntflow.store import campaigns, leases, stage_runs
from huntflow.store.connection import give_back, lend, session, store_error
from huntflow.store.states import Stage, StageRunStatus

RETRIES = int(os.environ.get("HUNTFLOW_STAGE_RETRIES", "3"))
"""Retries per stage task (exponential backoff 2 s, 4 s, 8 s with 50 % jitter)."""


def retry_delays(base: float = 2.0) -> list[float]:
    return [base * 2**i for i in range(RETRIES)]


@dataclass(frozen=True)
class TickContext:
    """What every stage of one tick shares."""

    tick_id: UUID
    owner: str
    lease_seconds: float = leases.DEFAULT_LEASE_SECONDS
    operator: str = field(default_factory=lambda: get_settings().operator)
    guarded: bool = False
    """True in a tick that claimed its campaigns: writes are refused once a lease is lost."""
    session_pid: int | None = None
    """Backend pid of the tick's heartbeat session (recorded with each claim)."""
    chained: bool = False
    """The tick runs each campaign's stages in order in this process and calls
    :func:`end_campaign` after them: a succeeded stage's row is closed by the next stage's
    opening (see the module's docstring). Only with ``guarded``."""


@dataclass(frozen=True)
class _Left:
    """A succeeded stage whose row the campaign's next opening closes, and its connection (still
    tied to the tick's lease, kept out of the pool for that opening)."""

    conn: psycopg.Connection
    run_id: int
    stage: Stage
    summary: dict[str, Any]
    ended: float
    """``time.monotonic()`` when it ended."""


_LEFT: dict[tuple[UUID, UUID], _Left] = {}
"""(tick, campaign) -> the stage left for the next opening (:attr:`TickContext.chained`)."""
_LEFT_LOCK = threading.Lock()


def _take_left(ctx: TickContext, campaign_id: UUID | None) -> _Left | None:
    if campaign_id is None:
        return None
    with _LEFT_LOCK:
        return _LEFT.pop((ctx.tick_id, campaign_id), None)


def end_campaign(ctx: TickContext, campaign_id: UUID | None, release: bool = False) -> None:
    """The campaign's stages in this tick are over: close the row left for a next opening (in a
    chained tick, learn's; or an earlier stage's when the stages ended early), the lease checked
    now as :func:`stage_runs.finish_checked` does, and hand its connection back; ``release``:
    drop the tick's lease of the campaign in the same statement (the tick's end; without a left
    row, on its own). Never raises (a row it could not close is closed ``crashed`` by the next
    tick's reaper; a lease it could not drop lapses by itself)."""
    left = _take_left(ctx, campaign_id)
    try:
        if left is None:
            if release and campaign_id is not None:
                with session() as conn:
                    campaigns.release_lease(conn, campaign_id, ctx.owner)
            return
        try:
            stage_runs.finish_checked(left.conn, left.run_id, left.stage, campaign_id, ctx.owner, left.summary,
                                      untie=True, release=release, ended_ago=time.monotonic() - left.ended)
        except psycopg.Error:
            try:
                leases.guard(left.conn, None)
            except psycopg.Error:  # a broken connection: the pool discards it
                pass
            raise
        finally:
            give_back(left.conn)
    except Exception as e:
        logging.getLogger(__name__).warning("campaign %s: end of its tick's stages not recorded: %s",
                                            campaign_id, type(e).__name__)


def _attempt() -> int:
    try:
        from prefect.runtime import task_run

        return max(1, int(task_run.run_count or 1))
    except Exception:  # outside a task run (task.fn(...) in tests)
        return 1


StageLogic = Callable[[psycopg.Connection, dict[str, Any], TickContext], dict[str, Any]]


def run_stage(stage: Stage, ctx: TickContext, campaign_id: UUID, logic: StageLogic, pass_: int = 1) -> dict[str, Any]:
    """Run one stage for one campaign, recording it as a ``hunt.stage_runs`` row (``pass_``: which
    run of the stage in this tick: 2 for the promotion pass after evolve, :mod:`huntflow.flows.tick`).

    Two statements around the logic: open the row, tie the connection to the lease, mark the
    campaign's stage and renew its lease, returning its row (:func:`stage_runs.open_stage`);
    close the row, checking the lease is still held and untying the connection
    (:func:`stage_runs.finish_checked`) — in a chained tick the next stage's opening does that
    (see the module's docstring). A failed stage closes its row with :func:`stage_runs.finish`."""
    owner = ctx.owner if ctx.guarded else None
    left = _take_left(ctx, campaign_id)
    conn = left.conn if left is not None else lend()
    tied = [owner is not None or left is not None]
    keep = [False]
    try:
        return _run_logic(conn, stage, ctx, campaign_id, logic, owner, tied, left, keep, pass_)
    except psycopg.Error as e:
        raise store_error(e) from e
    finally:
        if not keep[0]:
            if tied[0]:  # the row could not be closed: never hand a tied connection back to the pool
                try:
                    leases.guard(conn, None)
                except psycopg.Error:  # a broken connection: the pool discards it
                    pass
            give_back(conn)


def _run_logic(conn: psycopg.Connection, stage: Stage, ctx: TickContext, campaign_id: UUID, logic: StageLogic,
               guard: str | None, tied: list[bool], left: _Left | None, keep: list[bool],
               pass_: int = 1) -> dict[str, Any]:
    row_owner = None if ctx.owner == f"tick:{ctx.tick_id}" else ctx.owner
    attempt = _attempt()
    run_id: int | None = None

    def close(status: StageRunStatus, **outcome: Any) -> None:
        nonlocal run_id, left
        if run_id is None:  # the opening was refused as a whole: open the row on its own first
            if left is not None:  # and close the previous stage's, the lease checked now
                stage_runs.finish_checked(conn, left.run_id, left.stage, campaign_id, ctx.owner, left.summary,
                                          untie=False)
                left = None
            run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, attempt, guard=guard, owner=row_owner,
                                      pass_=pass_)
        stage_runs.finish(conn, run_id, status, untie=ctx.guarded or tied[0], **outcome)
        tied[0] = False

    beat = leases.heartbeat_of(ctx.owner) if ctx.guarded else None
    try:
        if beat is not None and beat.lost(campaign_id):
            raise leases.LeaseLost(f"lease lost: campaign {campaign_id} is no longer leased by {ctx.owner}")
        previous = (left.run_id, left.summary, time.monotonic() - left.ended) if left is not None else None
        run_id, campaign = stage_runs.open_stage(conn, ctx.tick_id, campaign_id, stage, attempt,
                                                 lease_owner=ctx.owner, lease_seconds=ctx.lease_seconds,
                                                 guard=guard, owner=row_owner, pass_=pass_, close_previous=previous)
        left = None  # closed by the opening
        if campaign is None:
            raise KeyError(f"no campaign {campaign_id}")
        summary = logic(conn, campaign, ctx)
    except BaseException as e:
        lost = leases.lease_lost(e) if isinstance(e, Exception) else None
        if lost is not None:
            close(StageRunStatus.SKIPPED, summary={"reason": str(lost)})
            return {"lease_lost": str(lost)}
        close(StageRunStatus.FAILED, error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
        raise
    # lost while it ran: its writes since were refused; the closing says so (learn completing a
    # campaign clears its lease itself)
    check = ctx.guarded and not _released_by_logic(summary)
    if not check:
        close(StageRunStatus.SUCCEEDED, summary=summary)
        return summary
    if ctx.chained and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        # the campaign's next opening closes the row on this connection, still tied to the lease
        # (and is refused if the lease is lost by then)
        with _LEFT_LOCK:
            _LEFT[(ctx.tick_id, campaign_id)] = _Left(conn, run_id, stage, summary, time.monotonic())
        keep[0] = True
        return summary
    lost_reason = stage_runs.finish_checked(conn, run_id, stage, campaign_id, ctx.owner, summary, untie=True)
    tied[0] = False
    if lost_reason is not None:
        return {"lease_lost": lost_reason}
    return summary


def _released_by_logic(summary: Any) -> bool:
    """learn completing (or failing) a campaign clears its lease itself."""
    return isinstance(summary, dict) and bool(summary.get("completed"))


def skip_stage(stage: Stage, ctx: TickContext, campaign_id: UUID | None, reason: str, pass_: int = 1) -> None:
    """Record a stage that did not run in this tick (an earlier stage failed for good); a row
    left for the next opening (:attr:`TickContext.chained`) is closed first."""
    end_campaign(ctx, campaign_id)
    with session() as conn:
        run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, 1, pass_=pass_)
        stage_runs.finish(conn, run_id, StageRunStatus.SKIPPED, summary={"reason": reason})
