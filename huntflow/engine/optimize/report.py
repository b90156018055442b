"""The JSON-able views of a hunt: its summary, its Pareto front and hypervolume.

"Best" is taken at the highest rung that has a feasible evaluation, preferring the top rung:
a best found there is *certified* (with one rung every evaluation runs at the top fidelity, so
the best is certified by construction). With several objectives the front is the
non-dominated set of the feasible evaluations at that same rung, and its hypervolume is taken
against ``spec.reference_point`` (given in the metrics' own units; maximized objectives are
negated like the objectives themselves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from huntflow.engine.optimize import evalindex
from huntflow.engine.optimize.pareto import hypervolume

if TYPE_CHECKING:
    from huntflow.engine.optimize.hunt import Hunt


def reference(hunt: "Hunt") -> np.ndarray | None:
    """The reference point as minimized objectives (None when the spec has none)."""
    ref = hunt.spec.reference_point
    if ref is None:
        return None
    return np.array([v if o.goal == "minimize" else -v for v, o in zip(ref, hunt.spec.objectives)], dtype=float)


def _feasible_at(hunt: "Hunt", fidelity: int) -> list[int]:
    return evalindex.of(hunt).feasible.get(fidelity, [])


def front_indices(hunt: "Hunt", fidelity: int) -> list[int]:
    """Indices (into the hunt's evaluations) of the feasible non-dominated ones at ``fidelity``,
    one per distinct param hash (kept by :mod:`~huntflow.engine.optimize.evalindex`; with one
    objective: those at the rung's lowest value)."""
    index = evalindex.of(hunt)
    idx = index.best.get(fidelity, []) if hunt.n_obj == 1 else index.front.get(fidelity, [])
    out, seen = [], set()
    for i in idx:
        if hunt.evals[i]["hash"] not in seen:
            seen.add(hunt.evals[i]["hash"])
            out.append(i)
    return out


def tell_hypervolume(hunt: "Hunt", fidelity: int) -> float | None:
    """Hypervolume of the feasible front at ``fidelity`` (None without a reference point)."""
    ref = reference(hunt)
    if ref is None:
        return None
    idx = front_indices(hunt, fidelity)
    pts = np.array([hunt.evals[i]["objectives"] for i in idx], dtype=float).reshape(-1, len(ref))
    return hypervolume(pts, ref)


def _view(hunt: "Hunt", i: int) -> dict:
    e = hunt.evals[i]
    obj = None if e["objectives"] is None else hunt._user_sign(e["objectives"])
    view = {
        "eval": i,
        "ask_id": e["ask_id"],
        "fidelity": e["fidelity"],
        "params": hunt._candidate(e["values"]),
        "param_hash": e["hash"],
        "status": e["status"],
        "objectives": obj,
        "constraints": e["constraints"],
        "feasible": e["feasible"],
    }
    if e["parent"] is not None:
        view["delta"] = hunt._delta(e["parent"], e["objectives"], e["constraints"])
    return view


def summarize(hunt: "Hunt") -> dict:
    """The hunt's summary.

    Returns:
        A JSON-able dict: ``evaluations_told``, ``evaluations_asked``, ``evaluations_failed``,
        ``evaluations_rejected``, ``prefilter_rejected``, ``duplicates`` (asks of known points:
        ``told`` the stored result, ``dropped``, ``fill`` points drawn instead; see
        :mod:`~huntflow.engine.optimize.dedup`), ``space_exhausted`` (rungs whose search ran out
        of new points), ``budget``, ``pending``, ``finished``,
        ``best_objective`` (user sign), ``best_objectives``, ``best_params``, ``best_fidelity``,
        ``best_certified``, ``target_met``, ``certified`` and ``promoted`` (with low-to-high
        ``delta`` of objectives and constraints), ``front``, ``hypervolume``,
        ``hypervolume_history``, ``alm``, ``rung``, ``phase``, ``stages``.
    """
    spec = hunt.spec
    index = evalindex.of(hunt)
    top = len(spec.fidelities) - 1
    best_fid = next((f for f in range(top, -1, -1) if _feasible_at(hunt, f)), None)
    best = None
    front: list[int] = []
    if best_fid is not None:
        front = front_indices(hunt, best_fid)
        best = min(front, key=lambda i: (hunt.evals[i]["objectives"][0], i))
    ref = reference(hunt)
    hv = None
    if ref is not None:
        pts = np.array([hunt.evals[i]["objectives"] for i in front], dtype=float).reshape(-1, len(ref))
        hv = hypervolume(pts, ref)
    best_obj = None if best is None else hunt._user_sign(hunt.evals[best]["objectives"])
    target = spec.objectives[0].target
    target_met = False
    if best_obj is not None and target is not None and best_fid == top:
        goal = spec.objectives[0].goal
        target_met = best_obj[0] <= target if goal == "minimize" else best_obj[0] >= target
    stage = hunt.stages[hunt.stage_idx] if hunt.stage_idx < len(hunt.stages) else None
    return {
        "evaluations_told": len(hunt.evals),
        "evaluations_asked": hunt.asked,
        "evaluations_failed": index.failed,
        "evaluations_rejected": index.rejected,
        "prefilter_rejected": hunt.prefilter_rejected,
        "duplicates": dict(getattr(hunt, "duplicates", {})),
        "space_exhausted": sorted(set(getattr(hunt, "exhausted", []))),
        "budget": hunt.total,
        "pending": hunt.pending,
        "finished": hunt.is_finished(),
        "best_objective": None if best_obj is None else best_obj[0],
        "best_objectives": best_obj,
        "best_params": None if best is None else hunt._candidate(hunt.evals[best]["values"]),
        "best_param_hash": None if best is None else hunt.evals[best]["hash"],
        "best_fidelity": best_fid,
        "best_certified": best_fid == top if best is not None else False,
        "target_met": bool(target_met),
        "certified": [_view(hunt, i) for i in index.by_kind.get("certification", [])],
        "promoted": [_view(hunt, i) for i in index.by_kind.get("promotion", [])],
        "front": [_view(hunt, i) for i in front] if len(spec.objectives) > 1 else [],
        "hypervolume": hv,
        "hypervolume_history": list(hunt.hv_history),
        "alm": hunt.alm.as_dict(),
        "rung": None if stage is None else (stage.rung if stage.kind == "search" else stage.rung + 1),
        "phase": "finished" if stage is None else stage.kind,
        "stages": [{"kind": s.kind, "rung": s.rung, "count": s.count} for s in hunt.stages],
        "stage": hunt.stage_idx,
    }
