"""The machinery every stage task shares: its stage-run row, lease renewal and retry policy.

``run_stage`` opens the ``hunt.stage_runs`` row for (tick, campaign, stage) — a retry reopens the
same row with the next attempt number — renews the campaign's lease, calls the stage's logic and
closes the row with the logic's summary or the error. The exception is re-raised so Prefect's
retry policy (exponential backoff with jitter) applies.
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
from huntflow.store import stage_runs
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
    lease_seconds: float = 900.0
    operator: str = field(default_factory=lambda: get_settings().operator)


def _attempt() -> int:
    try:
        from prefect.runtime import task_run

        return max(1, int(task_run.run_count or 1))
    except Exception:  # outside a task run (task.fn(...) in tests)
        return 1


StageLogic = Callable[[psycopg.Connection, dict[str, Any], TickContext], dict[str, Any]]


def run_stage(stage: Stage, ctx: TickContext, campaign_id: UUID, logic: StageLogic) -> dict[str, Any]:
    """Run one stage for one campaign, recording it as a ``hunt.stage_runs`` row."""
    with session() as conn:
        run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, _attempt())
        try:
            campaign = conn.execute(
                "update hunt.campaigns set current_stage = %s, updated_at = now(),"
                " lease_expires_at = case when lease_owner = %s"
                "   then now() + make_interval(secs => %s) else lease_expires_at end"
                " where campaign_id = %s returning *",
                (stage.value, ctx.owner, ctx.lease_seconds, campaign_id),
            ).fetchone()
            if campaign is None:
                raise KeyError(f"no campaign {campaign_id}")
            summary = logic(conn, campaign, ctx)
        except BaseException as e:
            stage_runs.finish(
                conn, run_id, StageRunStatus.FAILED,
                error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}",
            )
            raise
        stage_runs.finish(conn, run_id, StageRunStatus.SUCCEEDED, summary=summary)
        return summary


def skip_stage(stage: Stage, ctx: TickContext, campaign_id: UUID | None, reason: str) -> None:
    """Record a stage that did not run in this tick (an earlier stage failed for good)."""
    with session() as conn:
        run_id = stage_runs.start(conn, ctx.tick_id, campaign_id, stage, 1)
        stage_runs.finish(conn, run_id, StageRunStatus.SKIPPED, summary={"reason": reason})
