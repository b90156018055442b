"""Generations and their evaluation rows: planned by evolve, launched, parsed, reviewed, told.

Lifecycle (``hunt.generation_status``)::

    planned -> dispatched -> running -> succeeded -> parsed -> reviewed -> told
       ^            |            |           |
       +------------+------------+-----------+--> failed   (attempts exhausted)
     (retry: lost run, corrupt result, below the quality floor)

Every transition is one ``UPDATE ... WHERE generation_id = %s AND status = ANY(expected)``;
it returns ``False`` when the row was not in an expected status (a concurrent writer won).
Evaluation rows are written in the same transaction as the transition they belong to; new
ones with ``COPY`` (:func:`copy_evaluations`), not one ``INSERT`` per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.errors import StaleTransition
from huntflow.store import folds, summaries
from huntflow.store.campaigns import DIGEST_SQL
from huntflow.store.columns import light
from huntflow.store.states import GenerationStatus as GS


COPY_ABOVE = 256
"""Planned generations with more candidates than this write their rows with ``COPY`` after the
commit's pipeline (measured: at 1 024 rows COPY is ~20 % faster than ``insert … unnest``; below,
the pipeline's one round trip wins)."""
STALE_SQLSTATE = "HF412"
"""Raised by ``hunt.expect`` (migration ``20261205010000_expect.sql``): a precondition checked
inside a pipelined transaction did not hold; the transaction was rolled back."""
CHECKPOINTS_KEPT = 2
"""Generations that keep their copy of the optimizer checkpoint (the newest); resume reads the
campaign's own (``hunt.campaigns.optimizer_state``), so older copies are dropped at each commit
and checkpoint storage stays bounded however long the hunt runs."""

EVALUATION_COLUMNS = ("generation_id", "campaign_id", "candidate_index", "params", "param_hash", "fidelity",
                      "decision")


def copy_evaluations(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Write new evaluation rows (tuples in :data:`EVALUATION_COLUMNS` order; json columns as
    ``Jsonb``) with one ``COPY``; returns how many. Use inside the caller's transaction."""
    n = 0
    with conn.cursor() as cur, cur.copy(
        f"copy hunt.evaluations ({', '.join(EVALUATION_COLUMNS)}) from stdin"
    ) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


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


def _statuses(expected: Iterable[GS]) -> list[str]:
    return [s.value for s in expected]


def transition(conn: psycopg.Connection, generation_id: UUID, expected: Iterable[GS], to: GS, *,
               fence: str | None = None, **sets: Any) -> bool:
    """Move a generation from one of ``expected`` to ``to``, setting extra columns.

    Values in ``sets`` are parameters; the special value ``"now()"`` stamps the database clock.
    ``fence``: move only while the row's ``dispatch_ref`` is this one (a run another dispatcher
    took over must not write).

    Returns:
        ``False`` if the row was not in an expected status (nothing changed).
    """
    assignments = ["status = %(to)s", "updated_at = now()"]
    params: dict[str, Any] = {"to": to.value, "id": generation_id, "expected": _statuses(expected)}
    for column, value in sets.items():
        if value == "now()":
            assignments.append(f"{column} = now()")
        else:
            assignments.append(f"{column} = %({column})s")
            params[column] = Jsonb(value) if isinstance(value, (dict, list)) else value
    where = ""
    if fence is not None:
        where, params["fence"] = " and dispatch_ref = %(fence)s", fence
    cur = conn.execute(
        f"update hunt.generations set {', '.join(assignments)}"
        " where generation_id = %(id)s and status = any(%(expected)s::hunt.generation_status[])" + where,
        params,
    )
    return cur.rowcount == 1


def dispatch_planned(conn: psycopg.Connection, generation_id: UUID, ref: str) -> bool:
    """``planned -> dispatched`` for its next attempt (``attempt + 1``) with ``dispatch_ref``, in
    one statement; ``False`` when it was not planned (another dispatcher won, or it ran)."""
    return conn.execute(
        "update hunt.generations set status = 'dispatched', attempt = attempt + 1, dispatch_ref = %s,"
        " dispatched_at = now(), heartbeat_at = now(), updated_at = now()"
        " where generation_id = %s and status = 'planned'", (ref, generation_id)).rowcount == 1


def start_running(conn: psycopg.Connection, generation_id: UUID, attempt: int | None = None,
                  fence: str | None = None) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]] | None:
    """A generation's run starts: ``planned``/``dispatched`` -> ``running`` (only at ``attempt``
    and while ``dispatch_ref`` is ``fence``, when given), read back with its campaign's row and
    its evaluation rows, in one round trip (a pipeline). None when it did not move (nothing
    else is read then: the caller reads the row to say why)."""
    gen_cols, campaign_cols = light(conn, "generations"), light(conn, "campaigns", "c")
    with conn.pipeline():
        moved = conn.execute(
            "update hunt.generations set status = 'running', started_at = now(), heartbeat_at = now(),"
            " updated_at = now() where generation_id = %(id)s and status in ('planned', 'dispatched')"
            " and (%(attempt)s::int is null or attempt = %(attempt)s)"
            " and (%(fence)s::text is null or dispatch_ref = %(fence)s)"
            f" returning {gen_cols}", {"id": generation_id, "attempt": attempt, "fence": fence})
        campaign = conn.execute(
            f"select {campaign_cols} from hunt.campaigns c join hunt.generations g using (campaign_id)"
            " where g.generation_id = %s", (generation_id,))
        rows = conn.execute("select * from hunt.evaluations where generation_id = %s order by candidate_index",
                            (generation_id,))
    gen = moved.fetchone()
    if gen is None:
        return None
    return gen, campaign.fetchone(), rows.fetchall()


def set_dispatch_ref(conn: psycopg.Connection, generation_id: UUID, attempt: int, ref: str) -> bool:
    """Record where an attempt went, whatever its status now (the operator may already have
    started it). Returns ``False`` when the generation has moved to another attempt."""
    cur = conn.execute(
        "update hunt.generations set dispatch_ref = %s, updated_at = now()"
        " where generation_id = %s and attempt = %s",
        (ref, generation_id, int(attempt)),
    )
    return cur.rowcount == 1


def get(conn: psycopg.Connection, generation_id: UUID) -> dict[str, Any]:
    """A generation row. Raises ``KeyError`` when absent."""
    row = conn.execute(f"select {light(conn, 'generations')} from hunt.generations where generation_id = %s",
                       (generation_id,)).fetchone()
    if row is None:
        raise KeyError(f"no generation {generation_id}")
    return row


def get_for_parse(conn: psycopg.Connection, generation_id: UUID) -> dict[str, Any]:
    """:func:`get` with ``candidate_indices`` (as :func:`parse_view` gives them), in one statement."""
    row = conn.execute(
        f"select {light(conn, 'generations', 'g')}, (select array_agg(e.candidate_index order by e.candidate_index)"
        " from hunt.evaluations e where e.generation_id = g.generation_id) as candidate_indices"
        " from hunt.generations g where g.generation_id = %s", (generation_id,)).fetchone()
    if row is None:
        raise KeyError(f"no generation {generation_id}")
    return row


def evaluations(conn: psycopg.Connection, generation_id: UUID) -> list[dict[str, Any]]:
    """A generation's evaluation rows in candidate order."""
    return conn.execute(
        "select * from hunt.evaluations where generation_id = %s order by candidate_index", (generation_id,)
    ).fetchall()


def by_status(conn: psycopg.Connection, campaign_id: UUID, statuses: Iterable[GS]) -> list[dict[str, Any]]:
    """The campaign's generations in any of ``statuses``, oldest ask first."""
    return conn.execute(
        f"select {light(conn, 'generations')} from hunt.generations where campaign_id = %s"
        " and status = any(%s::hunt.generation_status[]) order by ask_id",
        (campaign_id, _statuses(statuses)),
    ).fetchall()


def in_flight_count(conn: psycopg.Connection, campaign_id: UUID) -> int:
    """Generations asked but not yet told, failed or cancelled (review's verification
    generations are no asks: they do not count)."""
    return conn.execute(
        "select count(*) as n from hunt.generations where campaign_id = %s"
        " and status not in ('told', 'failed', 'cancelled') and kind <> 'verification'",
        (campaign_id,),
    ).fetchone()["n"]


def told_ask_ids(conn: psycopg.Connection, campaign_id: UUID) -> set[int]:
    """Ask ids of the campaign's generations the optimizer has been told."""
    rows = conn.execute(
        "select ask_id from hunt.generations where campaign_id = %s and status = 'told'", (campaign_id,)
    ).fetchall()
    return {r["ask_id"] for r in rows}


def next_index(conn: psycopg.Connection, campaign_id: UUID) -> int:
    """The next optimizer ask's ``generation_index`` (verification re-runs carry their checked
    generation's number, so they leave no holes)."""
    return conn.execute(
        "select coalesce(max(generation_index) + 1, 0) as n from hunt.generations"
        " where campaign_id = %s and kind <> 'verification'",
        (campaign_id,),
    ).fetchone()["n"]


def evolve_view(conn: psycopg.Connection, campaign_id: UUID, pending: list[int],
                targets: list[summaries.Target], digest: bool = False) -> dict[str, Any]:
    """What evolve reads besides the checkpoint, four reads in one round trip (a pipeline):

    * ``ready``: ask id -> the generation of each ``pending`` ask that is reviewed or failed for
      good (verification re-runs left out), as :func:`by_status` gives them;
    * ``evaluations``: generation id -> its evaluation rows in candidate order, for those;
    * ``next_index``: as :func:`next_index`; ``fold``: as :func:`huntflow.store.folds.get`;
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
        if annotations:  # (a cursor left open: its results arrive when the pipeline syncs)
            conn.cursor().executemany(
                """
                update hunt.evaluations set
                  objectives = %(objectives)s, objective = %(objective)s,
                  constraints = %(constraints)s, feasible = %(feasible)s,
                  alm_loss = %(alm_loss)s, alm_lambda = %(alm_lambda)s, alm_rho = %(alm_rho)s,
                  alm_outer = %(alm_outer)s, updated_at = now()
                where evaluation_id = %(evaluation_id)s
                """,
                [
                    {"evaluation_id": evaluation_id,
                     **{k: a.get(k) for k in ("objectives", "objective", "constraints", "feasible",
                                             "alm_loss", "alm_lambda", "alm_rho", "alm_outer")}}
                    for evaluation_id, a in annotations
                ],
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
          select g.generation_id, %(c)s, r.i - 1, r.p, r.h, %(fidelity)s, r.d
            from g, unnest(%(params)s::jsonb[], %(hashes)s::text[], %(decisions)s::jsonb[])
                    with ordinality as r(p, h, d, i)
           where %(rows)s
          returning 1
        )
        select generation_id from g
        """,
        {"c": campaign_id, "index": g.generation_index, "ask": g.ask_id, "kind": g.kind, "fidelity": g.fidelity,
         "fidelity_name": g.fidelity_name, "seed": g.seed, "operator": g.operator, "attempts": g.max_attempts,
         "checkpoint": checkpoint, "meta": Jsonb(g.meta),
         "rows": rows, "params": [Jsonb(p) for p in g.candidates] if rows else [],
         "hashes": list(g.param_hashes) if rows else [], "decisions": [Jsonb(d) for d in g.decisions] if rows else []},
    )


def mark_succeeded(
    conn: psycopg.Connection, generation_id: UUID, *, result_document: dict[str, Any], artifact_path: str | None,
    fence: str | None = None,
) -> bool:
    """running -> succeeded, storing the raw result document and the artifact path (only while
    ``dispatch_ref`` is ``fence``, when given)."""
    return transition(
        conn, generation_id, [GS.RUNNING], GS.SUCCEEDED, fence=fence,
        result_document=result_document, artifact_path=artifact_path, finished_at="now()", error=None,
    )


def record_parsed(
    conn: psycopg.Connection, generation_id: UUID, rows: list[dict[str, Any]], summary: dict[str, Any]
) -> bool:
    """succeeded -> parsed, writing each evaluation's metrics, status and provenance.

    ``rows``: dicts with ``candidate_index, status, failure_category, metrics, provenance,
    wall_seconds`` and optionally ``failure_detail`` (what went wrong, for a failed one).
    One statement (atomic by itself): the generation moves only from ``succeeded``, and only
    then are its evaluations written (from one JSON array of the rows)."""
    payload = [
        {
            "candidate_index": int(r["candidate_index"]), "status": r["status"],
            "failure_category": r.get("failure_category"), "failure_detail": r.get("failure_detail") or None,
            "metrics": r.get("metrics"), "provenance": r.get("provenance"), "wall_seconds": r.get("wall_seconds"),
        }
        for r in rows
    ]
    row = conn.execute(
        """
        with moved as (
          update hunt.generations set status = 'parsed', updated_at = now(), meta = meta || %(meta)s
           where generation_id = %(id)s and status = 'succeeded'
          returning generation_id
        ), written as (
          update hunt.evaluations e
             set status = r.status::hunt.evaluation_status, failure_category = r.failure_category,
                 failure_detail = r.failure_detail, metrics = r.metrics, provenance = r.provenance,
                 wall_seconds = r.wall_seconds, updated_at = now()
            from moved, jsonb_to_recordset(%(rows)s) as r(candidate_index integer, status text,
                   failure_category text, failure_detail jsonb, metrics jsonb, provenance jsonb,
                   wall_seconds double precision)
           where e.generation_id = moved.generation_id and e.candidate_index = r.candidate_index
          returning 1
        )
        select count(*) as moved from moved
        """,
        {"id": generation_id, "meta": Jsonb({"parse": summary}), "rows": Jsonb(payload)},
    ).fetchone()
    return row["moved"] == 1


def record_reviewed(conn: psycopg.Connection, generation_id: UUID, rejected: list[UUID]) -> bool:
    """parsed -> reviewed, marking ``rejected`` evaluations (critical/high findings)."""
    with conn.transaction():
        if not transition(conn, generation_id, [GS.PARSED], GS.REVIEWED):
            return False
        reject(conn, rejected)
    return True


def reject(conn: psycopg.Connection, evaluation_ids: list[UUID]) -> None:
    """Mark succeeded evaluations ``rejected`` by review (critical/high findings)."""
    if evaluation_ids:
        conn.execute(
            "update hunt.evaluations set status = 'rejected', failure_category = coalesce(failure_category, 'review'),"
            " updated_at = now() where evaluation_id = any(%s) and status = 'succeeded'",
            (evaluation_ids,),
        )


def retry_or_fail(conn: psycopg.Connection, generation_id: UUID, expected: Iterable[GS], error: str,
                  fence: str | None = None) -> GS | None:
    """Send a generation back to ``planned`` for another attempt, or fail it when out of attempts.

    Its evaluations return to ``pending`` (retry) or become ``failed`` (give up), in the same
    transaction. Returns the new status, or ``None`` when the row had already moved on (or its
    ``dispatch_ref`` is no longer ``fence``).
    """
    with conn.transaction():
        row = conn.execute(
            "select attempt, max_attempts from hunt.generations where generation_id = %s for update",
            (generation_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no generation {generation_id}")
        if row["attempt"] < row["max_attempts"]:
            to = GS.PLANNED
            ok = transition(conn, generation_id, expected, to, fence=fence, error=error, result_document=None,
                            dispatch_ref=None, artifact_path=None)
            if ok:
                conn.execute(
                    "update hunt.evaluations set status = 'pending', failure_category = null, failure_detail = null,"
                    " metrics = null, updated_at = now() where generation_id = %s",
                    (generation_id,),
                )
        else:
            to = GS.FAILED
            ok = fail(conn, generation_id, expected, error, fence=fence)
    return to if ok else None


FREE_INTERRUPTIONS = 10
"""Orchestrator deaths a generation may suffer without spending an attempt; past them every one
counts as a failed attempt (a batch that kills its own process every time must end)."""


def requeue_interrupted(conn: psycopg.Connection, generation_id: UUID, expected: Iterable[GS],
                        error: str) -> GS | None:
    """Send back a run whose orchestrator died (not its work): ``planned`` again at the attempt
    it had, its ``interruptions`` counted, so the candidates' attempts are not spent. Past
    :data:`FREE_INTERRUPTIONS` it is :func:`retry_or_fail` instead. Returns the new status, or
    ``None`` when the row had moved on."""
    with conn.transaction():
        row = conn.execute(
            "select interruptions from hunt.generations where generation_id = %s for update", (generation_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no generation {generation_id}")
        if row["interruptions"] >= FREE_INTERRUPTIONS:
            return retry_or_fail(conn, generation_id, expected, f"{error} (interrupted {row['interruptions']} times)")
        ok = transition(conn, generation_id, expected, GS.PLANNED, error=error, result_document=None,
                        dispatch_ref=None, artifact_path=None)
        if ok:
            conn.execute(
                "update hunt.generations set attempt = greatest(attempt - 1, 0), interruptions = interruptions + 1"
                " where generation_id = %s",
                (generation_id,),
            )
    return GS.PLANNED if ok else None


def fail(conn: psycopg.Connection, generation_id: UUID, expected: Iterable[GS], error: str,
         category: str = "generation_failed", fence: str | None = None) -> bool:
    """Fail a generation for good; its pending evaluations become ``failed`` with ``category``.

    One transaction. Returns ``False`` when the row had already left ``expected``.
    """
    with conn.transaction():
        ok = transition(conn, generation_id, expected, GS.FAILED, fence=fence, error=error, finished_at="now()")
        if ok:
            conn.execute(
                "update hunt.evaluations set status = 'failed', failure_category = %s,"
                " updated_at = now() where generation_id = %s and status = 'pending'",
                (category, generation_id),
            )
    return ok


def heartbeat(conn: psycopg.Connection, generation_id: UUID, dispatch_ref: str | None = None) -> bool:
    """``heartbeat_at = now()`` for a ``running`` generation (its worker is alive), or a
    ``dispatched`` one still carrying ``dispatch_ref`` (a warm worker holds its run and waits for
    the device); False when it is neither any more."""
    cur = conn.execute("update hunt.generations set heartbeat_at = now() where generation_id = %s"
                       " and (status = 'running' or (status = 'dispatched' and dispatch_ref = %s))",
                       (generation_id, dispatch_ref))
    return cur.rowcount == 1


def lost(conn: psycopg.Connection, campaign_id: UUID, timeout_seconds: float) -> list[dict[str, Any]]:
    """Launched generations whose heartbeat (or dispatch time) is older than ``timeout_seconds``."""
    return conn.execute(
        f"select {light(conn, 'generations')} from hunt.generations where campaign_id = %s"
        " and status in ('dispatched', 'running')"
        " and coalesce(heartbeat_at, dispatched_at) < now() - make_interval(secs => %s) order by ask_id",
        (campaign_id, float(timeout_seconds)),
    ).fetchall()


def parse_view(conn: psycopg.Connection, campaign_id: UUID, timeout_seconds: float) -> list[dict[str, Any]]:
    """What parse reads, in one statement: the campaign's launched and succeeded generations in
    ask order, each with ``lost`` (launched, heartbeat or dispatch time older than
    ``timeout_seconds``, as :func:`lost`) and, for a succeeded one, ``candidate_indices`` (its
    evaluation rows' indices in order, as :func:`evaluations` lists them)."""
    return conn.execute(
        f"select {light(conn, 'generations', 'g')},"
        " (g.status in ('dispatched', 'running')"
        "  and coalesce(g.heartbeat_at, g.dispatched_at) < now() - make_interval(secs => %s)) as lost,"
        " case when g.status = 'succeeded' then (select array_agg(e.candidate_index order by e.candidate_index)"
        "   from hunt.evaluations e where e.generation_id = g.generation_id) end as candidate_indices"
        " from hunt.generations g where g.campaign_id = %s and g.status in ('dispatched', 'running', 'succeeded')"
        " order by g.ask_id",
        (float(timeout_seconds), campaign_id),
    ).fetchall()


def campaign_evaluations(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    """Every evaluation of a campaign with its generation's index and kind, in ask order.

    Review's verification re-runs are left out: they are neither search results nor budget."""
    return conn.execute(
        "select e.*, g.generation_index, g.kind, g.ask_id from hunt.evaluations e"
        " join hunt.generations g using (generation_id)"
        " where e.campaign_id = %s and g.kind <> 'verification' order by g.ask_id, e.candidate_index",
        (campaign_id,),
    ).fetchall()
