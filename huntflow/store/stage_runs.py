"""``hunt.stage_runs``: one row per stage, campaign and tick (retries bump ``attempt``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store.states import Stage, StageRunStatus


GUARD_SETTING = "huntflow.lease_owner"
"""The session setting :func:`huntflow.store.leases.guard` ties a connection's writes with."""


def start(conn: psycopg.Connection, tick_id: UUID, campaign_id: UUID | None, stage: Stage, attempt: int,
          guard: str | None = None, owner: str | None = None) -> int:
    """Open (or, on a retry, reopen) the row for this tick/campaign/stage; returns its id.

    ``owner``: the tick's lease owner when it is not ``tick:<tick_id>`` (a loop's: the reaper
    checks the row's owner still holds the campaign).

    ``guard``: also tie the connection to that lease owner, as :func:`huntflow.store.leases.guard`
    does, in the same round trip (``hunt.stage_runs`` itself is not lease-guarded, so the order
    of the two within the statement does not matter)."""
    row = conn.execute(
        """
        with opened as (
          insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt, owner)
          values (%s, %s, %s, 'running', %s, %s)
          on conflict (tick_id, campaign_id, stage) do update
            set status = 'running', attempt = excluded.attempt, error = null,
                started_at = now(), finished_at = null
          returning stage_run_id
        )
        select stage_run_id, case when %s::text is null then null
                                  else set_config('""" + GUARD_SETTING + """', %s, false) end as tied
          from opened
        """,
        (tick_id, campaign_id, stage.value, attempt, owner, guard, guard or ""),
    ).fetchone()
    return row["stage_run_id"]


def finish(
    conn: psycopg.Connection,
    stage_run_id: int,
    status: StageRunStatus,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
    untie: bool = False,
) -> None:
    """Close a row with its outcome (database clock for ``finished_at``); ``untie``: also untie
    the connection from its lease owner (``leases.guard(conn, None)``) in the same round trip."""
    conn.execute(
        "with closed as (update hunt.stage_runs set status = %s, summary = %s, error = %s, finished_at = now()"
        " where stage_run_id = %s returning 1)"
        f" select case when %s then set_config('{GUARD_SETTING}', '', false) end as untied",
        (status.value, Jsonb(summary or {}), error, stage_run_id, untie),
    )


def for_tick(conn: psycopg.Connection, tick_id: UUID) -> list[dict[str, Any]]:
    """Every row a tick wrote, in stage order."""
    return conn.execute(
        "select * from hunt.stage_runs where tick_id = %s order by campaign_id, stage", (tick_id,)
    ).fetchall()


def reap_orphans(conn: psycopg.Connection, tick_id: UUID) -> list[dict[str, Any]]:
    """Close the ``running`` rows of ticks that died as ``crashed``, with the reason.

    A row is orphaned when its tick (its ``owner``, else ``tick:<tick_id>``) no longer holds its campaign's lease (expired, released, or
    its heartbeat session is gone), or — for a row without a campaign — when it has been open
    for ten minutes. Rows of ``tick_id`` (the caller) are left alone.

    Returns:
        The closed rows (``stage_run_id``, ``tick_id``, ``campaign_id``, ``stage``).
    """
    return conn.execute(
        """
        update hunt.stage_runs s
           set status = 'crashed', finished_at = now(),
               error = 'crashed: tick ' || s.tick_id || ' ended without closing this row'
                       || coalesce(' (campaign now leased by ' || c.lease_owner || ')', ' (its lease lapsed)')
          from hunt.stage_runs s2
          left join hunt.campaigns c on c.campaign_id = s2.campaign_id
         where s.stage_run_id = s2.stage_run_id and s.status = 'running' and s.tick_id <> %(tick)s
           and case when s.campaign_id is null then s.started_at < now() - interval '10 minutes'
                    else not (c.lease_owner is not distinct from coalesce(s.owner, 'tick:' || s.tick_id)
                              and c.lease_expires_at > now()
                              and (c.lease_pid is null or hunt.lease_session_alive(c.lease_pid)))
               end
        returning s.stage_run_id, s.tick_id, s.campaign_id, s.stage
        """,
        {"tick": tick_id},
    ).fetchall()
