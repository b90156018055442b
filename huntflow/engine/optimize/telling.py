"""Telling a :class:`~huntflow.engine.optimize.hunt.Hunt` the reviewed outcomes of an ask.

What the optimizer is told (search asks only; promotion and certification evaluations are
recorded but not told, since the optimizer never asked for them at that rung):

* ``ok``, to the natively multi-objective ``nsga2`` backend (the default with several
  objectives, :mod:`~huntflow.engine.optimize.nsga2`): the objective vector and the total
  constraint violation ``sum(max(0, g_j))``; it ranks by constrained domination, no ALM.
* ``ok``, to every other backend: the augmented Lagrangian loss (:mod:`~huntflow.engine.optimize.alm`) of the
  objective. With several objectives the objective is first scalarized. Default
  (``optimizer.options.scalarization: hypervolume``): :func:`~huntflow.engine.optimize.pareto.front_loss`
  against the feasible front of the same rung told before this batch, in the box spanned by the
  observed ideal and the worse of the observed nadir and the reference point (minus the
  hypervolume improvement for a non-dominated point, the missing additive epsilon for a
  dominated one). Option ``chebyshev``: an augmented Chebyshev function with random weights drawn
  per candidate from a Dirichlet(1, ..., 1) with an RNG seeded by ``(spec.seed, ask_id)``
  (ParEGO style; the weights are recorded in ``Ask.decisions``).
* ``optimizer.options.feasibility_first: true``: a feasibility phase first. Until a search ask
  of a rung has a feasible candidate, that rung's optimizer is told each candidate's total
  violation ``sum(max(0, g_j))`` (0 for a feasible one) instead of the ALM loss, and the ALM
  state does not move; from the next ask on it is told the ALM loss, from ``lambda = 0``,
  ``rho = 1``. A stationary loss while nothing is feasible: the ALM's rising penalty otherwise
  re-scales the loss every generation, and its multipliers grow from infeasible means.
* ``rejected`` (review found it untrustworthy) and prefilter rejections: infeasible. They are
  told a penalty derived from the ALM losses observed so far, strictly worse than all of them:
  ``L_max + max(L_max - L_min, 1)``. Before any loss has been observed they are not told.
* ``failed``: not told at all (no made-up loss). nevergrad's batch optimizers do not re-ask a
  point they were not told about (CMA updates on the candidates it does get, DE's population
  slot is re-asked from a new mutation), so a failure costs one evaluation, not a loop. Failures
  are recorded with their category and teach the prefilter where not to go.
* ``ok`` with a non-finite objective or constraint value is recorded as ``failed`` with the
  category ``nonfinite``.

"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from huntflow.engine.optimize import evalindex
from huntflow.engine.optimize.alm import alm_loss, alm_update
from huntflow.engine.optimize.batch import STATUSES, Outcome
from huntflow.engine.optimize.pareto import chebyshev, front_loss
from huntflow.engine.optimize.report import reference as report_reference
from huntflow.engine.optimize.report import tell_hypervolume

if TYPE_CHECKING:
    from huntflow.engine.optimize.hunt import Hunt


def penalty(hunt: "Hunt") -> float | None:
    if hunt.loss_range is None:
        return None
    lo, hi = hunt.loss_range
    return hi + max(hi - lo, 1.0)


def in_feasibility_phase(hunt: "Hunt", rung: int) -> bool:
    """``feasibility_first`` is on and no search candidate of ``rung`` told so far was feasible."""
    return getattr(hunt, "feasibility_first", False) and rung not in evalindex.of(hunt).feasible_search


def parse(hunt: "Hunt", outcome: Outcome) -> tuple[str, list[float] | None, list[float] | None, str | None]:
    if outcome.status not in STATUSES:
        raise ValueError(f"outcome status must be one of {STATUSES}, got {outcome.status!r}")
    if outcome.status == "failed":
        return "failed", None, None, outcome.failure_category or "unknown"
    needed = [o.metric for o in hunt.spec.objectives] + [c.metric for c in hunt.spec.constraints]
    missing = [m for m in needed if m not in outcome.metrics]
    if missing and outcome.status == "ok":
        raise ValueError(f"an ok outcome lacks metrics {missing}")
    if missing:
        return "rejected", None, None, outcome.failure_category
    obj = hunt.spec.objective_values(outcome.metrics)
    g = hunt.spec.constraint_values(outcome.metrics)
    if outcome.status == "ok" and not all(math.isfinite(v) for v in obj + g):
        return "failed", None, None, "nonfinite"
    return outcome.status, obj, g, outcome.failure_category


def mo_context(hunt: "Hunt", fidelity: int, batch: list[list[float]]) -> dict:
    """Front (feasible, this rung, told before this batch) and normalization box (each
    objective's range over the rung's ok evaluations and the batch), from the evaluation index."""
    index = evalindex.of(hunt)
    front = np.array(index.front_points.get(fidelity, []), dtype=float).reshape(-1, hunt.n_obj)
    seen = np.array([r for r in (index.ok_low.get(fidelity), index.ok_high.get(fidelity)) if r is not None]
                    + list(batch), dtype=float).reshape(-1, hunt.n_obj)
    ideal = seen.min(axis=0) if seen.shape[0] else np.zeros(hunt.n_obj)
    upper = seen.max(axis=0) if seen.shape[0] else np.ones(hunt.n_obj)
    ref = report_reference(hunt)
    if ref is not None:
        upper = np.maximum(upper, ref)
    upper = upper + 1e-9 * np.maximum(1.0, np.abs(upper))
    return {"front": front, "ideal": ideal, "upper": upper}


def scalar(hunt: "Hunt", obj: list[float], weights: list[float] | None, mo: dict | None) -> float:
    if hunt.n_obj == 1:
        return obj[0]
    if hunt.scalarization == "chebyshev":
        w = np.full(hunt.n_obj, 1.0 / hunt.n_obj) if weights is None else np.asarray(weights)
        scale = np.maximum(mo["upper"] - mo["ideal"], 1e-12)
        return chebyshev(np.asarray(obj), w, mo["ideal"], scale)
    return front_loss(np.asarray(obj), mo["front"], mo["upper"], mo["ideal"])


def tell(hunt: "Hunt", ask_id: int, outcomes: list[Outcome]) -> list[dict]:
    """Record the reviewed outcomes of an ask and update the optimizer.

    Args:
        ask_id: a pending ask's id.
        outcomes: one per candidate, in the ask's order.

    Returns:
        One JSON-able annotation per outcome (objectives, objective, constraints, feasible,
        alm_loss, alm_lambda, alm_rho, alm_outer, param_hash, status; ``delta`` against the
        parent rung for promotions; ``hypervolume`` of the rung's front with several
        objectives).

    Raises:
        KeyError: ``ask_id`` is not pending.
        ValueError: wrong number of outcomes, an unknown status, or an ok outcome lacking
            an objective or constraint metric. Nothing is changed when raised.
    """
    if ask_id not in hunt.pending_asks:
        raise KeyError(f"ask {ask_id} is not pending (already told or never asked)")
    p = hunt.pending_asks[ask_id]
    if len(outcomes) != len(p.values):
        raise ValueError(f"ask {ask_id} has {len(p.values)} candidates, got {len(outcomes)} outcomes")
    parsed = [hunt._parse(o) for o in outcomes]
    del hunt.pending_asks[ask_id]

    mo = hunt._mo_context(p.fidelity, [obj for st, obj, _, _ in parsed if st == "ok"]) if hunt.n_obj > 1 else None
    feasibility_phase = p.kind == "search" and in_feasibility_phase(hunt, p.fidelity)
    state = hunt.alm
    notes: list[dict] = []
    losses: list[float | None] = []
    for i, (status, obj, g, category) in enumerate(parsed):
        feasible = status == "ok" and all(v <= 0 for v in g)
        loss = None
        if status == "ok":
            w = p.weights[i] if p.weights is not None else None
            loss = alm_loss(hunt._scalar(obj, w, mo), g, state.lam, state.rho)
        losses.append(loss)
        record = {
            "ask_id": ask_id,
            "kind": p.kind,
            "fidelity": p.fidelity,
            "u": p.u[i],
            "values": p.values[i],
            "hash": p.hashes[i],
            "status": status,
            "failure_category": category,
            "objectives": obj,
            "constraints": g,
            "feasible": feasible,
            "alm_loss": loss,
            "parent": p.parents[i] if p.parents is not None else None,
            "source": p.sources[i] if p.sources is not None else None,
        }
        hunt.evals.append(record)
        note = {
            "status": status,
            "failure_category": category,
            "objectives": obj,
            "objective": None if obj is None else hunt._user_sign(obj)[0],
            "constraints": g,
            "feasible": feasible,
            "alm_loss": loss,
            "alm_lambda": list(state.lam),
            "alm_rho": state.rho,
            "alm_outer": state.outer,
            "param_hash": p.hashes[i],
            "kind": p.kind,
            "fidelity": p.fidelity,
        }
        if p.parents is not None:
            note["delta"] = hunt._delta(p.parents[i], obj, g)
        notes.append(note)

    if p.kind == "search":
        told = [sum(max(0.0, v) for v in g) if feasibility_phase and g is not None else loss
                for loss, (_, _, g, _) in zip(losses, parsed)]
        for i, (status, obj, g, _) in enumerate(parsed):
            if status == "ok":
                lo, hi = hunt.loss_range or (told[i], told[i])
                hunt.loss_range = (min(lo, told[i]), max(hi, told[i]))
                hunt.backend.tell(p.tokens[i], told[i], objectives=obj, violation=sum(max(0.0, v) for v in g))
        penalty = hunt._penalty()
        if penalty is not None:
            for i, (status, _, _, _) in enumerate(parsed):
                if status == "rejected":
                    hunt.backend.tell(p.tokens[i], penalty, violation=math.inf)
        gs = [g for status, _, g, _ in parsed if status == "ok"]
        if gs and not feasibility_phase:
            hunt.alm = alm_update(hunt.alm, np.mean(np.asarray(gs, dtype=float).reshape(len(gs), -1), axis=0))

    if hunt.n_obj > 1:
        hv = tell_hypervolume(hunt, p.fidelity)
        hunt.hv_history.append({"ask_id": ask_id, "fidelity": p.fidelity, "evaluations_told": len(hunt.evals), "hypervolume": hv})
        for note in notes:
            note["hypervolume"] = hv
    return notes


def user_sign(hunt: "Hunt", obj: list[float]) -> list[float]:
    return [v if o.goal == "minimize" else -v for v, o in zip(obj, hunt.spec.objectives)]


def delta(hunt: "Hunt", parent: int, obj: list[float] | None, g: list[float] | None) -> dict:
    e = hunt.evals[parent]
    out = {"from_fidelity": e["fidelity"], "parent_eval": parent, "objectives": None, "constraints": None}
    if obj is not None and e["objectives"] is not None:
        out["objectives"] = [hi - lo for hi, lo in zip(hunt._user_sign(obj), hunt._user_sign(e["objectives"]))]
    if g is not None and e["constraints"] is not None:
        out["constraints"] = [hi - lo for hi, lo in zip(g, e["constraints"])]
    return out
