"""Verification batches: which candidates review re-evaluates, under what, and what survives.

Pure (no database, no Prefect): :mod:`huntflow.tasks.review` plans a verification generation per
perturbation from :func:`plan`, the operators evaluate it like any generation, and
:func:`compare` turns the claimed and the perturbed results into findings.

* Which candidates: the best ``review.spot_check_top`` succeeded, not already flagged
  candidates of a generation — search, promotion or certification alike — ranked feasible
  first, then by the first objective, then by candidate index (a function of the generation's
  own rows, so a crash never changes the choice). If a round rejects the best, the next ones
  are verified in another round (at most :data:`MAX_ROUNDS`), so the best candidate a
  generation keeps — the only one that can become the campaign's best at its rung — has
  survived its perturbations. The batch is padded to ``spot_check_top`` rows by repeating its
  last row, so every verification batch of a campaign has one compiled shape.
* Under what: the model's declared perturbations (:class:`~huntflow.engine.models.base.Perturbation`)
  marked ``default``, or those named in ``review.perturbations``; a model that declares none
  gets ``repeat``. A ``reseed`` perturbation draws every row from another noise key (seed
  derived from the generation's seed and the perturbation); the others reuse each candidate's
  own key (same seed, same candidate index), so only the declared change differs.
* What survives: every metric the spec uses (objectives and constraints) must agree within its
  tolerance (``review.tolerances`` > the model's ``tolerances`` > ``rtol = review.spot_check_rtol``)
  and a feasible candidate must stay feasible; the perturbed run must also succeed. An objective
  that moves too far, a feasible candidate that turns infeasible or a perturbed run that fails
  is ``high`` (rejected); a constraint metric that moves too far without changing the verdict is
  ``medium`` (reported only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from huntflow.engine.models.base import Perturbation, Tolerance, perturbations_of, tolerances_of

VERIFIED_KINDS = ("search", "promotion", "certification")


@dataclass(frozen=True)
class Check:
    """One verification batch to run: a perturbation of some of a generation's candidates."""

    perturbation: Perturbation
    position: int  # the perturbation's place in the campaign's list (ask id and seed use it)
    seed: int
    fixed: dict[str, Any]
    settings: dict[str, Any]
    sources: list[dict[str, Any]]  # the evaluation rows checked, padded to the batch shape
    key_indices: list[int]  # the candidate index folded into each row's key


@dataclass(frozen=True)
class Verdict:
    """What :func:`compare` found about one candidate (``severity`` None: nothing)."""

    severity: str | None
    kind: str
    message: str
    details: dict[str, Any]


def model_object(ref: Any) -> Any:
    """The model object behind a spec's ``model`` block (a JAX model or an external description)."""
    resolved = ref.resolve()
    return resolved.external if resolved.is_external else resolved.jax


def available(spec: Any, fidelity: int) -> tuple[Perturbation, ...]:
    """Every perturbation the spec's model offers at rung ``fidelity``."""
    model = model_object(spec.model)
    return perturbations_of(model, spec.param_names, dict(spec.model.fixed),
                            dict(spec.fidelities[fidelity].settings))


def chosen(spec: Any, fidelity: int) -> list[Perturbation]:
    """The perturbations review runs at rung ``fidelity`` (spec's names, else the model's defaults)."""
    offered = available(spec, fidelity)
    names = spec.review.perturbations
    if names is None:
        return [p for p in offered if p.default]
    by_name = {p.name: p for p in offered}
    return [by_name[n] for n in names if n in by_name]


def tolerance(spec: Any, metric: str) -> Tolerance:
    """The tolerance of ``metric``: the spec's override, else the model's, else the spec default."""
    override = spec.review.tolerances.get(metric)
    if override is not None:
        return Tolerance(rtol=override.rtol, atol=override.atol)
    model = model_object(spec.model)
    declared = tolerances_of(model, spec.param_names, dict(spec.model.fixed)).get(metric)
    return declared if declared is not None else Tolerance(rtol=spec.review.spot_check_rtol, atol=0.0)


def verification_seed(seed: int, position: int) -> int:
    """Another noise key for a ``reseed`` perturbation: a function of the generation's seed."""
    return (int(seed) * 2_654_435_761 + 97 * (int(position) + 1) + 13) % (2**31 - 1)


MAX_ROUNDS = 4
"""Verification rounds per generation: while the best candidate not yet rejected is unverified
(the previous round rejected those above it), the next ``spot_check_top`` are verified."""


def _rank(spec: Any, e: Mapping[str, Any]) -> tuple:
    try:
        metrics = e["metrics"] or {}
        feasible = all(g <= 0 for g in spec.constraint_values(metrics))
        return (0 if feasible else 1, spec.objective_values(metrics)[0], e["candidate_index"])
    except (KeyError, TypeError, ValueError):
        return (2, math.inf, e["candidate_index"])


def ranked(spec: Any, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` best first: feasible before infeasible, then the first objective, then index."""
    return sorted(rows, key=lambda e: _rank(spec, e))


def next_round(spec: Any, kind: str, rows: list[Mapping[str, Any]], verified: set, rejected: set
               ) -> list[Mapping[str, Any]]:
    """The rows to verify next (empty: done). ``rows``: the succeeded, unflagged ones.

    Done once the best row not rejected has been verified; each round takes the next
    ``spot_check_top`` rows (of any kind of generation: search, promotion, certification).
    """
    if kind not in VERIFIED_KINDS or spec.review.spot_check_top <= 0:
        return []
    alive = [e for e in ranked(spec, rows) if e["evaluation_id"] not in rejected]
    if not alive or alive[0]["evaluation_id"] in verified:
        return []
    return [e for e in alive if e["evaluation_id"] not in verified][: spec.review.spot_check_top]


def plan(spec: Any, generation: Mapping[str, Any], picked: list[Mapping[str, Any]], round_: int = 0) -> list[Check]:
    """The verification batches (one per perturbation) of ``picked`` rows of a generation."""
    if not picked:
        return []
    shape = max(len(picked), spec.review.spot_check_top)  # one compiled shape for every batch
    sources = [picked[min(i, len(picked) - 1)] for i in range(shape)]
    fidelity = int(generation["fidelity"])
    settings = dict(spec.fidelities[fidelity].settings)
    out = []
    for i, p in enumerate(chosen(spec, fidelity)):
        position = round_ * 8 + i
        seed = verification_seed(generation["seed"], position) if p.reseed else int(generation["seed"])
        out.append(Check(
            perturbation=p, position=position, seed=seed,
            fixed={**dict(spec.model.fixed), **dict(p.fixed)}, settings={**settings, **dict(p.fidelity)},
            sources=sources, key_indices=[int(e["candidate_index"]) for e in sources],
        ))
    return out


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def compare(spec: Any, perturbation: str, claimed: Mapping[str, Any], ok: bool,
            again: Mapping[str, Any] | None) -> list[Verdict]:
    """Findings about one candidate: its claimed metrics against a perturbed run of it."""
    if not ok or again is None:
        return [Verdict("high", "verification", f"under {perturbation} the evaluation failed "
                        f"(the claimed result does not survive the perturbation)",
                        {"perturbation": perturbation})]
    out: list[Verdict] = []
    objectives = {o.metric for o in spec.objectives}
    for metric in dict.fromkeys([o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]):
        a, b = _num(claimed.get(metric)), _num(again.get(metric))
        tol = tolerance(spec, metric)
        if a is not None and b is not None and tol.close(a, b):
            continue
        out.append(Verdict(
            "high" if metric in objectives else "medium", "verification",
            f"under {perturbation}, {metric} = {b!r} against the claimed {a!r} "
            f"(tolerance rtol {tol.rtol:g}, atol {tol.atol:g})",
            {"perturbation": perturbation, "metric": metric, "claimed": a, "again": b,
             "rtol": tol.rtol, "atol": tol.atol},
        ))
    if spec.constraints:
        def feasible(m):
            try:
                return all(g <= 0 for g in spec.constraint_values(dict(m)))
            except (KeyError, TypeError, ValueError):
                return False
        if feasible(claimed) and not feasible(again):
            values = {c.metric: (_num(claimed.get(c.metric)), _num(again.get(c.metric))) for c in spec.constraints}
            out.append(Verdict("high", "verification",
                               f"feasible as claimed but infeasible under {perturbation}: "
                               + ", ".join(f"{m} {a!r} -> {b!r}" for m, (a, b) in values.items()),
                               {"perturbation": perturbation, "feasibility": True,
                                "values": {m: list(v) for m, v in values.items()}}))
    return out
