"""review: re-check what the engine claims before the optimizer believes it.

Checks on every evaluation the engine called successful:
  * ``nonfinite_metric`` (critical) — a metric the spec uses is NaN/inf or missing;
  * ``metric_out_of_bounds`` (high) — ``|metric|`` above ``review.metric_abs_max``;
  * ``reproducibility`` (high) — the best ``review.spot_check_top`` candidates of the generation
    are re-run in-process with the same seed, candidate keys and batch shape; any metric that
    differs by more than ``review.spot_check_rtol`` (relative) means the engine's claim cannot
    be trusted.
A critical or high finding rejects the evaluation: the optimizer is told it is infeasible.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.space import SearchSpace
from huntflow.engine.spec import CampaignSpec
from huntflow.store import campaigns, findings, generations
from huntflow.store.findings import Finding
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Severity, Stage
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage


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


def spot_check(spec: CampaignSpec, gen: dict[str, Any], candidates: list[dict[str, Any]],
               population: int) -> list[Finding]:
    """Re-run ``candidates`` with the generation's seed and their own keys; flag disagreements.

    The re-run uses the generation's batch shape (the candidates tiled to ``population`` rows),
    so it runs the very executable the generation ran: an honest engine reproduces its claims
    bit for bit on the same backend, and ``review.spot_check_rtol`` only absorbs differences
    between machines. (A batch of a different size compiles differently, and float32 results
    such as a PDE residual of order 1e-6 can move by ~1 % between two compilations.)
    """
    if not candidates:
        return []
    names = spec.param_names
    if spec.model.resolve().is_external:
        population = len(candidates)  # run one by one: no batch shape to reproduce, and each costs a simulation
    rows = [candidates[i % len(candidates)] for i in range(max(population, len(candidates)))]
    params = SearchSpace.of(spec).model_matrix([e["params"] for e in rows])
    indices = np.array([e["candidate_index"] for e in rows])
    fidelity = spec.fidelities[gen["fidelity"]]
    rerun = evaluate_population(
        spec.model, names, params, seed=int(gen["seed"]), fixed=spec.model.fixed,
        fidelity=fidelity.settings, dtype=spec.dtype, candidate_indices=indices,
        space=spec.model_dump(mode="json")["space"],
    )
    out = []
    rtol = spec.review.spot_check_rtol
    for j, e in enumerate(candidates):
        for name, claimed in (e["metrics"] or {}).items():
            if claimed is None or name not in rerun.metrics:
                continue
            again = float(rerun.metrics[name][j])
            if not math.isclose(again, float(claimed), rel_tol=rtol, abs_tol=rtol * 1e-6):
                out.append(Finding(Severity.HIGH, "reproducibility",
                                   f"metric {name!r}: claimed {claimed:.6g}, re-run gives {again:.6g}",
                                   e["evaluation_id"], {"metric": name, "claimed": claimed, "rerun": again}))
    return out


def _rank_key(spec: CampaignSpec, e: dict[str, Any]) -> float:
    try:
        return spec.objective_values(e["metrics"])[0]
    except (KeyError, TypeError, ValueError):
        return math.inf


def review_generation(conn: psycopg.Connection, spec: CampaignSpec, gen: dict[str, Any]) -> dict[str, Any]:
    every = generations.evaluations(conn, gen["generation_id"])
    rows = [e for e in every if e["status"] == "succeeded"]
    found: list[Finding] = []
    for e in rows:
        found.extend(check_metrics(spec, e))
    bad = {f.evaluation_id for f in found}
    clean = sorted((e for e in rows if e["evaluation_id"] not in bad), key=lambda e: _rank_key(spec, e))
    found.extend(spot_check(spec, gen, clean[: spec.review.spot_check_top], len(every)))
    rejected = sorted({f.evaluation_id for f in found if f.severity.rejects()}, key=str)
    with conn.transaction():
        findings.insert_findings(conn, gen["campaign_id"], gen["generation_id"], found)
        generations.record_reviewed(conn, gen["generation_id"], rejected)
    return {"generation_id": str(gen["generation_id"]), "checked": len(rows),
            "findings": len(found), "rejected": len(rejected),
            "spot_checked": min(len(clean), spec.review.spot_check_top)}


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    return {"reviewed": [review_generation(conn, spec, g)
                         for g in generations.by_status(conn, campaign["campaign_id"], [GS.PARSED])]}


@task(cache_policy=NO_CACHE, name="review", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=1800)
def review(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Adversarially check parsed evaluations; reject what cannot be trusted."""
    return run_stage(Stage.REVIEW, ctx, campaign_id, run)
