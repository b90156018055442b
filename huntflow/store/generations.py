"""Generations and their evaluation rows: planned by evolve, launched, parsed, reviewed, told.

Lifecycle (``hunt.generation_status``)::

    planned -> dispatched -> running -> succeeded -> parsed -> reviewed -> told
       ^            |            |           |
       +------------+------------+-----------+--> failed   (attempts exhausted)
     (retry: lost run, corrupt result, below the quality floor)

Every transition is one ``UPDATE ... WHERE generation_id = %s AND status = ANY(expected)``;
it returns ``False`` when the row was not in an expected status (a concurrent writer won).
Evaluation rows are written in the same transaction as the transition they belong to; new
ones with ``COPY`` (:func:`copy_evaluations`), not one ``INSERT`` per row. evolve's reads and
its write-ahead commit are in :mod:`huntflow.store.evolve_commit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store.columns import light
from huntflow.store.states import GenerationStatus as GS


STALE_SQLSTATE = "HF412"
"""Raised by ``hunt.expect`` (migration ``20261205010000_expect.sql``): a precondition checked
inside a pipelined transaction did not hold; the transaction was rolled back."""
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
    return conn.execute(EVALUATIONS_SQL, (generation_id,)).fetchall()


EVALUATIONS_SQL = "select * from hunt.evaluations where generation_id = %s order by candidate_index"
""":func:`evaluations`' statement (parameter: the generation id), to run it in a pipeline."""


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


def campaign_evaluations(conn: psycopg.Connection, campaign_id: UUID, columns: str = "e.*") -> list[dict[str, Any]]:
    """Every evaluation of a campaign with its generation's index and kind, in ask order
    (``columns``: of the evaluation, ``e``; all by default).

    Review's verification re-runs are left out: they are neither search results nor budget."""
    return conn.execute(
        f"select {columns}, g.generation_index, g.kind, g.ask_id from hunt.evaluations e"
        " join hunt.generations g using (generation_id)"
        " where e.campaign_id = %s and g.kind <> 'verification' order by g.ask_id, e.candidate_index",
        (campaign_id,),
    ).fetchall()
