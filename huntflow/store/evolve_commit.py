"""evolve's side of the generations table: its reads in one round trip and its write-ahead commit.

Split from :mod:`huntflow.store.generations` (the lifecycle's transitions): what evolve reads
besides the checkpoint (:func:`evolve_view`) and the one transaction that tells, plans and
stores the optimizer's state (:func:`commit_evolve`). Measurements: benchmarks/RESULTS.md,
"Orchestration overhead".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.errors import StaleTransition
from huntflow.store import folds, summaries
from huntflow.store.campaigns import DIGEST_SQL
from huntflow.store.columns import light
from huntflow.store.generations import STALE_SQLSTATE, copy_evaluations

COPY_ABOVE = 256
"""Planned generations with more candidates than this write their rows with ``COPY`` after the
commit's pipeline (measured: at 1 024 rows COPY is ~20 % faster than ``insert … unnest``; below,
the pipeline's one round trip wins)."""
CHECKPOINTS_KEPT = 2
"""Generations that keep their copy of the optimizer checkpoint (the newest); resume reads the
campaign's own (``hunt.campaigns.optimizer_state``), so older copies are dropped at each commit
and checkpoint storage stays bounded however long the hunt runs."""

@dataclass(frozen=True)
class PlannedGeneration:
    """A generation evolve is about to write (one optimizer ask)."""

    ask_id: int
    generation_index: int
    kind: str
    fidelity: int
    fidelity_name: str
    seed: int
    operator: str
    max_attempts: int
    candidates: list[dict[str, float]]
    param_hashes: list[str]
    decisions: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def evolve_view(conn: psycopg.Connection, campaign_id: UUID, pending: list[int],
                targets: list[summaries.Target], digest: bool = False) -> dict[str, Any]:
    """What evolve reads besides the checkpoint, four reads in one round trip (a pipeline):

    * ``ready``: ask id -> the generation of each ``pending`` ask that is reviewed or failed for
      good (verification re-runs left out), as :func:`huntflow.store.generations.by_status` gives them;
    * ``evaluations``: generation id -> its evaluation rows in candidate order, for those;
    * ``next_index``: as :func:`huntflow.store.generations.next_index`; ``fold``: as :func:`huntflow.store.folds.get`;
    * ``history``: :func:`huntflow.store.summaries.for_campaign` after the stored fold;
    * with ``digest``, also ``digest``: :func:`huntflow.store.campaigns.checkpoint_digest` (the
      live optimizer's check, so the reads can use its pending asks in the same round trip)."""
    gen_cols = light(conn, "generations")  # cached column lists first: nothing may fetch inside the pipeline
    ready_where = ("campaign_id = %s and status in ('reviewed', 'failed') and kind <> 'verification'"
                   " and ask_id = any(%s)")
    history_sql, history_params = summaries.campaign_query(campaign_id, targets, after_fold="state")
    with conn.pipeline():
        stored = conn.execute(DIGEST_SQL, (campaign_id,)) if digest else None
        scalars = conn.execute(
            "select (select coalesce(max(generation_index) + 1, 0) from hunt.generations"
            "         where campaign_id = %(c)s and kind <> 'verification') as next_index,"
            " f.state, f.previous from (select 1) one"
            " left join hunt.campaign_folds f on f.campaign_id = %(c)s", {"c": campaign_id})
        ready = conn.execute(f"select {gen_cols} from hunt.generations where {ready_where} order by ask_id",
                             (campaign_id, list(pending)))
        evals = conn.execute(
            "select * from hunt.evaluations where generation_id in"
            f" (select generation_id from hunt.generations where {ready_where})"
            " order by generation_id, candidate_index", (campaign_id, list(pending)))
        history = conn.execute(history_sql, history_params)
    top = scalars.fetchone()
    out: dict[str, Any] = {}
    if stored is not None:
        row = stored.fetchone()
        if row is None:
            raise KeyError(f"no campaign {campaign_id!s}")
        out["digest"] = (row["optimizer_seq"], row["digest"])
    by_gen: dict[UUID, list[dict[str, Any]]] = {}
    for e in evals.fetchall():
        by_gen.setdefault(e["generation_id"], []).append(e)
    return {
        **out,
        "ready": {g["ask_id"]: g for g in ready.fetchall()},
        "evaluations": by_gen,
        "next_index": top["next_index"],
        "fold": None if top["state"] is None else {"state": top["state"], "previous": top["previous"]},
        "history": history.fetchall(),
    }


def commit_evolve(
    conn: psycopg.Connection,
    campaign_id: UUID,
    *,
    expected_seq: int,
    checkpoint: bytes,
    summary: dict[str, Any],
    finished: bool,
    told: dict[UUID, list[tuple[UUID, dict[str, Any]]]],
    planned: list[PlannedGeneration],
    already_final: frozenset[UUID] = frozenset(),
    targets: list[summaries.Target] | None = None,
    fold: tuple[dict[str, Any], dict[str, Any] | None] | None = None,
    journal_entry: list[Any] | None = None,
) -> list[UUID]:
    """Evolve's write-ahead commit, all in one transaction.

    The optimizer's state is either a full ``checkpoint`` (stored on the campaign and the
    planned generations; the journal emptied) or, with ``journal_entry``, this commit's
    operations appended to ``hunt.campaigns.optimizer_journal`` after the stored checkpoint
    (:mod:`huntflow.engine.optimize.journal`; ``checkpoint`` is then ignored).

    Marks the ``told`` generations (reviewed -> told; those in ``already_final`` — failed
    generations the optimizer is told about as failures — keep their status) with each
    evaluation's annotation, inserts
    the ``planned`` generations and their pending evaluations (each carrying the checkpoint),
    and stores the checkpoint on the campaign with a compare-and-set on ``optimizer_seq``.
    Also writes the told generations' ``hunt.generation_summaries`` rows, the campaign's
    ``fold`` (``(state, previous)``, :mod:`~huntflow.store.folds`) when given, and drops the
    checkpoint copies of all but the newest :data:`CHECKPOINTS_KEPT` generations.

    Returns:
        The new generations' ids.
    Raises:
        StaleTransition: another evolve committed first (``optimizer_seq`` moved) or a told
            generation was no longer ``reviewed``; nothing is written.
    """
    transitioned = [gid for gid in told if gid not in already_final]
    stale = f"campaign {campaign_id}: optimizer checkpoint moved past seq {expected_seq}"
    big = any(len(g.candidates) > COPY_ABOVE for g in planned)

    def queue() -> list[psycopg.Cursor]:
        """Every write of the commit, queued in the pipeline; the planned generations' cursors."""
        if journal_entry is None:  # a full checkpoint: the journal starts again
            conn.execute(
                "with cas as (update hunt.campaigns set optimizer_state = %s, optimizer_journal = '[]'::jsonb,"
                " optimizer_seq = optimizer_seq + 1, search_summary = %s, search_finished = %s, updated_at = now()"
                " where campaign_id = %s and optimizer_seq = %s returning 1)"
                " select hunt.expect(exists (select 1 from cas), %s)",
                (checkpoint, Jsonb(summary), finished, campaign_id, expected_seq, stale),
            )
        else:  # the checkpoint stays; this commit's operations go on its journal
            conn.execute(
                "with cas as (update hunt.campaigns set optimizer_journal = optimizer_journal || %s,"
                " optimizer_seq = optimizer_seq + 1, search_summary = %s, search_finished = %s, updated_at = now()"
                " where campaign_id = %s and optimizer_seq = %s and optimizer_state is not null returning 1)"
                " select hunt.expect(exists (select 1 from cas), %s)",
                (Jsonb([journal_entry]), Jsonb(summary), finished, campaign_id, expected_seq, stale),
            )
        if transitioned:
            conn.execute(
                "with moved as (update hunt.generations set status = 'told', updated_at = now()"
                " where generation_id = any(%s) and status = 'reviewed' returning 1)"
                " select hunt.expect((select count(*) from moved) = %s, %s)",
                (transitioned, len(transitioned),
                 f"generations {', '.join(map(str, transitioned))}: not all still reviewed"),
            )
        annotations = [(evaluation_id, a) for rows in told.values() for evaluation_id, a in rows]
        if annotations:  # one statement for all rows (was one UPDATE each: 32 a demo tick)
            conn.execute(
                """
                update hunt.evaluations e set
                  objectives = r.objectives, objective = r.objective, constraints = r.constraints,
                  feasible = r.feasible, alm_loss = r.alm_loss, alm_lambda = r.alm_lambda, alm_rho = r.alm_rho,
                  alm_outer = r.alm_outer, updated_at = now()
                from jsonb_to_recordset(%s) as r(evaluation_id uuid, objectives double precision[],
                       objective double precision, constraints double precision[], feasible boolean,
                       alm_loss double precision, alm_lambda double precision[], alm_rho double precision,
                       alm_outer integer)
                where e.evaluation_id = r.evaluation_id
                """,
                (Jsonb([_annotation_row(evaluation_id, a) for evaluation_id, a in annotations]),),
            )
        inserted = [_insert_planned(conn, campaign_id, g, checkpoint if journal_entry is None else None,
                                    rows=len(g.candidates) <= COPY_ABOVE)
                    for g in planned]
        summaries.record(conn, told, targets or [])
        if fold is not None:
            folds.put(conn, campaign_id, fold[0], fold[1])
        if planned:
            conn.execute(  # the newest CHECKPOINTS_KEPT copies stay (verification runs carry none)
                "update hunt.generations set optimizer_checkpoint = null where campaign_id = %(c)s"
                " and optimizer_checkpoint is not null and generation_index < (select min(generation_index) from"
                " (select generation_index from hunt.generations where campaign_id = %(c)s"
                "  and optimizer_checkpoint is not null order by generation_index desc limit %(k)s) newest)",
                {"c": campaign_id, "k": CHECKPOINTS_KEPT},
            )
        return inserted

    try:
        if not big:
            # one round trip: BEGIN, every write, COMMIT sent together (a pipeline); the two
            # preconditions are checked in their statements (hunt.expect), so a failed one rolls
            # the whole transaction back
            with conn.pipeline(), conn.transaction():
                inserted = queue()
        else:  # large populations' rows go by COPY (faster there; it cannot run in a pipeline)
            with conn.transaction():
                with conn.pipeline():
                    inserted = queue()
                for g, cur in zip(planned, inserted, strict=True):
                    if len(g.candidates) > COPY_ABOVE:
                        gid = cur.fetchone()["generation_id"]
                        copy_evaluations(conn, (
                            (gid, campaign_id, i, Jsonb(p), h, g.fidelity, Jsonb(d))
                            for i, (p, h, d) in enumerate(zip(g.candidates, g.param_hashes, g.decisions, strict=True))))
                        cur.scroll(0, mode="absolute")
    except psycopg.Error as e:
        if getattr(e, "sqlstate", None) == STALE_SQLSTATE:
            raise StaleTransition(str(e.diag.message_primary or stale)) from None
        raise
    new_ids = [cur.fetchone()["generation_id"] for cur in inserted]
    return new_ids


def _float(v: Any) -> float | str | None:
    """A double for JSON: non-finite ones as the text Postgres reads them as (``'Infinity'``)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))


def _floats(vs: Any) -> list[float | str | None] | None:
    return None if vs is None else [_float(v) for v in vs]


def _annotation_row(evaluation_id: UUID, a: dict[str, Any]) -> dict[str, Any]:
    """One told evaluation's annotation as a JSON record (``jsonb_to_recordset``): the same
    values the typed parameters carried, exactly (a double goes through JSON as its shortest
    repr, which reads back as the same double)."""
    feasible, outer = a.get("feasible"), a.get("alm_outer")
    return {"evaluation_id": str(evaluation_id), "objectives": _floats(a.get("objectives")),
            "objective": _float(a.get("objective")), "constraints": _floats(a.get("constraints")),
            "feasible": None if feasible is None else bool(feasible), "alm_loss": _float(a.get("alm_loss")),
            "alm_lambda": _floats(a.get("alm_lambda")), "alm_rho": _float(a.get("alm_rho")),
            "alm_outer": None if outer is None else int(outer)}


def _insert_planned(conn: psycopg.Connection, campaign_id: UUID, g: PlannedGeneration,
                    checkpoint: bytes | None, rows: bool = True) -> psycopg.Cursor:
    """Queue one planned generation and (``rows``) its pending evaluation rows as one statement
    (in commit_evolve's pipeline); its cursor yields the new ``generation_id``."""
    if not len(g.candidates) == len(g.param_hashes) == len(g.decisions):
        raise ValueError(f"ask {g.ask_id}: candidates, param hashes and decisions differ in length")
    return conn.execute(
        """
        with g as (
          insert into hunt.generations
            (campaign_id, generation_index, ask_id, kind, fidelity, fidelity_name, seed,
             operator, max_attempts, optimizer_checkpoint, meta)
          values (%(c)s, %(index)s, %(ask)s, %(kind)s, %(fidelity)s, %(fidelity_name)s, %(seed)s, %(operator)s,
                  %(attempts)s, %(checkpoint)s, %(meta)s)
          returning generation_id
        ), e as (
          insert into hunt.evaluations (generation_id, campaign_id, candidate_index, params, param_hash, fidelity,
                                        decision)
          select g.generation_id, %(c)s, r.i - 1, r.x -> 0, r.x ->> 1, %(fidelity)s, r.x -> 2
            from g, jsonb_array_elements(%(rows)s) with ordinality as r(x, i)
          returning 1
        )
        select generation_id from g
        """,
        # the rows as one JSON array of [params, hash, decision] (one dump; a jsonb[] parameter
        # quoted each element through psycopg's array dumper: ~2 ms a generation of 32)
        {"c": campaign_id, "index": g.generation_index, "ask": g.ask_id, "kind": g.kind, "fidelity": g.fidelity,
         "fidelity_name": g.fidelity_name, "seed": g.seed, "operator": g.operator, "attempts": g.max_attempts,
         "checkpoint": checkpoint, "meta": Jsonb(g.meta),
         "rows": Jsonb([[p, h, d] for p, h, d in zip(g.candidates, g.param_hashes, g.decisions)] if rows else [])},
    )
