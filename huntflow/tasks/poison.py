"""Poison campaigns end: a campaign that fails the same way tick after tick is marked ``failed``.

After each campaign's stages the tick calls :func:`account`. A stage that failed after its retries
adds one to ``campaigns.failure_streak`` (with the error in ``last_error``); a clean tick resets
it. When the streak reaches ``hunt.settings.failure_streak_limit`` (default 3), or when the
campaign's last that many generations all failed their attempts (nothing told in between), the
campaign is finished as ``failed`` with the reason and the last error, a
``huntflow.campaign.failed`` Prefect event is emitted, and it takes no more tick slots.

Not counted: a lost lease (another tick works the campaign) and service outages (the database
unreachable), which say nothing about the campaign.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import psycopg

from huntflow.errors import StoreError
from huntflow.store import campaigns, leases, settings
from huntflow.store.connection import session
from huntflow.store.states import CampaignStatus

DEFAULT_LIMIT = 3
_log = logging.getLogger(__name__)


def counts(error: BaseException | None) -> bool:
    """Whether a stage's exception says something about the campaign (not a lost lease or outage)."""
    if error is None:
        return False
    if leases.lease_lost(error) is not None:
        return False
    return not isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError, StoreError))


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:500] if (text or "").strip() else ""


_LAST_FINISHED = (
    "select g.generation_id, g.status, g.error from hunt.generations g where g.campaign_id = %(c)s"
    " and g.status in ('told', 'failed') and not exists (select 1 from hunt.evaluations e"
    "   where e.generation_id = g.generation_id and e.failure_category = 'gate_rejected')"
    " order by g.ask_id desc limit {limit}")
"""The campaign's last finished generations, newest first (gate rejections are decisions, not
generations that finished); ``{limit}``: the SQL of how many."""


def failed_generations(conn: psycopg.Connection, campaign_id: UUID, limit: int) -> list[dict[str, Any]]:
    """The campaign's last ``limit`` finished generations when all of them failed their
    attempts (gate rejections are decisions, not failures), else ``[]``."""
    rows = conn.execute(_LAST_FINISHED.format(limit="%(n)s"), {"c": campaign_id, "n": int(limit)}).fetchall()
    if len(rows) < limit or any(r["status"] != "failed" for r in rows):
        return []
    return rows


def account(owner: str, campaign_id: UUID, stage: str | None, error: BaseException | None,
            message: str = "") -> dict[str, Any] | None:
    """Update the campaign's failure streak after its stages ran in this tick; fail it when
    poisoned. Must run while ``owner`` still holds the lease (the write is guarded).

    Args:
        stage: the stage that failed after its retries (None: every stage succeeded).
        error: its exception; ``message``: its message as Prefect recorded it.
    Returns:
        ``{"failed": reason}`` when the campaign was failed now, ``{"streak": n}`` while it
        counts, else None. Never raises: accounting must not hide the stage's own error.
    """
    try:
        if stage is None or not counts(error):  # the common case, a clean tick: one statement
            with session() as pooled:
                limit = _quiet_check(pooled, owner, campaign_id, reset=stage is None)
                if limit is None:
                    return None
                with leases.guarded(pooled, owner) as conn:
                    gens = failed_generations(conn, campaign_id, limit)
                    if gens:
                        last = _first_line(gens[0]["error"] or "")
                        slug = campaigns.get_campaign(conn, campaign_id)["slug"]
                        reason = f"poisoned: its last {len(gens)} generations all failed their attempts: {last}"
                        return _fail(conn, campaign_id, slug, reason, last)
            return None
        with session() as pooled, leases.guarded(pooled, owner) as conn:
            limit = max(1, int(settings.get_setting(conn, "failure_streak_limit", DEFAULT_LIMIT)))
            text = _first_line(message or f"{type(error).__name__}: {error}")
            row = conn.execute(
                "update hunt.campaigns set failure_streak = failure_streak + 1, last_error = %s"
                " where campaign_id = %s and status = 'active' returning failure_streak, slug",
                (f"{stage}: {text}", campaign_id),
            ).fetchone()
            if row is None:
                return None
            if row["failure_streak"] >= limit:
                reason = f"poisoned: {stage} failed {row['failure_streak']} ticks in a row: {text}"
                return _fail(conn, campaign_id, row["slug"], reason, f"{stage}: {text}")
            return {"streak": row["failure_streak"]}
    except Exception as e:
        if leases.lease_lost(e) is None:
            _log.warning("failure accounting of campaign %s skipped: %s", campaign_id, type(e).__name__)
    return None


def _quiet_check(conn: psycopg.Connection, owner: str, campaign_id: UUID, reset: bool) -> int | None:
    """A tick without a counted failure, in one statement: reset the streak (``reset``: every
    stage succeeded; only while ``owner`` leases the campaign, the condition the lease guard
    would impose) and see whether the last ``failure_streak_limit`` finished generations all
    failed (as :func:`failed_generations`). Returns that limit when they did, else None."""
    row = conn.execute(
        """
        with lim as (
          select greatest(1, coalesce((select trunc((value #>> '{}')::numeric)::int from hunt.settings
                                        where key = 'failure_streak_limit'), %(default)s)) as n
        ), reset as (
          update hunt.campaigns set failure_streak = 0
           where %(reset)s and campaign_id = %(c)s and failure_streak <> 0 and lease_owner = %(owner)s
          returning 1
        ), last as (
        """ + _LAST_FINISHED.format(limit="(select n from lim)") + """
        )
        select (select n from lim) as n, count(*) as finished, count(*) filter (where status = 'failed') as failed
          from last
        """,
        {"default": DEFAULT_LIMIT, "reset": reset, "c": campaign_id, "owner": owner},
    ).fetchone()
    return row["n"] if row["finished"] >= row["n"] and row["failed"] == row["finished"] else None


def _fail(conn: psycopg.Connection, campaign_id: UUID, slug: str, reason: str, last_error: str) -> dict[str, Any] | None:
    conn.execute("update hunt.campaigns set last_error = %s where campaign_id = %s", (last_error, campaign_id))
    if not campaigns.finish_campaign(conn, campaign_id, CampaignStatus.FAILED, reason):
        return None
    try:
        from prefect.events import emit_event

        emit_event(
            event="huntflow.campaign.failed",
            resource={"prefect.resource.id": f"huntflow.campaign.{slug}", "prefect.resource.name": slug},
            payload={"reason": reason, "last_error": last_error},
        )
    except Exception:  # an event is a notification, never a reason to fail the tick
        pass
    return {"failed": reason}
