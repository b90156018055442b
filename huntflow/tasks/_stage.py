"""The machinery every stage task shares: its stage-run row, lease renewal and retry policy.

``run_stage`` opens the ``hunt.stage_runs`` row for (tick, campaign, stage) — a retry reopens the
same row with the next attempt number — renews the campaign's lease, calls the stage's logic and
closes the row with the logic's summary or the error. The exception is re-raised so Prefect's
retry policy (exponential backoff with jitter) applies.

In a real tick (``ctx.guarded``) the stage's connection is tied to the tick's lease
(:func:`huntflow.store.leases.guard`): once another tick holds the campaign, the database refuses
the stage's next write and the stage ends at once — its row ``skipped`` with the reason, no
retry, and a summary ``{"lease_lost": ...}`` the tick stops the campaign on.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from huntflow.config import get_settings
from huntflow.store import leases, stage_runs
from huntflow.store.columns import light
from huntflow.store.connection import session
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


def _attempt() -> int:
    try:
        from prefect.runtime import task_run

        return max(1, int(task_run.run_count or 1))
    except Exception:  # outside a task run (task.fn(...) in tests)
        return 1


StageLogic = Callable[[psycopg.Connection, dict[str, Any], TickContext], dict[str, Any]]


def run_stage(stage: Stage, ctx: TickContext, campaign_id: UUID, logic: StageLogic) -> dict[str, Any]:
    """Run one stage for one campaign, recording it as a ``hunt.stage_runs`` row.

    Four statements around the logic: open the row (tying the connection to the lease in the
    same round trip), mark the campaign's stage and renew its lease (returning its row), check
    the lease is still held, close the row (untying the connection in the same round trip)."""
    owner = ctx.owner if ctx.guarded else None
    with session() as conn:
        tied = [owner is not None]
        try:
            run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, _attempt(), guard=owner,
                                      owner=None if ctx.owner == f"tick:{ctx.tick_id}" else ctx.owner)
            return _run_logic(conn, stage, ctx, campaign_id, logic, run_id, tied)
        finally:
            if tied[0]:  # the row could not be closed: never hand a tied connection back to the pool
                try:
                    leases.guard(conn, None)
                except psycopg.Error:  # a broken connection: the pool discards it
                    pass


def _run_logic(conn: psycopg.Connection, stage: Stage, ctx: TickContext, campaign_id: UUID, logic: StageLogic,
               run_id: int, tied: list[bool]) -> dict[str, Any]:
    def close(status: StageRunStatus, **outcome: Any) -> None:
        stage_runs.finish(conn, run_id, status, untie=ctx.guarded, **outcome)
        tied[0] = False

    beat = leases.heartbeat_of(ctx.owner) if ctx.guarded else None
    try:
        if beat is not None and beat.lost(campaign_id):
            raise leases.LeaseLost(f"lease lost: campaign {campaign_id} is no longer leased by {ctx.owner}")
        campaign = conn.execute(
            "update hunt.campaigns set current_stage = %s, updated_at = now(),"
            " lease_expires_at = case when lease_owner = %s"
            "   then now() + make_interval(secs => %s) else lease_expires_at end"
            f" where campaign_id = %s returning {light(conn, 'campaigns')}",
            (stage.value, ctx.owner, ctx.lease_seconds, campaign_id),
        ).fetchone()
        if campaign is None:
            raise KeyError(f"no campaign {campaign_id}")
        summary = logic(conn, campaign, ctx)
        if ctx.guarded:  # lost while it ran: its writes since were refused; say so
            holder = conn.execute("select lease_owner from hunt.campaigns where campaign_id = %s",
                                  (campaign_id,)).fetchone()
            if holder is not None and holder["lease_owner"] != ctx.owner and not _released_by_logic(summary):
                raise leases.LeaseLost(f"lease lost during {stage.value}: campaign {campaign_id} is leased by"
                                       f" {holder['lease_owner'] or 'nobody'}, not by {ctx.owner}")
    except BaseException as e:
        lost = leases.lease_lost(e) if isinstance(e, Exception) else None
        if lost is not None:
            close(StageRunStatus.SKIPPED, summary={"reason": str(lost)})
            return {"lease_lost": str(lost)}
        close(StageRunStatus.FAILED, error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
        raise
    close(StageRunStatus.SUCCEEDED, summary=summary)
    return summary


def _released_by_logic(summary: Any) -> bool:
    """learn completing (or failing) a campaign clears its lease itself."""
    return isinstance(summary, dict) and bool(summary.get("completed"))


def skip_stage(stage: Stage, ctx: TickContext, campaign_id: UUID | None, reason: str) -> None:
    """Record a stage that did not run in this tick (an earlier stage failed for good)."""
    with session() as conn:
        run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, 1)
        stage_runs.finish(conn, run_id, StageRunStatus.SKIPPED, summary={"reason": reason})
