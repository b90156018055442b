"""Pause, resume and cancel a campaign, saying what happens to its generations in flight.

Shared by ``huntflow campaign pause|resume|cancel`` and the ``hunt-campaign`` flows, so both
tell the same story:

* **pause** (``active -> paused``): ticks stop claiming the campaign, so nothing new is asked or
  launched. Generations already launched *finish* where they run; their results wait in their
  rows and are parsed, reviewed and told by the first tick after **resume**. Planned ones wait
  unlaunched.
* **cancel** (terminal): every generation not yet told is *cancelled* in the same transaction.
  Runs that can be stopped are stopped (a pool generation's flow run is set Cancelling, a slurm
  job is ``scancel``-ed); any that still finishes loses its guarded ``running -> succeeded``
  write, so its result is discarded; a manual kit out is refused on import.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

import psycopg

from huntflow.store import campaigns
from huntflow.store.states import GenerationStatus as GS

_LAUNCHED = (GS.DISPATCHED.value, GS.RUNNING.value)
_RESULT_IN = (GS.SUCCEEDED.value, GS.PARSED.value, GS.REVIEWED.value)


def _label(slug: str, g: dict[str, Any]) -> str:
    return f"{slug}/gen-{g['generation_index']} ({g['fidelity_name']})"


def pause(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """Pause a campaign; returns ``{"slug", "status", "in_flight": [...], "message"}``."""
    row = campaigns.set_paused(conn, ref, True)
    gens = campaigns.unfinished_generations(conn, row["campaign_id"])
    flying = [g for g in gens if g["status"] in _LAUNCHED]
    waiting = [g for g in gens if g["status"] in _RESULT_IN]
    planned = [g for g in gens if g["status"] == GS.PLANNED.value]
    parts = [f"paused {row['slug']}: nothing new is asked or launched"]
    if flying:
        parts.append(f"{len(flying)} generation(s) in flight ({', '.join(_label(row['slug'], g) for g in flying)})"
                     " finish where they run; their results are told after `resume`")
    if waiting:
        parts.append(f"{len(waiting)} finished generation(s) are told after `resume`")
    if planned:
        parts.append(f"{len(planned)} planned generation(s) wait unlaunched")
    return {"slug": row["slug"], "status": row["status"],
            "in_flight": [_describe(row["slug"], g, "finishes; told after resume") for g in flying + waiting],
            "planned": len(planned), "message": "; ".join(parts)}


def resume(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """Resume a paused campaign; the next tick carries on where it stopped."""
    row = campaigns.set_paused(conn, ref, False)
    gens = campaigns.unfinished_generations(conn, row["campaign_id"])
    return {"slug": row["slug"], "status": row["status"], "campaign_id": str(row["campaign_id"]),
            "unfinished_generations": len(gens),
            "message": f"resumed {row['slug']}: the next tick carries on"
                       + (f" ({len(gens)} generation(s) not yet told)" if gens else "")}


def cancel(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """Cancel a campaign and its unfinished generations, stopping the runs that can be stopped."""
    out = campaigns.cancel_campaign(conn, ref)
    slug = out["campaign"]["slug"]
    described = []
    for g in out["generations"]:
        if g["status"] not in _LAUNCHED:
            described.append(_describe(slug, g, "cancelled before it ran" if g["status"] == GS.PLANNED.value
                                       else "cancelled; its result is never told"))
            continue
        described.append(_describe(slug, g, _stop(g)))
    flying = sum(1 for g in out["generations"] if g["status"] in _LAUNCHED)
    message = f"cancelled {slug}"
    if out["generations"]:
        message += (f": {len(out['generations'])} unfinished generation(s) cancelled"
                    + (f", {flying} of them in flight (stopped where possible; a result that still arrives"
                       " is discarded)" if flying else ""))
    return {"slug": slug, "status": out["campaign"]["status"], "generations": described, "message": message}


def _describe(slug: str, g: dict[str, Any], what: str) -> dict[str, Any]:
    return {"generation": _label(slug, g), "generation_id": str(g["generation_id"]), "was": g["status"],
            "operator": g["operator"], "what": what}


def _stop(g: dict[str, Any]) -> str:
    """Stop a launched generation's run where it runs (best effort); says what was done."""
    ref = g["dispatch_ref"] or ""
    if g["operator"] == "pool" and len(ref) == 36:
        if not os.environ.get("PREFECT_API_URL"):
            return "cancelled; its flow run was not stopped (no PREFECT_API_URL), its result is discarded"
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Cancelling

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(UUID(ref), Cancelling(message="campaign cancelled"), force=True)
            return f"cancelled; flow run {ref} set Cancelling"
        except Exception as e:  # the row is cancelled either way; the run's result is discarded
            return f"cancelled; flow run {ref} not stopped ({type(e).__name__}), its result is discarded"
    if g["operator"] == "slurm":
        from huntflow.tasks import slurm

        jid = slurm.job_id(ref)
        if jid is not None:
            return f"cancelled; slurm job {jid} " + ("scancel-ed" if slurm.cancel(jid) else "not stopped (scancel failed)")
    if g["operator"] == "manual":
        return "cancelled; its kit is refused on import"
    return "cancelled; the run in progress is discarded when it ends"
