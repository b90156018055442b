"""What an active campaign waits for when a tick moved nothing (read-only; ``tick --until-done``).

One row per active campaign: whether another live tick holds its lease (and for how long),
pending gates, kits out (manual generations dispatched), queued or running Slurm jobs, pool
runs in flight, planned generations, and the last error that counted towards its failure streak.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from huntflow.store.summaries import used_sql


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
    a tick that only looked does not change it.

    Read from the generations alone, at a cost that follows the campaigns' generation counts:
    every evaluation write (planned with its generation, parsed, reviewed or rejected, told,
    retried, failed) commits with an update of a generation row of the same campaign, which
    moves that campaign's latest ``updated_at`` (index ``generations_campaign_updated_idx``).
    Reading the evaluations' latest ``updated_at`` too cost 196 ms a tick at 1M rows."""
    row = conn.execute(
        """
        select (select count(*) from hunt.generations g where g.campaign_id = any(c.ids)) as n,
               (select max(m.at) from unnest(c.ids) as i(id),
                  lateral (select max(g.updated_at) as at from hunt.generations g where g.campaign_id = i.id) m) as g,
               (select count(*) from hunt.campaigns x where x.status <> 'active' and x.campaign_id = any(c.ids)) as done
          from (select coalesce(%(ids)s::uuid[], (select array_agg(campaign_id) from hunt.campaigns)) as ids) c
        """,
        {"ids": campaign_ids},
    ).fetchone()
    return (row["n"], row["g"], row["done"])


def loop_rows(conn: psycopg.Connection, campaign_ids: list[UUID] | None) -> list[dict[str, Any]]:
    """What the loop of ``tick --until-done`` shows and stops on after each tick, per campaign
    (all, or ``campaign_ids``; oldest first): ``slug``, ``status``, ``completion_reason``,
    ``evaluations_budget``, ``evaluations_used`` (search evaluations no longer pending, as
    ``status`` counts them: :func:`huntflow.store.summaries.used_evaluations`) and the best as
    ``hunt.campaign_progress`` says it. Its cost follows the generation counts: the view's
    counts over every evaluation row (which the view computes only when they are selected) took
    0.67 s a tick at 1M rows."""
    return conn.execute(
        f"""
        select p.campaign_id, p.slug, p.status::text as status, p.completion_reason, p.evaluations_budget,
               p.best_objective, p.best_fidelity_name, p.best_certified, {used_sql('p.campaign_id')} as evaluations_used
          from hunt.campaign_progress p
         where %(ids)s::uuid[] is null or p.campaign_id = any(%(ids)s::uuid[])
         order by p.created_at, p.slug
        """,
        {"ids": campaign_ids},
    ).fetchall()
