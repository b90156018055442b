"""The report's sections as JSON-able dicts, each a function of the campaign's rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from huntflow.engine import summary as kpi
from huntflow.engine.optimize.pareto import hypervolume
from huntflow.engine.report.values import (IMPROVEMENT_TOL, MAX_MESSAGE, SEVERITIES, STAGES, TOP_FINDINGS, Row,
                                           finite, seconds)
from huntflow.engine.spec import CampaignSpec


def header(campaign: Row, spec: CampaignSpec, evals: list[Row]) -> Row:
    pending = sum(1 for e in evals if e["status"] == "pending")
    return {
        "slug": campaign.get("slug", spec.slug),
        "title": campaign.get("title") or spec.title,
        "description": spec.description,
        "model": spec.model.label,
        "model_fixed": dict(spec.model.fixed),
        "status": campaign.get("status"),
        "completion_reason": campaign.get("completion_reason"),
        "mode": campaign.get("mode"),
        "created_at": campaign.get("created_at"),
        "finished_at": campaign.get("completed_at"),
        "elapsed_seconds": seconds(campaign.get("created_at"), campaign.get("completed_at")),
        "evaluations_used": len(evals) - pending,
        "evaluations_pending": pending,
        "evaluations_budget": campaign.get("evaluations_budget", spec.budget.evaluations),
        "optimizer": {"name": spec.optimizer_name, "population": spec.optimizer.population,
                      "options": dict(spec.optimizer.options)},
        "seed": campaign.get("seed", spec.seed),
        "priority": campaign.get("priority", spec.priority),
        "objectives": [{"metric": o.metric, "goal": o.goal, "target": o.target} for o in spec.objectives],
        "constraints": [{"metric": c.metric, "min": c.min, "max": c.max} for c in spec.constraints],
        "fidelities": [f.name for f in spec.fidelities],
        "patience": spec.budget.patience,
        "wall_time_hours": spec.budget.wall_time_hours,
    }


def evaluation_counts(evals: list[Row], kpis: Row) -> Row:
    return {
        "total": len(evals),
        "by_status": dict(sorted(Counter(str(e["status"]) for e in evals).items())),
        "failures": kpis["failures"],
        "first_feasible_at": kpis["first_feasible_at"],
    }


def met(goal: str, value: float | None, target: float | None) -> bool | None:
    if target is None:
        return None
    if value is None:
        return False
    return value <= target if goal == "minimize" else value >= target


def best(spec: CampaignSpec, evals: list[Row], gens: dict[Any, Row]) -> Row | None:
    best = kpi.best_of(spec, evals)
    if best is None:
        return None
    top = len(spec.fidelities) - 1
    rung = int(best["fidelity"])
    metrics = dict(best.get("metrics") or {})
    stored = best.get("objectives") or []
    objectives = []
    for i, o in enumerate(spec.objectives):
        value = finite(metrics.get(o.metric))
        if value is None and i < len(stored) and stored[i] is not None:  # minimized sign in the row
            value = float(stored[i]) * (1.0 if o.goal == "minimize" else -1.0)
        objectives.append({"metric": o.metric, "goal": o.goal, "value": value, "target": o.target,
                           "met": met(o.goal, value, o.target)})
    g = list(best.get("constraints") or [])
    constraints = [{"name": name, "value": g[i] if i < len(g) else None,
                    "satisfied": None if i >= len(g) or g[i] is None else bool(g[i] <= 0)}
                   for i, name in enumerate(spec.constraint_names)]
    gen = gens.get(best.get("generation_id")) or {}
    targets = [o["met"] for o in objectives if o["met"] is not None]
    if rung == top:
        note = f"evaluated at the top fidelity ({spec.fidelities[top].name}), feasible and succeeded"
    else:
        note = (f"the best feasible evaluation so far is at fidelity "
                f"{spec.fidelities[rung].name} (rung {rung + 1} of {top + 1}); none at the top fidelity "
                f"({spec.fidelities[top].name}) is feasible yet")
    if len(spec.objectives) > 1:
        note += f"; best by the first objective ({spec.objectives[0].metric}), the front shows the trade-offs"
    return {
        "certified": rung == top,
        "note": note,
        "evaluation_id": best.get("evaluation_id"),
        "generation_id": best.get("generation_id"),
        "generation_index": best.get("generation_index"),
        "kind": best.get("kind"),
        "candidate_index": best.get("candidate_index"),
        "fidelity": rung,
        "fidelity_name": spec.fidelities[rung].name,
        "top_fidelity_name": spec.fidelities[top].name,
        "param_hash": best.get("param_hash"),
        "params": {n: best["params"].get(n) for n in spec.param_names} if best.get("params") else {},
        "objective": best.get("objective"),
        # a model's own figure of merit, where it reports one (the stellarator's: 1 = by problem.evaluate)
        "score": finite(metrics.get("score")),
        "score_by_model_evaluate": metrics.get("evaluated") == 1.0,
        "objectives": objectives,
        "target_met": all(targets) if targets else None,
        "constraints": constraints,
        "metrics": metrics,
        "provenance": dict(best.get("provenance") or {}),
        "wall_seconds": best.get("wall_seconds"),
        "artifact_path": gen.get("artifact_path"),
        "result_document": ({"table": "hunt.generations", "column": "result_document",
                             "generation_id": best.get("generation_id"),
                             "candidate": best.get("candidate_index")}
                            if gen.get("has_result_document") or gen.get("result_document") else None),
    }


def user_sign(spec: CampaignSpec, minimized: list[float]) -> list[float]:
    return [v if o.goal == "minimize" else -v for v, o in zip(minimized, spec.objectives)]


def front(spec: CampaignSpec, evals: list[Row]) -> Row | None:
    if len(spec.objectives) < 2:
        return None
    top = len(spec.fidelities) - 1
    ref = None
    if spec.reference_point is not None:
        ref = [v if o.goal == "minimize" else -v for v, o in zip(spec.reference_point, spec.objectives)]
    out: Row = {"fidelity": None, "fidelity_name": None, "certified": False, "size": 0, "points": [],
                "reference_point": spec.reference_point, "hypervolume": None if ref is None else 0.0}
    rung, members = kpi.front_members(spec, evals)
    if rung is None:
        return out
    arr = np.asarray([e["objectives"] for e in members], dtype=float).reshape(len(members), len(spec.objectives))
    points = [{"evaluation_id": e.get("evaluation_id"), "generation_index": e.get("generation_index"),
               "objectives": dict(zip([o.metric for o in spec.objectives], user_sign(spec, list(e["objectives"])))),
               "params": {n: e["params"].get(n) for n in spec.param_names}} for e in members]
    out.update({
        "fidelity": rung, "fidelity_name": spec.fidelities[rung].name, "certified": rung == top,
        "size": len(points), "points": points,
        "hypervolume": None if ref is None else float(hypervolume(arr, np.asarray(ref, dtype=float))),
    })
    return out


def ladder(spec: CampaignSpec, kpis: Row) -> Row:
    rungs = []
    for i, (fid, row) in enumerate(zip(spec.fidelities, kpis["feasibility"])):
        rungs.append({"rung": i, "name": fid.name, "settings": dict(fid.settings), "budget": fid.budget,
                      "promote_top_k": fid.promote_top_k, **{k: row[k] for k in
                      ("evaluations", "succeeded", "feasible", "pass_rate")}})
    steps: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for d in kpis["promotion_deltas"]:
        steps[(d["from"], d["to"])].append(d)
    order = {f.name: i for i, f in enumerate(spec.fidelities)}
    promotions = []
    for (lo, hi), ds in sorted(steps.items(), key=lambda kv: (order.get(kv[0][0], 0), order.get(kv[0][1], 0))):
        deltas = [x for x in (finite(d["objective_delta"]) for d in ds) if x is not None]
        promotions.append({
            "from": lo, "to": hi, "candidates": len(ds),
            "objective_delta_mean": (sum(deltas) / len(deltas)) if deltas else None,
            "objective_delta_max_abs": max((abs(x) for x in deltas), default=None),
            "feasible_high": sum(1 for d in ds if d["feasible_high"]),
        })
    return {"rungs": rungs, "promotions": promotions, "promotion_deltas": kpis["promotion_deltas"]}


def trajectory(spec: CampaignSpec, rows: list[Row], campaign: Row) -> Row:
    points, changes = [], []
    prev_mode, prev_best = "explore", None
    last_improved = None
    for r in rows:
        details = r.get("details") or {}
        mode = str(r.get("mode"))
        if mode != prev_mode:
            changes.append({"generation_index": r["generation_index"], "from": prev_mode, "to": mode})
            prev_mode = mode
        best = r.get("best_objective")
        if best is not None and (prev_best is None or (r.get("improvement") or 0) > IMPROVEMENT_TOL):
            last_improved = r["generation_index"]
        if best is not None:
            prev_best = best
        points.append({
            "generation_index": r["generation_index"], "evaluations_used": r.get("evaluations_used"),
            "kind": details.get("kind"), "fidelity": details.get("fidelity"),
            "best_objective": best, "improvement": r.get("improvement"),
            "feasible_fraction": r.get("feasible_fraction"), "hypervolume": r.get("hypervolume"),
            "mode": mode, "reward": r.get("reward"), "stagnant": details.get("stagnant"),
        })
    return {
        "generations": len(points),
        "best_objective": points[-1]["best_objective"] if points else None,
        "last_improved_at_generation": last_improved,
        "stagnant": points[-1]["stagnant"] if points else None,
        "patience": spec.budget.patience,
        "mode": campaign.get("mode") or (points[-1]["mode"] if points else None),
        "mode_changes": changes,
        "points": points,
    }


def findings(rows: list[Row], gens: dict[Any, Row]) -> Row:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(rows, key=lambda f: (rank.get(str(f["severity"]), len(rank)), f.get("finding_id") or 0))
    top = []
    for f in ordered[:TOP_FINDINGS]:
        gen = gens.get(f.get("generation_id")) or {}
        top.append({"severity": str(f["severity"]), "kind": f["kind"], "message": f["message"],
                    "evaluation_id": f.get("evaluation_id"), "generation_index": gen.get("generation_index"),
                    "created_at": f.get("created_at")})
    by_severity = {s: 0 for s in SEVERITIES}
    for f in rows:
        by_severity[str(f["severity"])] = by_severity.get(str(f["severity"]), 0) + 1
    return {
        "total": len(rows),
        "by_severity": by_severity,
        "by_kind": dict(sorted(Counter(f["kind"] for f in rows).items(), key=lambda kv: (-kv[1], kv[0]))),
        "most_severe": top,
    }


def verification(share: Row | None) -> Row | None:
    """What review's verification batches cost (None when the inputs do not say)."""
    if share is None:
        return None
    n, search = int(share.get("verification_evaluations") or 0), int(share.get("search_evaluations") or 0)
    wall, search_wall = finite(share.get("verification_wall_seconds")), finite(share.get("search_wall_seconds"))
    return {
        "generations": int(share.get("verification_generations") or 0), "evaluations": n,
        "search_evaluations": search, "evaluation_share": (n / search) if search else None,
        "wall_seconds": wall, "search_wall_seconds": search_wall,
        "wall_share": (wall / search_wall) if wall is not None and search_wall else None,
        "ladder": int(share.get("promoted_checked_by_ladder") or 0),
    }


def stages(rows: list[Row]) -> list[Row]:
    by_stage: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_stage[str(r["stage"])].append(r)
    names = [s for s in STAGES if s in by_stage] + sorted(s for s in by_stage if s not in STAGES)
    out = []
    for name in names:
        mine = by_stage[name]
        status = Counter(str(r["status"]) for r in mine)
        durations = [d for d in (seconds(r.get("started_at"), r.get("finished_at")) for r in mine) if d is not None]
        failed = [r for r in mine if str(r["status"]) == "failed" and r.get("error")]
        out.append({
            "stage": name, "runs": len(mine), "succeeded": status.get("succeeded", 0),
            "failed": status.get("failed", 0), "skipped": status.get("skipped", 0),
            "running": status.get("running", 0), "crashed": status.get("crashed", 0),
            "retried": sum(1 for r in mine if (r.get("attempt") or 1) > 1),
            "attempts": sum(int(r.get("attempt") or 1) for r in mine),
            "mean_seconds": (sum(durations) / len(durations)) if durations else None,
            "max_seconds": max(durations, default=None),
            "last_error": failed[-1]["error"].strip().splitlines()[0][:MAX_MESSAGE] if failed else None,
        })
    return out
