"""Campaign KPIs from its evaluation rows: what ``huntflow summary`` prints, writes and plots.

Pure functions of plain dicts (one per evaluation, as stored in ``hunt.evaluations`` plus the
generation's ``generation_index``, ``kind`` and ``ask_id``), so they work on a query result, a
CSV or a test fixture alike.

KPIs:
  best_vs_evaluation  best feasible objective so far (user's sign) after each evaluation, in
                      ask order — the convergence curve;
  feasibility         per fidelity rung: evaluations, succeeded, feasible, pass rate;
  promotion_deltas    for each candidate evaluated at two rungs (same ``param_hash``): the
                      objective and constraint change from the lower to the higher rung;
  front               (several objectives) the feasible Pareto front at the highest rung that
                      has a feasible evaluation (:func:`front_members`).

``best_of`` is the campaign's best (learn records it; status, the summary, the report and the
Prefect artifacts show it): top fidelity first, ``certified`` only there.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from huntflow.engine.optimize.pareto import nondominated_mask
from huntflow.engine.spec import CampaignSpec


def _usable(e: dict[str, Any]) -> bool:
    return e["status"] == "succeeded" and bool(e.get("feasible")) and e.get("objective") is not None


def _is_finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def better(spec: CampaignSpec, a: float, b: float | None) -> bool:
    """Whether objective ``a`` beats ``b`` (user's sign; anything beats ``None``)."""
    if b is None:
        return True
    return a < b if spec.objectives[0].goal == "minimize" else a > b


def best_of(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best feasible succeeded evaluation: at the top fidelity (certified) if there is one
    there, else at any fidelity; the first of equals in ``evals`` order wins."""
    top = len(spec.fidelities) - 1
    ok = [e for e in evals if e["status"] == "succeeded" and e["feasible"] and e["objective"] is not None]
    pool = [e for e in ok if e["fidelity"] == top] or ok
    best = None
    for e in pool:
        if best is None or better(spec, e["objective"], best["objective"]):
            best = e
    return best


def best_vs_evaluation(spec: CampaignSpec, evals: list[dict[str, Any]]) -> list[float | None]:
    minimize = spec.objectives[0].goal == "minimize"
    best: float | None = None
    out: list[float | None] = []
    for e in evals:
        if _usable(e):
            v = float(e["objective"])
            if best is None or (v < best if minimize else v > best):
                best = v
        out.append(best)
    return out


def feasibility(spec: CampaignSpec, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for rung, fid in enumerate(spec.fidelities):
        mine = [e for e in evals if e["fidelity"] == rung and e["status"] != "pending"]
        ok = [e for e in mine if e["status"] == "succeeded"]
        feas = [e for e in ok if e.get("feasible")]
        rows.append({
            "fidelity": fid.name, "evaluations": len(mine), "succeeded": len(ok), "feasible": len(feas),
            "pass_rate": (len(feas) / len(mine)) if mine else None,
        })
    return rows


def promotion_deltas(spec: CampaignSpec, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate (``param_hash``) evaluated at several rungs, the change between each pair
    of consecutive rungs (its first succeeded evaluation at each), in order of first evaluation."""
    def ok(e: dict[str, Any]) -> bool:
        return e["status"] == "succeeded" and e.get("objective") is not None

    # only a candidate seen above the first rung can have a pair: the rest (nearly all of a long
    # hunt's rows) are not grouped at all
    promoted = {e["param_hash"] for e in evals if e["fidelity"] > 0 and ok(e)}
    by_hash: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for e in evals:
        if e["param_hash"] in promoted and ok(e):
            by_hash[e["param_hash"]].setdefault(e["fidelity"], e)
    out = []
    for h, rungs in by_hash.items():
        levels = sorted(rungs)
        for lo, hi in zip(levels, levels[1:]):
            a, b = rungs[lo], rungs[hi]
            ca, cb = a.get("constraints") or [], b.get("constraints") or []
            out.append({
                "param_hash": h, "from": spec.fidelities[lo].name, "to": spec.fidelities[hi].name,
                "objective_low": a["objective"], "objective_high": b["objective"],
                "objective_delta": b["objective"] - a["objective"],
                "constraint_deltas": [y - x for x, y in zip(ca, cb)],
                "feasible_high": bool(b.get("feasible")),
            })
    return out


def front_members(spec: CampaignSpec, evals: list[dict[str, Any]]) -> tuple[int | None, list[dict[str, Any]]]:
    """The feasible Pareto front: ``(rung, members)``.

    Fronts are compared at one fidelity only (a coarse rung's numbers are not the fine rung's):
    the highest rung with a feasible succeeded evaluation with finite objectives; one evaluation
    per ``param_hash`` (the first); members sorted by their (minimized) objectives.
    ``(None, [])`` when there is no such evaluation.
    """
    ok = [e for e in evals if _usable(e) and e.get("objectives")
          and all(_is_finite(v) for v in e["objectives"])]
    if not ok:
        return None, []
    rung = max(int(e["fidelity"]) for e in ok)
    pool, seen = [], set()
    for e in ok:
        if int(e["fidelity"]) == rung and e.get("param_hash") not in seen:
            seen.add(e.get("param_hash"))
            pool.append(e)
    arr = np.asarray([e["objectives"] for e in pool], dtype=float).reshape(len(pool), -1)
    members = [e for e, keep in zip(pool, nondominated_mask(arr)) if keep]
    return rung, sorted(members, key=lambda e: tuple(e["objectives"]))


def front(spec: CampaignSpec, evals: list[dict[str, Any]]) -> list[list[float]]:
    """The objectives (minimized) of :func:`front_members`; empty with one objective."""
    if len(spec.objectives) < 2:
        return []
    return [list(e["objectives"]) for e in front_members(spec, evals)[1]]


def best_info(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """:func:`best_of` as every view names it: value, rung (index and name), certified or not."""
    best = best_of(spec, evals)
    if best is None:
        return None
    rung = int(best["fidelity"])
    return {"objective": best["objective"], "evaluation_id": str(best.get("evaluation_id")),
            "best_fidelity": rung, "best_fidelity_name": spec.fidelities[rung].name,
            "best_certified": rung == len(spec.fidelities) - 1, "params": dict(best.get("params") or {})}


def best_by_rung(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per rung name: the best feasible objective so far at that rung after each of the
    campaign's evaluations (ask order), so curves of different rungs share one x axis."""
    minimize = spec.objectives[0].goal == "minimize"
    best: dict[int, float] = {}
    out: dict[str, list[float | None]] = {f.name: [] for f in spec.fidelities}
    for e in evals:
        if _usable(e):
            r, v = int(e["fidelity"]), float(e["objective"])
            if r not in best or (v < best[r] if minimize else v > best[r]):
                best[r] = v
        for r, f in enumerate(spec.fidelities):
            out[f.name].append(best.get(r))
    return out


def kpis(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's numbers; ``best`` / ``best_objective`` are :func:`best_of`'s (top rung
    first), the same candidate ``status``, the report and the Prefect artifacts name."""
    curve = best_vs_evaluation(spec, evals)
    best = best_info(spec, evals)
    return {
        "evaluations": len(evals),
        "best_objective": None if best is None else best["objective"],
        "best": best,
        "best_by_rung": best_by_rung(spec, evals),
        "first_feasible_at": next((i for i, v in enumerate(curve) if v is not None), None),
        "best_vs_evaluation": curve,
        "feasibility": feasibility(spec, evals),
        "promotion_deltas": promotion_deltas(spec, evals),
        "front": front(spec, evals),
        "front_rung": _front_rung(spec, evals),
        "failures": dict(sorted(_count(e.get("failure_category") for e in evals if e["status"] != "succeeded").items())),
    }


def _front_rung(spec: CampaignSpec, evals: list[dict[str, Any]]) -> str | None:
    if len(spec.objectives) < 2:
        return None
    rung = front_members(spec, evals)[0]
    return None if rung is None else spec.fidelities[rung].name


def _count(values) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[str(v)] += 1
    return out


def write_csv(spec: CampaignSpec, evals: list[dict[str, Any]], path: Path) -> Path:
    """One row per evaluation: identity, status, params, metrics, objectives, ALM state."""
    metric_names = sorted({k for e in evals for k in (e.get("metrics") or {})})
    head = ["generation_index", "kind", "ask_id", "candidate_index", "fidelity", "status", "failure_category",
            "feasible", "objective", "alm_loss", "alm_rho", "alm_outer", "param_hash"]
    head += [f"param.{n}" for n in spec.param_names] + [f"metric.{m}" for m in metric_names]
    head += [f"g.{n}" for n in spec.constraint_names]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for e in evals:
            cons = e.get("constraints") or [None] * len(spec.constraint_names)
            w.writerow(
                [e.get(k) for k in head[:13]]
                + [e["params"].get(n) for n in spec.param_names]
                + [(e.get("metrics") or {}).get(m) for m in metric_names]
                + list(cons)
            )
    return path


def plot(spec: CampaignSpec, summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG plots of the KPIs (:mod:`huntflow.engine.plots`); returns the files written."""
    from huntflow.engine import plots

    return plots.write(spec, summary, out_dir)
