"""Prefect events for what a researcher or an automation waits for, the campaign always the
related resource (role ``campaign``, id ``huntflow.campaign.<slug>``):

| event | when | primary resource |
| --- | --- | --- |
| ``huntflow.campaign.completed`` | learn completed it (payload: reason, best) | the campaign |
| ``huntflow.campaign.failed`` | it failed | the campaign |
| ``huntflow.campaign.stagnated`` | learn switched it to ``recover`` (no improvement) | the campaign |
| ``huntflow.campaign.gate.requested`` | a gate was asked (``huntflow gate list``) | the gate |
| ``huntflow.campaign.generation.failed`` | a generation failed for good | the generation |

The tick finds them by comparing a campaign's rows before and after its stages
(:func:`snapshot`, :func:`changes`), so each is emitted once, by the tick that caused it. A
generation that fails for good outside a tick is reported by what ran it
(:func:`report_generation_failure`): a pool's generation flow, or ``huntflow generation run``
(a slurm job, when it has ``PREFECT_API_URL``) — twice in the rare case that a tick of its
campaign is running at that moment. Emitting never fails a run.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from uuid import UUID

import psycopg

EVENTS = ("huntflow.campaign.completed", "huntflow.campaign.failed", "huntflow.campaign.stagnated",
          "huntflow.campaign.gate.requested", "huntflow.campaign.generation.failed")


def campaign_resource(slug: str) -> dict[str, str]:
    return {"prefect.resource.id": f"huntflow.campaign.{slug}", "prefect.resource.name": slug}


def emit(event: str, slug: str, payload: dict[str, Any] | None = None,
         resource: dict[str, str] | None = None) -> bool:
    """Emit one event with the campaign as related resource; ``False`` if it could not be sent."""
    try:
        from prefect.events import emit_event

        related = [{**campaign_resource(slug), "prefect.resource.role": "campaign"}]
        return emit_event(event=event, resource=resource or campaign_resource(slug), related=related,
                          payload=payload or {}) is not None
    except Exception as e:  # a notification is never a reason to fail a run
        logging.getLogger(__name__).warning("event %s for %s not emitted: %s", event, slug, e)
        return False


def snapshot(conn: psycopg.Connection, campaign_id: UUID) -> dict[str, Any]:
    """What the events are about, as the rows say now."""
    return snapshots(conn, [campaign_id])[campaign_id]


def snapshots(conn: psycopg.Connection, campaign_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    """:func:`snapshot` of many campaigns in one statement (a tick's whole cohort at once)."""
    ids = list(campaign_ids)
    out: dict[UUID, dict[str, Any]] = {c: {"failed": {}, "gates": {}} for c in ids}
    rows = conn.execute(
        "select c.campaign_id, c.slug, c.status, c.mode, c.completion_reason, p.best_objective,"
        " p.best_fidelity_name, p.best_certified,"
        " (select coalesce(jsonb_agg(jsonb_build_object('generation_id', g.generation_id, 'generation_index',"
        "    g.generation_index, 'fidelity_name', g.fidelity_name, 'kind', g.kind, 'error', g.error)), '[]')"
        "    from hunt.generations g where g.campaign_id = c.campaign_id and g.status = 'failed') as failed,"
        " (select coalesce(jsonb_agg(jsonb_build_object('gate_id', t.gate_id, 'kind', t.kind,"
        "    'subject', t.subject)), '[]')"
        "    from hunt.gates t where t.campaign_id = c.campaign_id and t.status = 'pending') as gates"
        " from hunt.campaigns c join hunt.campaign_progress p using (campaign_id) where c.campaign_id = any(%s)",
        (ids,)).fetchall()
    for r in rows:
        cid = r.pop("campaign_id")
        failed, gates = r.pop("failed"), r.pop("gates")
        out[cid].update(r)
        for g in failed:
            g["generation_id"] = UUID(g["generation_id"])
            out[cid]["failed"][g["generation_id"]] = g
        for g in gates:
            g["gate_id"] = UUID(g["gate_id"])
            out[cid]["gates"][g["gate_id"]] = g
    return out


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, str] | None]]:
    """The events between two snapshots of one campaign: ``(event, payload, resource)``."""
    slug = after.get("slug")
    out: list[tuple[str, dict[str, Any], dict[str, str] | None]] = []
    if not slug:
        return out
    best = {"best_objective": _finite(after.get("best_objective")), "best_fidelity": after.get("best_fidelity_name"),
            "best_certified": after.get("best_certified")}
    for gid, g in after["gates"].items():
        if gid not in before.get("gates", {}):
            out.append(("huntflow.campaign.gate.requested",
                        {"gate_id": str(gid), "kind": g["kind"], "reason": (g["subject"] or {}).get("reason")},
                        {"prefect.resource.id": f"huntflow.gate.{gid}", "prefect.resource.name": f"{slug} {g['kind']} gate"}))
    for gid, g in after["failed"].items():
        if gid not in before.get("failed", {}):
            out.append(_generation_failed(slug, gid, g))
    if after.get("mode") == "recover" and before.get("mode") != "recover" and after.get("status") == "active":
        out.append(("huntflow.campaign.stagnated", {"mode": "recover", **best}, None))
    if after.get("status") != before.get("status"):
        if after.get("status") == "completed":
            out.append(("huntflow.campaign.completed", {"reason": after.get("completion_reason"), **best}, None))
        elif after.get("status") == "failed":
            out.append(("huntflow.campaign.failed", {"reason": after.get("completion_reason"), **best}, None))
    return out


def _generation_failed(slug: str, gid: Any, g: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    return ("huntflow.campaign.generation.failed", {
        "generation_id": str(gid), "generation_index": g["generation_index"], "kind": g["kind"],
        "fidelity": g["fidelity_name"], "error": (g["error"] or "")[:500]},
        {"prefect.resource.id": f"huntflow.generation.{gid}",
         "prefect.resource.name": f"{slug}/gen-{g['generation_index']} ({g['fidelity_name']})"})


def report_generation_failure(generation_id: str, *, skip_operators: tuple[str, ...] = ()) -> bool:
    """``huntflow.campaign.generation.failed`` for a generation that failed for good outside a
    tick; ``False`` (nothing sent) when it has not failed, runs on ``skip_operators`` (whose
    failures a tick reports), or the event could not be sent. Never raises."""
    try:
        from huntflow.store.connection import session

        with session() as conn:
            g = conn.execute(
                "select c.slug, g.generation_index, g.fidelity_name, g.kind, g.status, g.operator, g.error"
                " from hunt.generations g join hunt.campaigns c using (campaign_id) where g.generation_id = %s",
                (str(generation_id),)).fetchone()
        if g is None or g["status"] != "failed" or g["operator"] in skip_operators:
            return False
        event, payload, resource = _generation_failed(g["slug"], generation_id, g)
        return emit(event, g["slug"], payload, resource)
    except Exception as e:  # a notification is never a reason to fail a run
        logging.getLogger(__name__).warning("generation %s: failure not reported: %s", generation_id, e)
        return False


def emit_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Emit :func:`changes`; returns the event names sent."""
    sent = []
    for event, payload, resource in changes(before, after):
        if emit(event, after["slug"], payload, resource):
            sent.append(event)
    return sent
