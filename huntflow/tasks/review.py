"""review: re-check what the engine claims before the optimizer believes it.

Checks, and what each can and cannot catch:
  * ``nonfinite_metric`` (critical) — a metric the spec uses is NaN/inf or missing on an
    evaluation reported as ok. Catches a broken result document or model; nothing subtler.
  * ``metric_out_of_bounds`` (high) — ``|metric|`` above ``review.metric_abs_max``. Catches
    gross blow-ups the model did not flag; a plausible-looking wrong value passes.
  * ``verification`` — the best ``review.spot_check_top`` candidates of a generation (more
    rounds while the best left is rejected) are re-evaluated under the perturbations
    their model declares (:mod:`huntflow.engine.verify`): another noise key (catches a
    noise-lucky draw: a value far outside the model's declared noise), a halved time step and,
    opt-in, a finer grid (catch step-size and resolution artefacts: a value that moves more
    than the model's declared discretisation error), a repeat run (catches non-determinism, of
    an external program say; for a JAX model it shows little more than that XLA is
    deterministic). Each metric the spec uses is compared with its tolerance
    (``review.tolerances`` > the model's > ``review.spot_check_rtol``). An objective that does
    not survive, a feasible candidate that turns infeasible, or a perturbed run that fails is
    ``high``; a constraint metric that moves without changing feasibility is ``medium``.
    It cannot catch an artefact the declared perturbations do not move (an error shared by
    both step sizes, a bias of the model itself), a candidate it does not re-run (below the
    top of its generation), or a wrong model: it tests robustness, not truth.
A critical or high finding rejects the evaluation: the optimizer is told it is infeasible, so
it never becomes the campaign's best nor is promoted.

The re-runs are verification generations (:mod:`huntflow.store.verifications`) on the checked
generation's own operator: inline ones run here at once (in-process, as dispatch runs inline
generations); pool, Slurm and kit ones are launched by the next dispatch, and the checked
generation stays ``parsed`` until they are parsed — other generations stay in flight
meanwhile. What is verified, and under which seeds, is a function of the generation's rows
and seed, so a crash anywhere changes nothing the optimizer is told.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.engine import verify
from huntflow.engine.spec import CampaignSpec
from huntflow.store import campaigns, generations, verifications
from huntflow.store.findings import Finding
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Severity, Stage
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage

_SETTLED = {GS.PARSED.value, GS.REVIEWED.value, GS.FAILED.value, GS.CANCELLED.value}


def check_metrics(spec: CampaignSpec, evaluation: dict[str, Any]) -> list[Finding]:
    """Finite and bounded checks of one succeeded evaluation's metrics."""
    out: list[Finding] = []
    metrics = evaluation["metrics"] or {}
    used = [o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]
    for name in dict.fromkeys(used):
        v = metrics.get(name)
        if v is None or not math.isfinite(float(v)):
            out.append(Finding(Severity.CRITICAL, "nonfinite_metric",
                               f"metric {name!r} is {v!r} on an evaluation reported as ok",
                               evaluation["evaluation_id"], {"metric": name}))
        elif abs(float(v)) > spec.review.metric_abs_max:
            out.append(Finding(Severity.HIGH, "metric_out_of_bounds",
                               f"|{name}| = {abs(float(v)):.3g} exceeds review.metric_abs_max "
                               f"({spec.review.metric_abs_max:.3g})",
                               evaluation["evaluation_id"], {"metric": name, "value": float(v)}))
    return out


def _run_inline(conn: psycopg.Connection, spec: CampaignSpec, vid: UUID, ctx: TickContext) -> None:
    """Run an inline verification generation now and parse it (what dispatch and parse would do)."""
    from huntflow.tasks.execute import execute_generation
    from huntflow.tasks.parse import parse_generation

    v = generations.get(conn, vid)
    ref = f"inline:{ctx.tick_id}"
    if v["status"] == GS.PLANNED.value and generations.transition(
            conn, vid, [GS.PLANNED], GS.DISPATCHED, dispatch_ref=ref,
            attempt=v["attempt"] + 1, dispatched_at="now()", heartbeat_at="now()"):
        try:
            execute_generation(vid, dispatch_ref=ref)
        except Exception:  # sent back or failed by execute_generation; the next tick retries it
            pass
        v = generations.get(conn, vid)
    if v["status"] == GS.SUCCEEDED.value:
        parse_generation(conn, v, sorted({o.metric for o in spec.objectives} | {c.metric for c in spec.constraints}))


def _verdicts(spec: CampaignSpec, v: dict[str, Any], vrows: list[dict[str, Any]],
              claimed: dict[UUID, dict[str, Any]], perturbation: str) -> list[Finding]:
    """Findings from one settled verification generation (``vrows``: its evaluations)."""
    if v["status"] not in (GS.PARSED.value, GS.REVIEWED.value):
        return [Finding(Severity.MEDIUM, "verification_unavailable",
                        f"the {perturbation} verification batch {v['status']} ({v['error'] or 'no error'}):"
                        " its candidates are not verified", None, {"perturbation": perturbation})]
    out, seen = [], set()
    for r in vrows:
        source = UUID(str(r["decision"]["verifies"]))
        if source in seen or source not in claimed:
            continue  # padding repeats the last row
        seen.add(source)
        for verdict in verify.compare(spec, perturbation, claimed[source]["metrics"] or {},
                                      r["status"] == "succeeded", r["metrics"]):
            out.append(Finding(Severity(verdict.severity), verdict.kind, verdict.message, source,
                               {**verdict.details, "verification_generation_id": str(v["generation_id"])}))
    return out


def review_generation(conn: psycopg.Connection, spec: CampaignSpec, gen: dict[str, Any],
                      ctx: TickContext | None = None) -> dict[str, Any]:
    """Review one parsed generation: plan (or find) its verification batches round by round,
    run inline ones, and once all are back store the findings and flip it to ``reviewed``."""
    gid = gen["generation_id"]
    rows = [e for e in generations.evaluations(conn, gid) if e["status"] == "succeeded"]
    found: list[Finding] = []
    for e in rows:
        found.extend(check_metrics(spec, e))
    bad = {f.evaluation_id for f in found}
    clean = [e for e in rows if e["evaluation_id"] not in bad]
    claimed = {e["evaluation_id"]: e for e in clean}
    existing = {int(v["meta"]["verification"]["position"]): v["generation_id"] for v in verifications.of(conn, gid)}
    verified: set[UUID] = set()
    vids: list[UUID] = []
    runs: list[dict[str, Any]] = []
    for round_ in range(verify.MAX_ROUNDS):
        picked = verify.next_round(spec, gen["kind"], clean, verified, {f.evaluation_id for f in found
                                                                         if f.severity.rejects()})
        if not picked:
            break
        checks = verify.plan(spec, gen, picked, round_)
        settled = True
        for c in checks:
            vid = existing.get(c.position)
            if vid is None:
                vid = verifications.insert(conn, gen, position=c.position, perturbation=c.perturbation.name,
                                           seed=c.seed, fixed=c.fixed, settings=c.settings, sources=c.sources,
                                           key_indices=c.key_indices)
            if gen["operator"] == "inline" and ctx is not None:
                _run_inline(conn, spec, vid, ctx)
            v = generations.get(conn, vid)
            vids.append(vid)
            runs.append({"generation_id": str(vid), "perturbation": c.perturbation.name, "round": round_,
                         "candidates": len({e["evaluation_id"] for e in c.sources}), "status": v["status"]})
            if v["status"] not in _SETTLED:
                settled = False
                continue
            found.extend(_verdicts(spec, v, generations.evaluations(conn, vid), claimed, c.perturbation.name))
        verified |= {e["evaluation_id"] for e in picked}
        if not settled:
            return {"generation_id": str(gid), "checked": len(rows), "verification": runs, "waiting": True}
    rejected = sorted({f.evaluation_id for f in found if f.severity.rejects() and f.evaluation_id}, key=str)
    verifications.complete(conn, gen, vids, found, rejected)
    return {"generation_id": str(gid), "checked": len(rows), "spot_checked": len(verified),
            "verification": runs, "findings": len(found), "rejected": len(rejected)}


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    return {"reviewed": [review_generation(conn, spec, g, ctx)
                         for g in generations.by_status(conn, campaign["campaign_id"], [GS.PARSED])
                         if g["kind"] != verifications.KIND]}


@task(cache_policy=NO_CACHE, name="review", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=1800)
def review(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Adversarially check parsed evaluations; reject what cannot be trusted."""
    return run_stage(Stage.REVIEW, ctx, campaign_id, run)
