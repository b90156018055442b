"""parse: collect finished generations into evaluation rows.

For each ``succeeded`` generation:
  tier 1 — validate the raw result document against the generation (format, id, candidates);
  tier 2 — if the document is missing or corrupt, recompute the metrics from the HDF5 artifact;
  quality floor — if fewer than ``QUALITY_FLOOR`` of the candidates parsed, the generation is
  sent back for another attempt (or failed when out of attempts).
Lost runs — pool and slurm generations ``dispatched``/``running`` whose heartbeat is older than
``HUNTFLOW_GENERATION_TIMEOUT_SECONDS`` — are sent back for another attempt here (never a manual
one: its kit may be out for days). A slurm generation is also lost as soon as Slurm says its job
ended without the generation succeeding (:mod:`huntflow.tasks.slurm`); one whose job is still
queued (``PENDING``) is waiting, not lost, and a timed-out one's job is cancelled.
"""

from __future__ import annotations

import math
import os
from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.engine import artifacts
from huntflow.engine.models.base import Status
from huntflow.engine.results import ParsedCandidate, validate_result_document
from huntflow.errors import ArtifactError, ResultDocumentError
from huntflow.store import campaigns, generations
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import slurm
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage

QUALITY_FLOOR = 0.5
"""Fraction of a generation's candidates that must parse (ok or a recorded failure)."""


def generation_timeout() -> float:
    return float(os.environ.get("HUNTFLOW_GENERATION_TIMEOUT_SECONDS", "3600"))


def _from_artifact(path: str | None, n: int) -> list[ParsedCandidate]:
    """Tier 2: metrics recovered from the generation's HDF5 artifact (recomputed from the stored
    fields where the model supports it, see :func:`huntflow.engine.artifacts.metrics_from_artifact`)."""
    if not path:
        raise ArtifactError("no artifact recorded for this generation")
    recovered = artifacts.metrics_from_artifact(path)
    failures = recovered.get("failures") or []
    out = []
    for i in range(min(n, len(recovered["status"]))):
        metrics = {k: (float(v[i]) if math.isfinite(float(v[i])) else None) for k, v in recovered["metrics"].items()}
        st = Status(int(recovered["status"][i]))
        failure = failures[i] if i < len(failures) and isinstance(failures[i], dict) else None
        category = str(failure.get("category")) if failure and failure.get("category") else st.failure_category
        out.append(ParsedCandidate(i, st is Status.OK, category, metrics, failure))
    return out


def parse_generation(conn: psycopg.Connection, gen: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """Parse one succeeded generation; returns what happened to it."""
    gid = gen["generation_id"]
    indices = gen.get("candidate_indices")  # read with the generation (parse's view), else read now
    if indices is None:
        indices = [r["candidate_index"] for r in generations.evaluations(conn, gid)]
    rows = [{"candidate_index": i} for i in indices]
    n = len(rows)
    tier, problem = 1, None
    try:
        parsed = validate_result_document(
            gen["result_document"], generation_id=str(gid), n_candidates=n, required_metrics=required
        )
        if len(parsed) < n:
            problem = f"result document: {n - len(parsed)} of {n} candidate entries malformed"
            raise ResultDocumentError(problem)
    except ResultDocumentError as e:
        problem = str(e)
        tier = 2
        try:
            parsed = _from_artifact(gen["artifact_path"], n)
        except ArtifactError as ae:
            parsed, problem = [], f"{problem}; artifact: {ae}"
    if len(parsed) < QUALITY_FLOOR * n:
        status = generations.retry_or_fail(
            conn, gid, [GS.SUCCEEDED], f"only {len(parsed)}/{n} candidates parsed ({problem})"
        )
        return {"generation_id": str(gid), "outcome": status.value if status else "moved", "problem": problem}
    doc = gen["result_document"] if isinstance(gen["result_document"], dict) else {}
    provenance = {**(doc.get("provenance") or {}), "attempt": gen["attempt"], "parse_tier": tier}
    if tier == 2:
        try:
            provenance = {**artifacts.read_generation(gen["artifact_path"]).provenance, **provenance}
        except ArtifactError:
            pass
    got = {p.index: p for p in parsed}
    updates = []
    for r in rows:
        p = got.get(r["candidate_index"])
        if p is None:
            updates.append({"candidate_index": r["candidate_index"], "status": "failed",
                            "failure_category": "unparsed", "metrics": None, "provenance": provenance,
                            "wall_seconds": None, "failure_detail": None})
            continue
        updates.append({
            "candidate_index": p.index,
            "status": "succeeded" if p.ok else "failed",
            "failure_category": p.failure_category,
            "metrics": p.metrics,
            "provenance": provenance,
            "wall_seconds": p.wall_seconds if p.wall_seconds is not None else (doc.get("wall_seconds") or 0.0) / max(n, 1),
            "failure_detail": p.failure,
        })
    summary = {"tier": tier, "parsed": len(parsed), "candidates": n, "problem": problem}
    if not generations.record_parsed(conn, gid, updates, summary):  # no longer succeeded: someone else moved it
        return {"generation_id": str(gid), "outcome": "moved", **summary}
    return {"generation_id": str(gid), "outcome": "parsed", **summary}


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    required = sorted({o.metric for o in spec.objectives} | {c.metric for c in spec.constraints})
    gens = generations.parse_view(conn, campaign["campaign_id"], generation_timeout())  # one read for all below
    launched = [g for g in gens if g["status"] in (GS.DISPATCHED.value, GS.RUNNING.value)]
    lost = _ended_slurm_jobs(conn, launched)
    for g in launched:
        if not g["lost"] or g.get("slurm_ended"):
            continue
        if g["operator"] in ("inline", "manual"):
            continue  # dispatch recovers inline runs (it knows which tick launched them); a kit may take days
        jid = slurm.job_id(g["dispatch_ref"]) if g["operator"] == "slurm" else None
        if jid is not None and slurm.job_state(jid) in ("PENDING", "CONFIGURING"):
            continue  # queued on the cluster: waiting, not lost
        status = generations.retry_or_fail(conn, g["generation_id"], [GS.DISPATCHED, GS.RUNNING],
                                           f"lost: no heartbeat for {generation_timeout():.0f} s")
        if jid is not None and status is not None:
            slurm.cancel(jid)
        lost.append({"generation_id": str(g["generation_id"]), "now": status and status.value})
    results = [parse_generation(conn, g, required) for g in gens if g["status"] == GS.SUCCEEDED.value]
    return {"parsed": results, "lost": lost}


def _ended_slurm_jobs(conn: psycopg.Connection, launched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slurm generations whose job ended without them succeeding: sent back at once."""
    out = []
    for g in launched:
        jid = slurm.job_id(g["dispatch_ref"]) if g["operator"] == "slurm" else None
        state = slurm.job_state(jid) if jid is not None else None
        if state not in slurm.ENDED:
            continue
        g["slurm_ended"] = True  # sent back here, not again as lost
        # guarded on the status: a generation that succeeded since it was read is left alone
        status = generations.retry_or_fail(conn, g["generation_id"], [GS.DISPATCHED, GS.RUNNING],
                                           f"lost: slurm job {jid} is {state} and the generation did not succeed")
        if status is not None:
            out.append({"generation_id": str(g["generation_id"]), "job_id": jid, "job_state": state,
                        "now": status.value})
    return out


@task(cache_policy=NO_CACHE, name="parse", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=600)
def parse(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Validate finished generations' results into evaluation rows."""
    return run_stage(Stage.PARSE, ctx, campaign_id, run)
