"""``hunt.trajectories``: what learn recorded after each told generation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


_INSERT = """
    insert into hunt.trajectories
      (campaign_id, generation_id, generation_index, evaluations_used, best_objective,
       improvement, feasible_fraction, hypervolume, mode, reward, details)
    values (%(campaign_id)s, %(generation_id)s, %(generation_index)s, %(evaluations_used)s,
            %(best_objective)s, %(improvement)s, %(feasible_fraction)s, %(hypervolume)s,
            %(mode)s, %(reward)s, %(details)s)
    on conflict (generation_id) do nothing
"""


def record(conn: psycopg.Connection, row: dict[str, Any]) -> bool:
    """Insert a trajectory row; ``False`` if this generation already has one (idempotent)."""
    cur = conn.execute(_INSERT, {**row, "details": Jsonb(row.get("details", {}))})
    return cur.rowcount == 1


def record_many(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    """:func:`record` of several rows (one round trip; in a pipeline, none of its own)."""
    if rows:
        conn.cursor().executemany(_INSERT, [{**row, "details": Jsonb(row.get("details", {}))} for row in rows])


def learn_view(conn: psycopg.Connection, campaign_id: UUID, tol: float, targets: list[Any]) -> dict[str, Any]:
    """What learn reads, in one round trip (a pipeline): ``state`` (:func:`latest_state`),
    ``fold`` (as :func:`huntflow.store.folds.get`) and ``gens``: the generation summaries after
    the older of the fold's two states (:func:`huntflow.store.summaries.campaign_query`), each
    with ``recorded`` (whether it has its trajectory row)."""
    from huntflow.store import folds, summaries

    gens_sql, gens_params = summaries.campaign_query(campaign_id, targets, after_fold="oldest", recorded=True)
    with conn.pipeline():
        state = conn.execute(_LATEST_STATE, {"c": campaign_id, "tol": float(tol)})
        fold = conn.execute(folds.GET_SQL, (campaign_id,))
        gens = conn.execute(gens_sql, gens_params)
    return {"state": state.fetchone(), "fold": fold.fetchone(), "gens": gens.fetchall()}


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
    return conn.execute(_LATEST_STATE, {"c": campaign_id, "tol": float(tol)}).fetchone()


_LATEST_STATE = """
    select
      (select count(*) from hunt.trajectories where campaign_id = %(c)s)::int as count,
      (select best_objective from hunt.trajectories where campaign_id = %(c)s
        order by generation_index desc limit 1) as best_objective,
      (select count(*) from hunt.trajectories where campaign_id = %(c)s and generation_index > coalesce(
         (select max(generation_index) from hunt.trajectories
           where campaign_id = %(c)s and improvement > %(tol)s), -1))::int as stagnant
"""
