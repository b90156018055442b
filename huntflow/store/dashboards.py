"""``hunt.dashboard_builds``: when each campaign's dashboard was last rebuilt and what it cost.

The pacing of dashboard rebuilds (:func:`huntflow.flows.artifacts.refresh_seconds`) reads it, so
a fresh process (a scheduled tick) paces like a long-lived one instead of rebuilding every
dashboard older than the period.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg


def pacing(conn: psycopg.Connection, campaign_id: UUID) -> dict[str, Any] | None:
    """The campaign's ``slug``, ``status``, ``evaluations_budget``, ``built_ago`` (seconds since
    its last rebuild, None if never) and ``active_cost`` (the last rebuilds of all active
    campaigns, seconds, summed); None if there is no such campaign. One statement."""
    return conn.execute(
        "select c.slug, c.status::text as status, c.evaluations_budget,"
        " extract(epoch from clock_timestamp() - b.built_at)::float8 as built_ago,"
        " (select coalesce(sum(d.build_seconds), 0)::float8 from hunt.dashboard_builds d"
        "  join hunt.campaigns a using (campaign_id) where a.status = 'active') as active_cost"
        " from hunt.campaigns c left join hunt.dashboard_builds b using (campaign_id) where c.campaign_id = %s",
        (campaign_id,)).fetchone()


def record_build(conn: psycopg.Connection, campaign_id: UUID, seconds: float) -> None:
    """A rebuild of the campaign's dashboard just finished, taking ``seconds``."""
    conn.execute(
        "insert into hunt.dashboard_builds (campaign_id, built_at, build_seconds) values (%s, clock_timestamp(), %s)"
        " on conflict (campaign_id) do update set built_at = excluded.built_at, build_seconds = excluded.build_seconds",
        (campaign_id, max(0.0, float(seconds))))


def active_cost(conn: psycopg.Connection) -> float:
    """The last rebuilds of all active campaigns' dashboards, seconds, summed."""
    return float(conn.execute(
        "select coalesce(sum(d.build_seconds), 0)::float8 as s from hunt.dashboard_builds d"
        " join hunt.campaigns a using (campaign_id) where a.status = 'active'").fetchone()["s"])
