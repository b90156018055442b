"""Verification generations: review's perturbed re-runs of a generation's best candidates.

A verification generation is a ``hunt.generations`` row of kind ``verification`` that carries in
``meta.verification`` what it verifies (``verifies``: the checked generation's id), under which
perturbation, and the model ``fixed`` options and fidelity ``settings`` it runs with; each of its
evaluations' ``decision`` names the checked evaluation (``verifies``) and the candidate index
whose key it folds (``key_index``). It is launched, run and parsed like any generation, on the
checked generation's operator, and is never told to the optimizer (evolve, learn, budgets and
reports leave it out: :func:`huntflow.store.generations.campaign_evaluations` does).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store import findings as findings_store
from huntflow.store import generations
from huntflow.store.findings import Finding
from huntflow.store.states import GenerationStatus as GS

KIND = "verification"
PROMOTED = ("promotion", "certification")
"""Kinds of generation whose candidates' lower-rung results review verifies before launch."""


def cleared(generation: dict[str, Any]) -> bool:
    """Whether review has verified a promotion's parents (dispatch holds it until then)."""
    return "review" in (generation.get("meta") or {})


def ask_id(parent_ask_id: int, position: int) -> int:
    """A verification generation's ask id: negative, unique per (checked ask, perturbation)."""
    return -(int(parent_ask_id) * 64 + int(position) + 1)


def of(conn: psycopg.Connection, generation_id: UUID) -> list[dict[str, Any]]:
    """The verification generations of a checked generation, by perturbation position."""
    return conn.execute(_OF, (str(generation_id),)).fetchall()


_OF = ("select * from hunt.generations where kind = 'verification'"
       " and meta -> 'verification' ->> 'verifies' = %s order by ask_id desc")


def insert(conn: psycopg.Connection, parent: dict[str, Any], *, position: int, perturbation: str, seed: int,
           fixed: dict[str, Any], settings: dict[str, Any], sources: list[dict[str, Any]],
           key_indices: list[int], promotion: dict[str, Any] | None = None) -> UUID:
    """Plan one verification generation of ``parent`` (status ``planned``), with its rows.

    ``promotion``: the planned promotion whose parents (rows of ``parent``) this batch checks;
    its ask id then numbers the batch (``meta.verification.promotion`` names it).
    Idempotent: a second call for the same numbering and position returns the existing row's id.
    """
    owner = promotion or parent
    meta = {"verifies": str(parent["generation_id"]), "perturbation": perturbation,
            "position": position, "fixed": fixed, "settings": settings}
    if promotion is not None:
        meta["promotion"] = str(promotion["generation_id"])
    if len(sources) != len(key_indices):
        raise ValueError("verification: sources and key indices differ in length")
    ask = ask_id(owner["ask_id"], position)
    # one statement: the generation and its rows, or (planned before) the existing one's id
    return conn.execute(
        """
        with g as (
          insert into hunt.generations
            (campaign_id, generation_index, ask_id, kind, fidelity, fidelity_name, seed, operator,
             max_attempts, meta)
          values (%(cid)s, %(index)s, %(ask)s, 'verification', %(fid)s, %(fname)s,
                  %(seed)s, %(op)s, %(attempts)s, %(meta)s)
          on conflict (campaign_id, ask_id) do nothing
          returning generation_id
        ), e as (
          insert into hunt.evaluations
            (generation_id, campaign_id, candidate_index, params, param_hash, fidelity, decision)
          select g.generation_id, %(cid)s, r.i - 1, r.p, r.h, %(fid)s, r.d
            from g, unnest(%(params)s::jsonb[], %(hashes)s::text[], %(decisions)s::jsonb[])
                    with ordinality as r(p, h, d, i)
          returning 1
        )
        select generation_id from g
        union all
        select generation_id from hunt.generations
         where campaign_id = %(cid)s and ask_id = %(ask)s and not exists (select 1 from g)
        """,
        {"cid": parent["campaign_id"], "index": parent["generation_index"], "ask": ask,
         "fid": parent["fidelity"], "fname": parent["fidelity_name"], "seed": int(seed), "op": parent["operator"],
         "attempts": parent["max_attempts"], "meta": Jsonb({"verification": meta}),
         "params": [Jsonb(e["params"]) for e in sources], "hashes": [e["param_hash"] for e in sources],
         "decisions": [Jsonb({"verifies": str(e["evaluation_id"]), "key_index": int(k)})
                       for e, k in zip(sources, key_indices, strict=True)]},
    ).fetchone()["generation_id"]


def of_promotion(conn: psycopg.Connection, generation_id: UUID) -> list[dict[str, Any]]:
    """The checks of a planned promotion's parents, by position."""
    return conn.execute(
        "select * from hunt.generations where kind = 'verification'"
        " and meta -> 'verification' ->> 'promotion' = %s order by ask_id desc",
        (str(generation_id),),
    ).fetchall()


def parents(conn: psycopg.Connection, promotion: dict[str, Any]) -> list[dict[str, Any]]:
    """The lower-rung evaluation each candidate of a promotion was promoted from, with
    ``candidate_index`` of the promotion row (``promoted``) and whether it has survived a
    verification already (``verified``: a reviewed check of it, and it is not rejected)."""
    return conn.execute(
        """
        select p.candidate_index as promoted, e.*, g.ask_id, g.generation_index,
               exists (select 1 from hunt.evaluations v join hunt.generations vg on vg.generation_id = v.generation_id
                       where vg.campaign_id = e.campaign_id and vg.kind = 'verification' and vg.status = 'reviewed'
                         and v.decision ->> 'verifies' = e.evaluation_id::text) and e.status = 'succeeded' as verified
        from hunt.evaluations p
        join hunt.generations g on g.campaign_id = p.campaign_id and g.ask_id = (p.decision ->> 'parent_ask_id')::int
        join lateral (select * from hunt.evaluations x where x.generation_id = g.generation_id
                      and x.param_hash = p.decision ->> 'parent_hash' order by x.candidate_index limit 1) e on true
        where p.generation_id = %s order by p.candidate_index
        """,
        (promotion["generation_id"],),
    ).fetchall()


def rung_before(conn: psycopg.Connection, generation: dict[str, Any]) -> dict[str, Any] | None:
    """What earlier asks at ``generation``'s rung established, for review's incumbent.

    Returns None while one of them is not reviewed yet (its rejections are not known), or an
    earlier promotion from this rung whose own result checks its parents (``meta.review.ladder``;
    not known yet while it is uncleared) is not, else
    ``{"best_min", "best_max"}`` (the feasible objective told) and ``"untold"``: the succeeded
    rows of reviewed generations not told yet (their objective is not stored yet).
    Its five reads go in one round trip (a pipeline).
    """
    with conn.pipeline():
        curs = [conn.execute(q, p) for q, p in _rung_queries(generation)]
    return _rung_result([c.fetchall() for c in curs])


def review_reads(conn: psycopg.Connection, generation: dict[str, Any]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """What review reads about a parsed generation, in one round trip (a pipeline): its
    evaluation rows (as :func:`huntflow.store.generations.evaluations`), its verification
    generations (:func:`of`) and :func:`rung_before`."""
    gid = generation["generation_id"]
    with conn.pipeline():
        rows = conn.execute(generations.EVALUATIONS_SQL, (gid,))
        checks = conn.execute(_OF, (str(gid),))
        curs = [conn.execute(q, p) for q, p in _rung_queries(generation)]
    return rows.fetchall(), checks.fetchall(), _rung_result([c.fetchall() for c in curs])


def _rung_queries(generation: dict[str, Any]) -> list[tuple[str, Any]]:
    # one aggregate over the rung's generations, and each best by one walk of an index in
    # objective order (hunt.evaluations_rung_best_idx): no read of every evaluation row
    key = (generation["campaign_id"], generation["fidelity"], generation["ask_id"])
    rung_where = "campaign_id = %s and fidelity = %s and ask_id < %s and kind <> 'verification'"
    queries: list[tuple[str, Any]] = [
        ("select count(*) filter (where status not in ('reviewed', 'told', 'failed', 'cancelled')) as unsettled"
         f" from hunt.generations where {rung_where}", key),
        # an earlier promotion from this rung that its own result checks may still reject rows here
        ("select status::text as status from hunt.generations where campaign_id = %s and fidelity = %s"
         " and ask_id < %s and kind in ('promotion', 'certification')"
         " and jsonb_array_length(coalesce(meta -> 'review' -> 'ladder', '[\"?\"]'::jsonb)) > 0",
         (generation["campaign_id"], int(generation["fidelity"]) + 1, generation["ask_id"])),
    ]
    for order in ("asc", "desc"):  # best_min, best_max
        queries.append((
            "select e.objective from hunt.evaluations e join hunt.generations g using (generation_id)"
            " where e.campaign_id = %s and e.fidelity = %s and e.status = 'succeeded' and e.feasible"
            " and e.objective is not null and g.ask_id < %s and g.kind <> 'verification' and g.status = 'told'"
            f" order by e.objective {order} limit 1", key))
    queries.append((
        "select * from hunt.evaluations where status = 'succeeded' and generation_id in"
        f" (select generation_id from hunt.generations where {rung_where} and status = 'reviewed')", key))
    return queries


def _rung_result(results: list[list[dict[str, Any]]]) -> dict[str, Any] | None:
    rung, promotions, best_min, best_max, untold = results
    settled = (GS.REVIEWED.value, GS.TOLD.value, GS.FAILED.value, GS.CANCELLED.value)
    if rung[0]["unsettled"] or any(g["status"] not in settled for g in promotions):
        return None
    return {"best_min": best_min[0]["objective"] if best_min else None,
            "best_max": best_max[0]["objective"] if best_max else None, "untold": untold}


def clear_promotion(conn: psycopg.Connection, promotion: dict[str, Any], check_ids: list[UUID],
                    found: dict[UUID, list[Finding]], rejected: list[UUID], checked: int,
                    ladder: list[str] | None = None) -> bool:
    """Record that a planned promotion's parents were verified, in one transaction: the findings
    (``found``: by parent generation), the rejected parents marked ``rejected``, the checks
    ``reviewed``, and ``meta.review`` on the promotion (what dispatch waits for; ``ladder``: the
    perturbations the promotion performs itself, checked when its results are reviewed).
    ``False``: it had already moved on."""
    note = {"parents_checked": checked, "parents_rejected": [str(r) for r in rejected], "ladder": list(ladder or [])}
    with conn.transaction():
        row = conn.execute(
            "update hunt.generations set meta = meta || jsonb_build_object('review', %s::jsonb), updated_at = now()"
            " where generation_id = %s and status = 'planned' and not meta ? 'review' returning generation_id",
            (Jsonb(note), promotion["generation_id"]),
        ).fetchone()
        if row is None:
            return False
        for gid in check_ids:
            generations.transition(conn, gid, [GS.PARSED], GS.REVIEWED)
        for gid, fs in found.items():
            findings_store.insert_findings(conn, promotion["campaign_id"], gid, fs)
        generations.reject(conn, rejected)
    return True


def complete(conn: psycopg.Connection, parent: dict[str, Any], verification_ids: list[UUID],
             found: list[Finding], rejected: list[UUID], on_parents: dict[UUID, list[Finding]] | None = None,
             parents_rejected: list[UUID] | None = None) -> bool:
    """Store review's findings, mark the verification generations and the checked one ``reviewed``
    (with its rejections), in one transaction; a promotion's findings on its parents
    (``on_parents``: by parent generation) and their rejections too. ``False``: another review
    got there first."""
    try:
        # one round trip: BEGIN, the writes, COMMIT sent together (a pipeline); the move from
        # 'parsed' is checked in its statement (hunt.expect), so losing the race rolls it all back
        with conn.pipeline(), conn.transaction():
            conn.execute(
                "with moved as (update hunt.generations set status = 'reviewed', updated_at = now()"
                " where generation_id = %s and status = 'parsed' returning 1)"
                " select hunt.expect(exists (select 1 from moved), 'another review got there first')",
                (parent["generation_id"],))
            generations.reject(conn, rejected)
            if verification_ids:
                conn.execute("update hunt.generations set status = 'reviewed', updated_at = now()"
                             " where generation_id = any(%s) and status = 'parsed'", (list(verification_ids),))
            findings_store.insert_findings(conn, parent["campaign_id"], parent["generation_id"], found)
            for gid, fs in (on_parents or {}).items():
                findings_store.insert_findings(conn, parent["campaign_id"], gid, fs)
            generations.reject(conn, list(parents_rejected or []))
    except psycopg.Error as e:
        if getattr(e, "sqlstate", None) == generations.STALE_SQLSTATE:
            return False
        raise
    return True


def share(conn: psycopg.Connection, campaign_id: UUID) -> dict[str, Any]:
    """Verification against search evaluations of a campaign: generations, evaluations (padding
    included) and their wall seconds, not counting pending ones; ``promoted_checked_by_ladder``:
    promoted candidates whose claim their reviewed promotion's own result checked (nothing re-run)."""
    rows = conn.execute(
        "select (g.kind = 'verification') as verification, count(distinct g.generation_id) as generations,"
        " count(e.*) as evaluations,"
        " coalesce(sum(e.wall_seconds), 0) as wall_seconds"
        " from hunt.generations g join hunt.evaluations e using (generation_id)"
        " where g.campaign_id = %s and e.status <> 'pending' group by 1",
        (campaign_id,),
    ).fetchall()
    by = {bool(r["verification"]): r for r in rows}
    search, verify = by.get(False), by.get(True)
    ladder = conn.execute(
        "select count(*) as n from hunt.evaluations e join hunt.generations g using (generation_id)"
        " where g.campaign_id = %s and g.kind in ('promotion', 'certification') and g.status in ('reviewed', 'told')"
        " and jsonb_array_length(coalesce(g.meta -> 'review' -> 'ladder', '[]'::jsonb)) > 0",
        (campaign_id,),
    ).fetchone()["n"]
    return {"promoted_checked_by_ladder": int(ladder),
            "verification_generations": int(verify["generations"]) if verify else 0,
            "search_evaluations": int(search["evaluations"]) if search else 0,
            "verification_evaluations": int(verify["evaluations"]) if verify else 0,
            "search_wall_seconds": float(search["wall_seconds"]) if search else 0.0,
            "verification_wall_seconds": float(verify["wall_seconds"]) if verify else 0.0}
