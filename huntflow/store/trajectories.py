"""``hunt.trajectories``: what learn recorded after each told generation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


def record(conn: psycopg.Connection, row: dict[str, Any]) -> bool:
    """Insert a trajectory row; ``False`` if this generation already has one (idempotent)."""
    cur = conn.execute(
        """
        insert into hunt.trajectories
          (campaign_id, generation_id, generation_index, evaluations_used, best_objective,
           improvement, feasible_fraction, hypervolume, mode, reward, details)
        values (%(campaign_id)s, %(generation_id)s, %(generation_index)s, %(evaluations_used)s,
                %(best_objective)s, %(improvement)s, %(feasible_fraction)s, %(hypervolume)s,
                %(mode)s, %(reward)s, %(details)s)
        on conflict (generation_id) do nothing
        """,
        {**row, "details": Jsonb(row.get("details", {}))},
    )
    return cur.rowcount == 1


def for_campaign(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "select * from hunt.trajectories where campaign_id = %s order by generation_index", (campaign_id,)
    ).fetchall()


def recorded_among(conn: psycopg.Connection, generation_ids: list[UUID]) -> set[UUID]:
    """Which of these generations have a trajectory row."""
    if not generation_ids:
        return set()
    rows = conn.execute("select generation_id from hunt.trajectories where generation_id = any(%s)",
                        (list(generation_ids),)).fetchall()
    return {r["generation_id"] for r in rows}


def latest_state(conn: psycopg.Connection, campaign_id: UUID, tol: float) -> dict[str, Any]:
    """What learn continues from, without reading the whole trajectory: ``count`` (rows),
    ``best_objective`` (of the latest row) and ``stagnant`` (rows after the latest one that
    improved by more than ``tol``; an improvement of ``None`` does not count as one)."""
    return conn.execute(
        """
        select
          (select count(*) from hunt.trajectories where campaign_id = %(c)s)::int as count,
          (select best_objective from hunt.trajectories where campaign_id = %(c)s
            order by generation_index desc limit 1) as best_objective,
          (select count(*) from hunt.trajectories where campaign_id = %(c)s and generation_index > coalesce(
             (select max(generation_index) from hunt.trajectories
               where campaign_id = %(c)s and improvement > %(tol)s), -1))::int as stagnant
        """,
        {"c": campaign_id, "tol": float(tol)},
    ).fetchone()
