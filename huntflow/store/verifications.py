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


def ask_id(parent_ask_id: int, position: int) -> int:
    """A verification generation's ask id: negative, unique per (checked ask, perturbation)."""
    return -(int(parent_ask_id) * 64 + int(position) + 1)


def of(conn: psycopg.Connection, generation_id: UUID) -> list[dict[str, Any]]:
    """The verification generations of a checked generation, by perturbation position."""
    return conn.execute(
        "select * from hunt.generations where kind = 'verification'"
        " and meta -> 'verification' ->> 'verifies' = %s order by ask_id desc",
        (str(generation_id),),
    ).fetchall()


def insert(conn: psycopg.Connection, parent: dict[str, Any], *, position: int, perturbation: str, seed: int,
           fixed: dict[str, Any], settings: dict[str, Any], sources: list[dict[str, Any]],
           key_indices: list[int]) -> UUID:
    """Plan one verification generation of ``parent`` (status ``planned``), with its rows.

    Idempotent: a second call for the same parent and position returns the existing row's id.
    """
    with conn.transaction():
        row = conn.execute(
            """
            insert into hunt.generations
              (campaign_id, generation_index, ask_id, kind, fidelity, fidelity_name, seed, operator,
               max_attempts, meta)
            values (%(cid)s, %(index)s, %(ask)s, 'verification', %(fid)s, %(fname)s,
                    %(seed)s, %(op)s, %(attempts)s, %(meta)s)
            on conflict (campaign_id, ask_id) do nothing
            returning generation_id
            """,
            {"cid": parent["campaign_id"], "index": parent["generation_index"], "ask": ask_id(parent["ask_id"], position), "fid": parent["fidelity"],
             "fname": parent["fidelity_name"], "seed": int(seed), "op": parent["operator"],
             "attempts": parent["max_attempts"],
             "meta": Jsonb({"verification": {"verifies": str(parent["generation_id"]), "perturbation": perturbation,
                                             "position": position, "fixed": fixed, "settings": settings}})},
        ).fetchone()
        if row is None:
            return conn.execute(
                "select generation_id from hunt.generations where campaign_id = %s and ask_id = %s",
                (parent["campaign_id"], ask_id(parent["ask_id"], position)),
            ).fetchone()["generation_id"]
        gid = row["generation_id"]
        with conn.cursor() as c:
            c.executemany(
                "insert into hunt.evaluations"
                " (generation_id, campaign_id, candidate_index, params, param_hash, fidelity, decision)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                [(gid, parent["campaign_id"], i, Jsonb(e["params"]), e["param_hash"], parent["fidelity"],
                  Jsonb({"verifies": str(e["evaluation_id"]), "key_index": int(k)}))
                 for i, (e, k) in enumerate(zip(sources, key_indices, strict=True))],
            )
    return gid


def complete(conn: psycopg.Connection, parent: dict[str, Any], verification_ids: list[UUID],
             found: list[Finding], rejected: list[UUID]) -> bool:
    """Store review's findings, mark the verification generations and the checked one ``reviewed``
    (with its rejections), in one transaction. ``False``: another review got there first."""
    with conn.transaction():
        if not generations.record_reviewed(conn, parent["generation_id"], rejected):
            return False
        for gid in verification_ids:
            generations.transition(conn, gid, [GS.PARSED], GS.REVIEWED)
        findings_store.insert_findings(conn, parent["campaign_id"], parent["generation_id"], found)
    return True


def share(conn: psycopg.Connection, campaign_id: UUID) -> dict[str, Any]:
    """Verification against search evaluations of a campaign: generations, evaluations (padding
    included) and their wall seconds, not counting pending ones."""
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
    return {"verification_generations": int(verify["generations"]) if verify else 0,
            "search_evaluations": int(search["evaluations"]) if search else 0,
            "verification_evaluations": int(verify["evaluations"]) if verify else 0,
            "search_wall_seconds": float(search["wall_seconds"]) if search else 0.0,
            "verification_wall_seconds": float(verify["wall_seconds"]) if verify else 0.0}
