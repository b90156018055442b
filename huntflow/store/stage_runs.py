"""``hunt.stage_runs``: one row per stage, campaign and tick (retries bump ``attempt``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store.states import Stage, StageRunStatus


def start(conn: psycopg.Connection, tick_id: UUID, campaign_id: UUID | None, stage: Stage, attempt: int) -> int:
    """Open (or, on a retry, reopen) the row for this tick/campaign/stage; returns its id."""
    row = conn.execute(
        """
        insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt)
        values (%s, %s, %s, 'running', %s)
        on conflict (tick_id, campaign_id, stage) do update
          set status = 'running', attempt = excluded.attempt, error = null,
              started_at = now(), finished_at = null
        returning stage_run_id
        """,
        (tick_id, campaign_id, stage.value, attempt),
    ).fetchone()
    return row["stage_run_id"]


def finish(
    conn: psycopg.Connection,
    stage_run_id: int,
    status: StageRunStatus,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Close a row with its outcome (database clock for ``finished_at``)."""
    conn.execute(
        "update hunt.stage_runs set status = %s, summary = %s, error = %s, finished_at = now()"
        " where stage_run_id = %s",
        (status.value, Jsonb(summary or {}), error, stage_run_id),
    )


def for_tick(conn: psycopg.Connection, tick_id: UUID) -> list[dict[str, Any]]:
    """Every row a tick wrote, in stage order."""
    return conn.execute(
        "select * from hunt.stage_runs where tick_id = %s order by campaign_id, stage", (tick_id,)
    ).fetchall()
