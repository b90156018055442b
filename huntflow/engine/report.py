"""A campaign's report: a JSON-able dict and a Markdown document, from its rows alone.

Pure functions of plain data — the campaign row, its parsed spec, and its evaluation,
generation, trajectory, finding and stage-run rows as the store returns them (see
:func:`huntflow.store.reports.report_inputs`) — so a report can be rebuilt from a database dump
or a test fixture. :func:`write` adds the files: ``report.md``, ``report.json`` and the summary's
``evaluations.csv`` and PNG plots (:mod:`huntflow.engine.summary`).

Sections (keys of :func:`build`'s dict):
  campaign    header: slug, title, model, status, completion reason, mode, created / finished,
              evaluations used (not pending) of the budget, optimizer, seed, objectives,
              constraints, fidelity ladder names;
  evaluations counts by status and failure category, the first feasible evaluation;
  best        the best feasible succeeded evaluation (:func:`~huntflow.engine.summary.best_of`:
              top fidelity first). ``certified`` is true only when it was evaluated at the top
              fidelity; then its params, metrics, objectives (with targets), constraint values
              (``g <= 0`` is satisfied), provenance, HDF5 artifact path and where its result
              document is stored. ``None`` while nothing is feasible;
  front       (several objectives) the feasible non-dominated set at the highest rung that has
              a feasible evaluation (top rung first; one point per param hash), objectives in the
              user's sign, and its hypervolume against ``spec.reference_point``;
  ladder      per rung: evaluations, succeeded, feasible, pass rate; promotions from each rung to
              the next: candidates, mean and largest objective change, feasible at the higher rung;
  trajectory  learn's rows: best vs generation, the mode changes with the generation where each
              happened, the generation the best was last improved at, the current stagnation
              count against ``budget.patience``;
  findings    review findings counted by severity and kind, the most severe few listed;
  stages      per stage: runs, succeeded / failed / skipped / running / crashed, retried runs, attempts,
              mean and max duration, the last error;
  files       what :func:`write` wrote (empty from :func:`build`).

Numbers are kept as numbers in the dict (non-finite ones become ``null``, so the dict is strict
JSON) and shown with 6 significant digits in the Markdown.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

from huntflow.engine import summary as kpi
from huntflow.engine.optimize.pareto import hypervolume
from huntflow.engine.spec import CampaignSpec

FORMAT = "huntflow.report/1"
SEVERITIES = ("critical", "high", "medium", "low")
STAGES = ("discover", "dispatch", "parse", "review", "evolve", "learn")
IMPROVEMENT_TOL = 1e-12
TOP_FINDINGS = 5
MAX_TRAJECTORY_ROWS = 25
MAX_FRONT_ROWS = 20
MAX_MESSAGE = 240

Row = dict[str, Any]


# --- plain values --------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A strict-JSON copy: datetimes as ISO strings, UUIDs as strings, non-finite floats as
    ``None``, numpy scalars and arrays as Python values, bytes dropped (``None``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (UUID, Path)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return (end - start).total_seconds()
    return None


# --- sections ------------------------------------------------------------------------------------
def _header(campaign: Row, spec: CampaignSpec, evals: list[Row]) -> Row:
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
        "elapsed_seconds": _seconds(campaign.get("created_at"), campaign.get("completed_at")),
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


def _evaluation_counts(evals: list[Row], kpis: Row) -> Row:
    return {
        "total": len(evals),
        "by_status": dict(sorted(Counter(str(e["status"]) for e in evals).items())),
        "failures": kpis["failures"],
        "first_feasible_at": kpis["first_feasible_at"],
    }


def _met(goal: str, value: float | None, target: float | None) -> bool | None:
    if target is None:
        return None
    if value is None:
        return False
    return value <= target if goal == "minimize" else value >= target


def _best(spec: CampaignSpec, evals: list[Row], gens: dict[Any, Row]) -> Row | None:
    best = kpi.best_of(spec, evals)
    if best is None:
        return None
    top = len(spec.fidelities) - 1
    rung = int(best["fidelity"])
    metrics = dict(best.get("metrics") or {})
    stored = best.get("objectives") or []
    objectives = []
    for i, o in enumerate(spec.objectives):
        value = _finite(metrics.get(o.metric))
        if value is None and i < len(stored) and stored[i] is not None:  # minimized sign in the row
            value = float(stored[i]) * (1.0 if o.goal == "minimize" else -1.0)
        objectives.append({"metric": o.metric, "goal": o.goal, "value": value, "target": o.target,
                           "met": _met(o.goal, value, o.target)})
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
        "score": _finite(metrics.get("score")),
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


def _user_sign(spec: CampaignSpec, minimized: list[float]) -> list[float]:
    return [v if o.goal == "minimize" else -v for v, o in zip(minimized, spec.objectives)]


def _front(spec: CampaignSpec, evals: list[Row]) -> Row | None:
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
               "objectives": dict(zip([o.metric for o in spec.objectives], _user_sign(spec, list(e["objectives"])))),
               "params": {n: e["params"].get(n) for n in spec.param_names}} for e in members]
    out.update({
        "fidelity": rung, "fidelity_name": spec.fidelities[rung].name, "certified": rung == top,
        "size": len(points), "points": points,
        "hypervolume": None if ref is None else float(hypervolume(arr, np.asarray(ref, dtype=float))),
    })
    return out


def _ladder(spec: CampaignSpec, kpis: Row) -> Row:
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
        deltas = [x for x in (_finite(d["objective_delta"]) for d in ds) if x is not None]
        promotions.append({
            "from": lo, "to": hi, "candidates": len(ds),
            "objective_delta_mean": (sum(deltas) / len(deltas)) if deltas else None,
            "objective_delta_max_abs": max((abs(x) for x in deltas), default=None),
            "feasible_high": sum(1 for d in ds if d["feasible_high"]),
        })
    return {"rungs": rungs, "promotions": promotions, "promotion_deltas": kpis["promotion_deltas"]}


def _trajectory(spec: CampaignSpec, rows: list[Row], campaign: Row) -> Row:
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


def _findings(rows: list[Row], gens: dict[Any, Row]) -> Row:
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


def _stages(rows: list[Row]) -> list[Row]:
    by_stage: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_stage[str(r["stage"])].append(r)
    names = [s for s in STAGES if s in by_stage] + sorted(s for s in by_stage if s not in STAGES)
    out = []
    for name in names:
        mine = by_stage[name]
        status = Counter(str(r["status"]) for r in mine)
        durations = [d for d in (_seconds(r.get("started_at"), r.get("finished_at")) for r in mine) if d is not None]
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


def build(
    campaign: Row,
    spec: CampaignSpec,
    evaluations: Iterable[Row],
    trajectories: Iterable[Row] = (),
    findings: Iterable[Row] = (),
    stage_runs: Iterable[Row] = (),
    generations: Iterable[Row] = (),
    *,
    generated_at: dt.datetime | None = None,
) -> Row:
    """The report of one campaign as a strict-JSON dict (see the module docstring for its keys).

    Args:
        campaign: the ``hunt.campaigns`` row.
        spec: its parsed spec.
        evaluations: rows as :func:`~huntflow.store.generations.campaign_evaluations` returns them.
        trajectories, findings, stage_runs: the campaign's rows of those tables.
        generations: its generation rows (for artifact paths; ``has_result_document`` or
            ``result_document`` says whether a result document is stored).
    """
    evals = list(evaluations)
    gens = {g["generation_id"]: g for g in generations}
    stage_rows = list(stage_runs)
    kpis = kpi.kpis(spec, evals)
    report = {
        "format": FORMAT,
        "generated_at": generated_at or dt.datetime.now(dt.timezone.utc),
        "campaign": {**_header(campaign, spec, evals),
                     "ticks": len({r.get("tick_id") for r in stage_rows if r.get("tick_id") is not None})},
        "evaluations": _evaluation_counts(evals, kpis),
        "best": _best(spec, evals, gens),
        "front": _front(spec, evals),
        "ladder": _ladder(spec, kpis),
        "trajectory": _trajectory(spec, list(trajectories), campaign),
        "findings": _findings(list(findings), gens),
        "stages": _stages(stage_rows),
        "files": {},
    }
    return jsonable(report)


# --- Markdown ------------------------------------------------------------------------------------
def num(v: Any) -> str:
    """A number for people: 6 significant digits; ``—`` for none."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return text(v)


def text(v: Any) -> str:
    """Free text safe inside a Markdown table cell (no pipes, newlines, markup or HTML)."""
    s = " ".join(str(v).split())
    for ch in "\\`*_[]<>|":
        s = s.replace(ch, "\\" + ch)
    return s


def code(v: Any) -> str:
    """An identifier or path as a code span."""
    return "`" + " ".join(str(v).split()).replace("`", "'") + "`"


def _value(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return code(json.dumps(v, sort_keys=True))
    return num(v)


def _when(v: Any) -> str:
    if not v:
        return "—"
    try:
        t = dt.datetime.fromisoformat(str(v))
    except ValueError:
        return text(v)
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.3g} %"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _pick(n: int, keep: list[int], limit: int) -> list[int]:
    """Indices to show of ``n`` rows: ``keep`` (first, last, changes) thinned to ``limit``."""
    idx = sorted(set(keep))
    if len(idx) <= limit:
        return idx
    step = (len(idx) - 1) / (limit - 1)
    return sorted({idx[round(i * step)] for i in range(limit)})


def _md_header(r: Row) -> list[str]:
    c = r["campaign"]
    status = text(c["status"]) + (f" ({code(c['completion_reason'])})" if c.get("completion_reason") else "")
    objectives = ", ".join(
        f"{code(o['metric'])} ({o['goal']}{'' if o['target'] is None else ', target ' + num(o['target'])})"
        for o in c["objectives"])
    constraints = ", ".join(
        " and ".join(x for x in (None if k["min"] is None else f"{code(k['metric'])} ≥ {num(k['min'])}",
                                 None if k["max"] is None else f"{code(k['metric'])} ≤ {num(k['max'])}") if x)
        for k in c["constraints"]) or "none"
    opt = c["optimizer"]
    used = f"{c['evaluations_used']} of {c['evaluations_budget']}"
    if c["evaluations_pending"]:
        used += f" ({c['evaluations_pending']} pending)"
    rows = [
        ["model", code(c["model"]) + (f" {_value(c['model_fixed'])}" if c["model_fixed"] else "")],
        ["status", status],
        ["mode", text(c["mode"] or "—")],
        ["created", _when(c["created_at"])],
        ["finished", _when(c["finished_at"])],
        ["elapsed", _duration(c["elapsed_seconds"])],
        ["evaluations used / budget", used],
        ["ticks", str(c["ticks"])],
        ["optimizer", f"{code(opt['name'])}, population {opt['population']}"
                      + (f", options {_value(opt['options'])}" if opt["options"] else "")],
        ["seed", str(c["seed"])],
        ["objectives", objectives],
        ["constraints", constraints],
        ["fidelity ladder", " → ".join(code(f) for f in c["fidelities"])],
        ["report generated", _when(r["generated_at"])],
    ]
    title = f"# Campaign report: {text(c['slug'])}"
    lines = [title, ""]
    if c.get("title"):
        lines += [f"*{text(c['title'])}*", ""]
    return lines + _table(["", ""], [[f"**{k}**", v] for k, v in rows]) + [""]


def _md_best(r: Row) -> list[str]:
    b = r["best"]
    lines = ["## Best candidate", ""]
    if b is None:
        if not r["evaluations"]["total"]:
            lines += ["No evaluations yet: the campaign has not run a generation.", ""]
        else:
            lines += [f"No feasible evaluation yet ({r['evaluations']['total']} evaluated).", ""]
        return lines
    verdict = "**Certified**" if b["certified"] else "**Not certified**"
    lines += [f"{verdict} — {text(b['note'])}.", ""]
    ident = [
        ["objective", num(b["objective"])],
        ["fidelity", f"{code(b['fidelity_name'])} (rung {b['fidelity'] + 1}; top: {code(b['top_fidelity_name'])})"],
        ["evaluation", code(b["evaluation_id"])],
        ["generation", f"{num(b['generation_index'])} ({text(b['kind'] or '—')}), candidate {num(b['candidate_index'])}"],
        ["target met", num(b["target_met"]) if b["target_met"] is not None else "no target"],
        ["wall time", _duration(b["wall_seconds"])],
    ]
    if b.get("score") is not None:
        how = " (computed by the model's own evaluate on this candidate)" if b.get("score_by_model_evaluate") else ""
        ident.insert(1, ["score", num(b["score"]) + how])
    lines += _table(["", ""], [[f"**{k}**", v] for k, v in ident]) + [""]
    lines += ["### Parameters", ""] + _table(["parameter", "value"], [[code(k), num(v)] for k, v in b["params"].items()]) + [""]
    lines += ["### Objectives", ""] + _table(
        ["metric", "goal", "value", "target", "met"],
        [[code(o["metric"]), o["goal"], num(o["value"]), num(o["target"]), "—" if o["met"] is None else num(o["met"])]
         for o in b["objectives"]]) + [""]
    if b["constraints"]:
        lines += ["### Constraints (g ≤ 0 is satisfied)", ""] + _table(
            ["constraint", "g", "satisfied"],
            [[code(k["name"]), num(k["value"]), num(k["satisfied"])] for k in b["constraints"]]) + [""]
    if b["metrics"]:
        lines += ["### Metrics", ""] + _table(["metric", "value"], [[code(k), _value(v)] for k, v in sorted(b["metrics"].items())]) + [""]
    p = b["provenance"]
    known = ("engine_version", "git_commit", "jax_version", "jax_backend", "device_count", "dtype", "seed",
             "fidelity", "model", "attempt", "parse_tier")
    prov_rows = [[code(k), _value(p[k])] for k in known if k in p] + [[code(k), _value(v)] for k, v in sorted(p.items()) if k not in known]
    lines += ["### Provenance", ""]
    lines += (_table(["field", "value"], prov_rows) if prov_rows else ["No provenance recorded."]) + [""]
    lines += ["### Artifacts", ""]
    lines.append(f"- HDF5 artifact: {code(b['artifact_path']) if b['artifact_path'] else 'none recorded'}")
    doc = b["result_document"]
    if doc:
        lines.append(f"- result document: stored in {code(doc['table'] + '.' + doc['column'])} of generation "
                     f"{code(doc['generation_id'])}, candidate {num(doc['candidate'])}")
    else:
        lines.append("- result document: none stored")
    return lines + [""]


def _md_front(r: Row) -> list[str]:
    f = r["front"]
    if f is None:
        return []
    lines = ["## Pareto front", ""]
    if not f["size"]:
        return lines + ["No feasible evaluation yet, so no front.", ""]
    where = "the top fidelity, certified" if f["certified"] else "not the top fidelity: not certified"
    hv = ("no reference point in the spec" if f["hypervolume"] is None
          else f"{num(f['hypervolume'])} against reference point {_value(f['reference_point'])}")
    lines += [f"{f['size']} feasible non-dominated candidate(s) at fidelity {code(f['fidelity_name'])} ({where}); "
              f"hypervolume {hv}.", ""]
    metrics = list(f["points"][0]["objectives"])
    params = list(f["points"][0]["params"])
    shown = f["points"][:MAX_FRONT_ROWS]
    lines += _table(["#"] + [code(m) for m in metrics] + [code(p) for p in params],
                    [[str(i + 1)] + [num(p["objectives"][m]) for m in metrics] + [num(p["params"][q]) for q in params]
                     for i, p in enumerate(shown)])
    if len(f["points"]) > len(shown):
        lines.append(f"\n({len(shown)} of {len(f['points'])} shown; all are in report.json.)")
    return lines + [""]


def _md_ladder(r: Row) -> list[str]:
    lad = r["ladder"]
    lines = ["## Fidelity ladder", ""]
    lines += _table(["rung", "fidelity", "settings", "evaluations", "succeeded", "feasible", "pass rate"],
                    [[str(x["rung"] + 1), code(x["name"]), _value(x["settings"]) if x["settings"] else "—",
                      str(x["evaluations"]), str(x["succeeded"]), str(x["feasible"]), _pct(x["pass_rate"])]
                     for x in lad["rungs"]]) + [""]
    if lad["promotions"]:
        lines += ["Promotions (the same candidate at the lower and the higher rung):", ""]
        lines += _table(["from → to", "candidates", "mean Δ objective", "largest abs Δ objective", "feasible at higher"],
                        [[f"{code(p['from'])} → {code(p['to'])}", str(p["candidates"]), num(p["objective_delta_mean"]),
                          num(p["objective_delta_max_abs"]), f"{p['feasible_high']} of {p['candidates']}"]
                         for p in lad["promotions"]]) + [""]
    elif len(lad["rungs"]) > 1:
        lines += ["No candidate has been promoted yet.", ""]
    return lines


def _md_trajectory(r: Row) -> list[str]:
    t = r["trajectory"]
    lines = ["## Trajectory", ""]
    if not t["generations"]:
        return lines + ["No generation has been told yet.", ""]
    stagnant = "—" if t["stagnant"] is None else str(t["stagnant"])
    patience = "no patience limit" if t["patience"] is None else f"patience {t['patience']}"
    lines += [f"{t['generations']} generation(s) recorded; best {num(t['best_objective'])}, last improved at "
              f"generation {num(t['last_improved_at_generation'])}; {stagnant} generation(s) without "
              f"improvement ({patience}); mode now {text(t['mode'] or '—')}.", ""]
    if t["mode_changes"]:
        lines += ["Mode changes: " + "; ".join(f"generation {c['generation_index']}: {text(c['from'])} → {text(c['to'])}"
                                               for c in t["mode_changes"]) + ".", ""]
    else:
        lines += ["Mode changes: none.", ""]
    pts = t["points"]
    changed = {c["generation_index"] for c in t["mode_changes"]}
    keep = [0, len(pts) - 1] + [i for i, p in enumerate(pts)
                                if (p["improvement"] or 0) > IMPROVEMENT_TOL or p["generation_index"] in changed]
    shown = _pick(len(pts), keep, MAX_TRAJECTORY_ROWS)
    hv = any(p["hypervolume"] is not None for p in pts)
    head = ["generation", "kind", "fidelity", "evaluations used", "best", "improvement", "feasible"] + (
        ["hypervolume"] if hv else []) + ["mode"]
    rows = []
    for i in shown:
        p = pts[i]
        rows.append([str(p["generation_index"]), text(p["kind"] or "—"), code(p["fidelity"]) if p["fidelity"] else "—",
                     num(p["evaluations_used"]), num(p["best_objective"]), num(p["improvement"]),
                     _pct(p["feasible_fraction"])] + ([num(p["hypervolume"])] if hv else []) + [text(p["mode"])])
    lines += _table(head, rows)
    if len(shown) < len(pts):
        lines.append(f"\n(first, last, improving and mode-changing generations: {len(shown)} of {len(pts)} shown; "
                     "all are in report.json.)")
    return lines + [""]


def _md_findings(r: Row) -> list[str]:
    f = r["findings"]
    lines = ["## Review findings", ""]
    if not f["total"]:
        return lines + ["None: review found nothing to object to.", ""]
    lines += [f"{f['total']} finding(s): " + ", ".join(f"{n} {s}" for s, n in f["by_severity"].items()) + ".", ""]
    lines += ["By kind: " + ", ".join(f"{code(k)} {n}" for k, n in f["by_kind"].items()) + ".", ""]
    lines += ["Most severe:", ""]
    lines += _table(["severity", "kind", "generation", "evaluation", "message"],
                    [[x["severity"], code(x["kind"]), num(x["generation_index"]),
                      code(str(x["evaluation_id"])[:8]) if x["evaluation_id"] else "—",
                      text(str(x["message"])[:MAX_MESSAGE])] for x in f["most_severe"]])
    return lines + [""]


def _md_stages(r: Row) -> list[str]:
    st = r["stages"]
    lines = ["## Stage health", ""]
    if not st:
        return lines + ["No stage has run for this campaign yet.", ""]
    lines += _table(["stage", "runs", "succeeded", "failed", "skipped", "running", "crashed", "retried", "attempts",
                     "mean", "max"],
                    [[s["stage"], str(s["runs"]), str(s["succeeded"]), str(s["failed"]), str(s["skipped"]),
                      str(s["running"]), str(s.get("crashed", 0)), str(s["retried"]), str(s["attempts"]), _duration(s["mean_seconds"]),
                      _duration(s["max_seconds"])] for s in st])
    errors = [s for s in st if s["last_error"]]
    if errors:
        lines += [""] + [f"- last {s['stage']} error: {text(s['last_error'])}" for s in errors]
    return lines + [""]


def _md_evaluations(r: Row) -> list[str]:
    e = r["evaluations"]
    lines = ["## Evaluations", ""]
    if not e["total"]:
        return lines + ["No evaluations yet.", ""]
    lines.append("By status: " + ", ".join(f"{text(k)} {v}" for k, v in e["by_status"].items()) + ".")
    if e["failures"]:
        lines.append("Not succeeded, by category: " + ", ".join(f"{code(k)} {v}" for k, v in e["failures"].items()) + ".")
    first = e["first_feasible_at"]
    lines.append("First feasible: " + ("none yet." if first is None else f"evaluation {first + 1} (in ask order)."))
    return lines + [""]


def _md_files(r: Row) -> list[str]:
    files = r.get("files") or {}
    if not files:
        return []
    lines = ["## Files", ""]
    for k in ("markdown", "json", "csv"):
        if files.get(k):
            lines.append(f"- {k}: {code(files[k])}")
    for p in files.get("plots") or []:
        lines.append(f"- plot: {code(p)}")
    return lines + [""]


def markdown(report: Row) -> str:
    """The report as a Markdown document (tables, 6 significant digits)."""
    lines: list[str] = []
    for part in (_md_header, _md_best, _md_front, _md_ladder, _md_trajectory, _md_findings, _md_stages,
                 _md_evaluations, _md_files):
        lines += part(report)
    return "\n".join(lines).rstrip() + "\n"


# --- files ---------------------------------------------------------------------------------------
def write(inputs: Row, out_dir: Path, *, plots: bool = True, generated_at: dt.datetime | None = None) -> Row:
    """Write ``report.md``, ``report.json``, ``evaluations.csv`` and (with ``plots``) the summary's
    PNG plots into ``out_dir``; returns the report with ``files`` filled in.

    Args:
        inputs: the keyword arguments of :func:`build` (``campaign``, ``spec``, ``evaluations``,
            ``trajectories``, ``findings``, ``stage_runs``, ``generations``), e.g.
            :func:`huntflow.store.reports.report_inputs`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec, evals = inputs["spec"], list(inputs["evaluations"])
    report = build(inputs["campaign"], spec, evals, inputs.get("trajectories", ()), inputs.get("findings", ()),
                   inputs.get("stage_runs", ()), inputs.get("generations", ()), generated_at=generated_at)
    csv_path = kpi.write_csv(spec, evals, out_dir / "evaluations.csv")
    pngs = kpi.plot(spec, kpi.kpis(spec, evals), out_dir) if plots else []
    md_path, json_path = out_dir / "report.md", out_dir / "report.json"
    report["files"] = {"dir": str(out_dir), "markdown": str(md_path), "json": str(json_path), "csv": str(csv_path),
                       "plots": [str(p) for p in pngs]}
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown(report))
    return report
