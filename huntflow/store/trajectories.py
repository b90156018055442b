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
    ``best_objective``, ``generation_id`` and ``generation_index`` of the latest row, and
    ``stagnant`` (rows after the latest one that improved by more than ``tol``; an improvement
    of ``None`` does not count as one). ``kept``: the counts came from ``hunt.learn_states``
    (:func:`keep_state`), which is trusted only while its ``last_generation_id`` is the latest
    row; else they were counted now (one index scan over the campaign's rows)."""
    return conn.execute(_LATEST_STATE, {"c": campaign_id, "tol": float(tol)}).fetchone()


_LATEST_STATE = """
    with latest as (
      select generation_id, generation_index, best_objective from hunt.trajectories
       where campaign_id = %(c)s order by generation_index desc limit 1),
    kept as (
      select s.trajectory_rows, s.stagnant from hunt.learn_states s join latest l
        on l.generation_id = s.last_generation_id where s.campaign_id = %(c)s)
    select
      coalesce((select trajectory_rows from kept),
               (select count(*) from hunt.trajectories where campaign_id = %(c)s))::int as count,
      (select best_objective from latest) as best_objective,
      (select generation_id from latest) as generation_id,
      (select generation_index from latest) as generation_index,
      coalesce((select stagnant from kept),
               (select count(*) from hunt.trajectories where campaign_id = %(c)s and generation_index > coalesce(
                  (select max(generation_index) from hunt.trajectories
                    where campaign_id = %(c)s and improvement > %(tol)s), -1)))::int as stagnant,
      exists (select 1 from kept) as kept
"""
"""(``coalesce`` evaluates its second argument only when the first is null: with a kept state
the counts are never run.)"""


def advance_state(state: dict[str, Any], rows: list[dict[str, Any]], tol: float) -> dict[str, Any] | None:
    """:func:`latest_state`'s ``count`` and ``stagnant`` after ``rows`` (new trajectory rows,
    in generation order) are recorded, with the last one's ``generation_id``; ``None`` when a
    row would not be the latest (its ``generation_index`` not past the latest row's), where
    only counting gives the same answer."""
    count, stagnant, last = state["count"], state["stagnant"], state.get("generation_index")
    for row in rows:
        if last is not None and row["generation_index"] <= last:
            return None
        last = row["generation_index"]
        improved = row["improvement"] is not None and row["improvement"] > tol
        stagnant = 0 if improved else stagnant + 1
        count += 1
    return {"count": count, "stagnant": stagnant, "generation_id": rows[-1]["generation_id"]} if rows else None


def keep_state(conn: psycopg.Connection, campaign_id: UUID, state: dict[str, Any] | None) -> None:
    """Store :func:`advance_state`'s counts (``None``: forget them, so the next read counts);
    call in the transaction that records the rows."""
    if state is None:
        conn.execute("delete from hunt.learn_states where campaign_id = %s", (campaign_id,))
        return
    conn.execute(
        "insert into hunt.learn_states (campaign_id, trajectory_rows, stagnant, last_generation_id)"
        " values (%s, %s, %s, %s) on conflict (campaign_id) do update set trajectory_rows = excluded.trajectory_rows,"
        " stagnant = excluded.stagnant, last_generation_id = excluded.last_generation_id, updated_at = now()",
        (campaign_id, int(state["count"]), int(state["stagnant"]), state["generation_id"]))
