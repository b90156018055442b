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
