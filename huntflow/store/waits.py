"""What an active campaign waits for when a tick moved nothing (read-only; ``tick --until-done``).

One row per active campaign: whether another live tick holds its lease (and for how long),
pending gates, kits out (manual generations dispatched), queued or running Slurm jobs, pool
runs in flight, planned generations, and the last error that counted towards its failure streak.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg


def blockers(conn: psycopg.Connection, campaign_ids: list[UUID] | None) -> list[dict[str, Any]]:
    """Per active campaign (all, or ``campaign_ids``): ``slug``, ``lease_owner``,
    ``lease_left`` (seconds another live tick still holds it, else None), ``gates_pending``,
    ``kits_out``, ``slurm``, ``pool``, ``planned``, ``failure_streak``, ``last_error``."""
    return conn.execute(
        """
        select c.campaign_id, c.slug, c.lease_owner, c.failure_streak, c.last_error,
          case when c.lease_expires_at > now() and (c.lease_pid is null or hunt.lease_session_alive(c.lease_pid))
               then extract(epoch from c.lease_expires_at - now())::float8 end as lease_left,
          (select count(*) from hunt.gates q where q.campaign_id = c.campaign_id and q.status = 'pending') as gates_pending,
          count(*) filter (where g.operator = 'manual' and g.status in ('dispatched', 'running')) as kits_out,
          count(*) filter (where g.operator = 'slurm' and g.status in ('dispatched', 'running')) as slurm,
          count(*) filter (where g.operator not in ('manual', 'slurm', 'inline')
                             and g.status in ('dispatched', 'running')) as pool,
          count(*) filter (where g.status = 'planned') as planned
        from hunt.campaigns c
        left join hunt.generations g on g.campaign_id = c.campaign_id
        where c.status = 'active' and (%(ids)s::uuid[] is null or c.campaign_id = any(%(ids)s::uuid[]))
        group by c.campaign_id
        order by c.slug
        """,
        {"ids": campaign_ids},
    ).fetchall()


def progress_key(conn: psycopg.Connection, campaign_ids: list[UUID] | None) -> tuple[Any, ...]:
    """Changes whenever real work moved (a generation or evaluation changed, a campaign finished);
    a tick that only looked does not change it."""
    row = conn.execute(
        """
        select (select count(*) from hunt.generations g where %(ids)s::uuid[] is null or g.campaign_id = any(%(ids)s::uuid[])) as n,
               (select max(g.updated_at) from hunt.generations g where %(ids)s::uuid[] is null or g.campaign_id = any(%(ids)s::uuid[])) as g,
               (select max(e.updated_at) from hunt.evaluations e where %(ids)s::uuid[] is null or e.campaign_id = any(%(ids)s::uuid[])) as e,
               (select count(*) from hunt.campaigns c where c.status <> 'active' and (%(ids)s::uuid[] is null or c.campaign_id = any(%(ids)s::uuid[]))) as done
        """,
        {"ids": campaign_ids},
    ).fetchone()
    return (row["n"], row["g"], row["e"], row["done"])
