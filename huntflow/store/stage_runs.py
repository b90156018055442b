"""``hunt.stage_runs``: one row per stage, campaign, tick and pass (retries bump ``attempt``; a
stage runs a second pass in a tick only for a promotion: review and dispatch after evolve, see
:mod:`huntflow.flows.tick`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store.states import Stage, StageRunStatus


GUARD_SETTING = "huntflow.lease_owner"
"""The session setting :func:`huntflow.store.leases.guard` ties a connection's writes with."""


def start(conn: psycopg.Connection, tick_id: UUID, campaign_id: UUID | None, stage: Stage, attempt: int,
          guard: str | None = None, owner: str | None = None, pass_: int = 1) -> int:
    """Open (or, on a retry, reopen) the row for this tick/campaign/stage/pass; returns its id.

    ``owner``: the tick's lease owner when it is not ``tick:<tick_id>`` (a loop's: the reaper
    checks the row's owner still holds the campaign).

    ``guard``: also tie the connection to that lease owner, as :func:`huntflow.store.leases.guard`
    does, in the same round trip (``hunt.stage_runs`` itself is not lease-guarded, so the order
    of the two within the statement does not matter)."""
    row = conn.execute(
        """
        with opened as (
          insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt, owner, pass)
          values (%s, %s, %s, 'running', %s, %s, %s)
          on conflict (tick_id, campaign_id, stage, pass) do update
            set status = 'running', attempt = excluded.attempt, error = null,
                started_at = now(), finished_at = null
          returning stage_run_id
        )
        select stage_run_id, case when %s::text is null then null
                                  else set_config('""" + GUARD_SETTING + """', %s, false) end as tied
          from opened
        """,
        (tick_id, campaign_id, stage.value, attempt, owner, pass_, guard, guard or ""),
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


def record_done(conn: psycopg.Connection, tick_id: UUID, stage: Stage,
                rows: list[tuple[UUID | None, dict[str, Any]]]) -> None:
    """Rows of a stage that ran and succeeded at once (discover's), written in one statement:
    ``(campaign_id, summary)`` each, attempt 1 (a retry rewrites them)."""
    if not rows:
        return
    conn.execute(
        "insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt, summary, finished_at)"
        " select %s, r.c, %s, 'succeeded', 1, r.s, now() from unnest(%s::uuid[], %s::jsonb[]) as r(c, s)"
        " on conflict (tick_id, campaign_id, stage, pass) do update set status = 'succeeded', attempt = 1,"
        " summary = excluded.summary, error = null, started_at = now(), finished_at = now()",
        (tick_id, stage.value, [c for c, _ in rows], [Jsonb(s) for _, s in rows]),
    )


def open_stage(conn: psycopg.Connection, tick_id: UUID, campaign_id: UUID, stage: Stage, attempt: int, *,
               lease_owner: str, lease_seconds: float, guard: str | None = None,
               owner: str | None = None, pass_: int = 1,
               close_previous: tuple[int, dict[str, Any], float] | None = None) -> tuple[int, dict[str, Any] | None]:
    """A stage's opening in one statement: :func:`start`'s row (and tie to ``guard``), then the
    campaign marked at ``stage`` with ``lease_owner``'s lease renewed; returns ``(stage_run_id,
    the campaign's light row or None when there is no such campaign)``.

    The tie runs before the campaign's update (an uncommon but planned order: the update's
    ``where`` holds it as a one-time subquery, evaluated before any row reaches the lease guard
    trigger), so the update is already guarded. When it is refused (lease lost) the whole
    statement is undone, row included: the caller opens the row with :func:`start` then.

    ``close_previous``: ``(stage_run_id, summary, seconds ago)`` of the tick's previous stage of
    this campaign, which succeeded and whose row is closed ``succeeded`` here, ``finished_at``
    set back to when it ended (its closing rides on this statement: one round trip and one
    commit fewer a stage). It commits only with the opening, so only while the guard lets the
    campaign's update through (the lease held); when that is refused the caller closes it
    (:func:`finish_checked`)."""
    from huntflow.store.columns import light

    row = conn.execute(
        f"""
        with closed as (
          update hunt.stage_runs set status = 'succeeded', summary = %(prev_summary)s, error = null,
                 finished_at = now() - make_interval(secs => %(prev_ago)s)
           where stage_run_id = %(prev)s and status = 'running'
          returning 1
        ), opened as (
          insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt, owner, pass)
          values (%(tick)s, %(c)s, %(stage)s, 'running', %(attempt)s, %(owner)s, %(pass)s)
          on conflict (tick_id, campaign_id, stage, pass) do update
            set status = 'running', attempt = excluded.attempt, error = null,
                started_at = now(), finished_at = null
          returning stage_run_id
        ), moved as (
          update hunt.campaigns set current_stage = %(stage)s, updated_at = now(),
                 lease_expires_at = case when lease_owner = %(lease_owner)s
                   then now() + make_interval(secs => %(secs)s) else lease_expires_at end
           where campaign_id = %(c)s
             and (select case when %(guard)s::text is null then ''
                              else set_config('{GUARD_SETTING}', %(guard)s, false) end) is not null
          returning {light(conn, 'campaigns')}
        )
        select o.stage_run_id, m.* from opened o left join moved m on true
        """,
        {"tick": tick_id, "c": campaign_id, "stage": stage.value, "attempt": attempt, "owner": owner, "pass": pass_,
         "lease_owner": lease_owner, "secs": float(lease_seconds), "guard": guard,
         "prev": close_previous[0] if close_previous else None,
         "prev_summary": Jsonb(close_previous[1] or {}) if close_previous else None,
         "prev_ago": max(0.0, float(close_previous[2])) if close_previous else 0.0},
    ).fetchone()
    run_id = row.pop("stage_run_id")
    return run_id, (row if row.get("campaign_id") is not None else None)


def finish_checked(conn: psycopg.Connection, stage_run_id: int, stage: Stage, campaign_id: UUID, owner: str,
                   summary: dict[str, Any] | None, *, untie: bool, release: bool = False,
                   ended_ago: float = 0.0) -> str | None:
    """Close a stage that succeeded, checking in the same statement that ``owner`` still leases
    the campaign: if not (its writes since were refused), the row is closed ``skipped`` with the
    reason instead, which is returned (None: closed ``succeeded``). ``untie`` as :func:`finish`;
    ``release``: also drop ``owner``'s lease (as :func:`huntflow.store.campaigns.release_lease`,
    the tick's end); ``ended_ago``: the stage ended that many seconds ago (``finished_at``)."""
    row = conn.execute(
        f"""
        with verdict as (
          select (select format('lease lost during %%s: campaign %%s is leased by %%s, not by %%s',
                                %(stage)s::text, c.campaign_id, coalesce(c.lease_owner, 'nobody'), %(owner)s::text)
                    from hunt.campaigns c
                   where c.campaign_id = %(c)s and c.lease_owner is distinct from %(owner)s) as lost
        ), closed as (
          update hunt.stage_runs s
             set status = case when v.lost is null then 'succeeded' else 'skipped' end::hunt.stage_run_status,
                 summary = case when v.lost is null then %(summary)s::jsonb
                                else jsonb_build_object('reason', v.lost) end,
                 error = null, finished_at = now() - make_interval(secs => %(ago)s)
            from verdict v
           where s.stage_run_id = %(id)s
          returning 1
        ), released as (
          update hunt.campaigns set lease_owner = null, lease_expires_at = null, lease_pid = null, updated_at = now()
           where %(release)s and campaign_id = %(c)s and lease_owner = %(owner)s
          returning 1
        )
        select (select lost from verdict) as lost,
               case when %(untie)s then set_config('{GUARD_SETTING}', '', false) end as untied
        """,
        {"stage": stage.value, "c": campaign_id, "owner": owner, "summary": Jsonb(summary or {}),
         "id": stage_run_id, "untie": untie, "release": release, "ago": max(0.0, float(ended_ago))},
    ).fetchone()
    return row["lost"]


def for_tick(conn: psycopg.Connection, tick_id: UUID) -> list[dict[str, Any]]:
    """Every row a tick wrote, in stage order (a stage's second pass after its first)."""
    return conn.execute(
        "select * from hunt.stage_runs where tick_id = %s order by campaign_id, stage, pass", (tick_id,)
    ).fetchall()


def reap_orphans(conn: psycopg.Connection, tick_id: UUID) -> list[dict[str, Any]]:
    """Close the ``running`` rows of ticks that died as ``crashed``, with the reason.

    A row is orphaned when its tick (its ``owner``, else ``tick:<tick_id>``) no longer holds its campaign's lease (expired, released, or
    its heartbeat session is gone), or — for a row without a campaign — when it has been open
    for ten minutes. Rows of ``tick_id`` (the caller) are left alone.

    Returns:
        The closed rows (``stage_run_id``, ``tick_id``, ``campaign_id``, ``stage``).
    """
    return conn.execute(REAP_SQL, {"tick": tick_id}).fetchall()


REAP_SQL = """
        update hunt.stage_runs s
           set status = 'crashed', finished_at = now(),
               error = 'crashed: tick ' || s.tick_id || ' ended without closing this row'
                       || case when c.lease_owner is distinct from coalesce(s.owner, 'tick:' || s.tick_id)
                                    and c.lease_owner is not null
                               then ' (campaign now leased by ' || c.lease_owner || ')'
                               when c.lease_owner is not null and c.lease_expires_at > now()
                               then ' (its heartbeat session is gone)'
                               else ' (its lease lapsed)' end
          from hunt.stage_runs s2
          left join hunt.campaigns c on c.campaign_id = s2.campaign_id
         where s.stage_run_id = s2.stage_run_id and s.status = 'running' and s.tick_id <> %(tick)s
           and case when s.campaign_id is null then s.started_at < now() - interval '10 minutes'
                    else not (c.lease_owner is not distinct from coalesce(s.owner, 'tick:' || s.tick_id)
                              and c.lease_expires_at > now()
                              and (c.lease_pid is null or hunt.lease_session_alive(c.lease_pid)))
               end
        returning s.stage_run_id, s.tick_id, s.campaign_id, s.stage
        """
""":func:`reap_orphans`' statement (parameter ``tick``), to run it in a pipeline with other statements."""
