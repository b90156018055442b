"""Verification batches: which candidates review re-evaluates, under what, and what survives.

Pure (no database, no Prefect): :mod:`huntflow.tasks.review` plans a verification generation per
perturbation from :func:`plan`, the operators evaluate it like any generation, and
:func:`compare` turns the claimed and the perturbed results into findings.

* Which candidates: what a claim rests on. :func:`contenders` — the feasible rows of a
  generation (search, promotion or certification alike) that would beat the rung's incumbent
  (the best feasible objective of earlier asks), best first, then by candidate index (a function
  of stored rows, so a crash never changes the choice); :func:`next_round` takes the best
  ``spot_check_top`` of them, and the next ones while a round rejects the best left (at most
  :func:`max_rounds`), so the rung's best has always survived. A promotion whose rung is its
  parents' rung refined by declared perturbations (:func:`ladder`) is their check for those;
  :func:`plan_parents` checks a promotion's candidates that were not verified yet, per
  generation, under the others (:func:`explicit`). Every batch is padded to
  ``spot_check_top`` rows by repeating its last row, so a campaign's verification batches have one
  compiled shape.
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
    """The perturbations review runs at rung ``fidelity`` (spec's names, else the model's defaults).

    A perturbation that repeats an earlier one (same name, or same change: settings, options,
    reseed) is left out: it would re-run the same rows for nothing."""
    offered = available(spec, fidelity)
    names = spec.review.perturbations
    if names is None:
        picked = [p for p in offered if p.default]
    else:
        by_name = {p.name: p for p in offered}
        picked = [by_name[n] for n in dict.fromkeys(names) if n in by_name]
    out, seen = [], set()
    for p in picked:
        effect = (_frozen(p.fidelity), _frozen(p.fixed), p.reseed)
        if effect not in seen:
            seen.add(effect)
            out.append(p)
    return out


def _frozen(d: Mapping[str, Any]) -> tuple:
    return tuple(sorted((str(k), repr(v)) for k, v in dict(d).items()))


def _same_settings(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k, x in a.items():
        y = b[k]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if not (math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=0.0) if numeric else x == y):
            return False
    return True


LADDER_DEPTH = 8
"""At most this many declared refinements are composed to reach the next rung (:func:`ladder`)."""


def ladder(spec: Any, from_fidelity: int, to_fidelity: int) -> list[Perturbation]:
    """The perturbations of rung ``from_fidelity`` that a promotion to ``to_fidelity`` performs
    itself, so that comparing the promotion's result with the parent's claim *is* that check.

    The rung change must be a composition of the model's declared refinements (non-reseeding
    perturbations that change fidelity settings only: ``half_dt``, ``fine_grid``, each applied
    at the settings the previous one produced, at most :data:`LADDER_DEPTH` of them) that lands
    exactly on the next rung's settings; a chosen perturbation is covered when it is one of
    them. None is covered when a chosen perturbation reseeds: the promotion's rows are drawn
    from other keys, so the comparison would mix noise into the step-size check, and the model's
    noise is checked explicitly anyway. ``repeat`` is never covered (it changes nothing)."""
    picked = chosen(spec, from_fidelity)
    if to_fidelity <= from_fidelity or any(p.reseed for p in picked):
        return []
    model = model_object(spec.model)
    fixed = dict(spec.model.fixed)
    target = dict(spec.fidelities[to_fidelity].settings)

    def refinements(settings: dict[str, Any]) -> list[Perturbation]:
        offered = perturbations_of(model, spec.param_names, fixed, settings)
        return [p for p in offered if p.fidelity and not p.fixed and not p.reseed]

    used: set[str] = set()
    frontier = [(dict(spec.fidelities[from_fidelity].settings), frozenset())]
    for _ in range(LADDER_DEPTH):
        nxt: dict[tuple, tuple[dict[str, Any], frozenset]] = {}
        for settings, names in frontier:
            for p in refinements(settings):
                moved = {**settings, **dict(p.fidelity)}
                if _same_settings(moved, settings):
                    continue
                if _same_settings(moved, target):
                    used |= names | {p.name}
                key = _frozen(moved)
                nxt[key] = (moved, nxt.get(key, (moved, frozenset()))[1] | names | {p.name})
        frontier = list(nxt.values())
    return [p for p in picked if p.name in used and p.fidelity and not p.fixed]


def ladder_tolerance(spec: Any, metric: str, from_fidelity: int, to_fidelity: int) -> Tolerance:
    """The tolerance of ``metric`` between a parent's claim and its promotion's result: the
    spec's override, else the model's ``ladder_tolerances(param_names, fixed, from, to)`` (a
    model may widen it for a rung change that composes several refinements), else
    :func:`tolerance` (what one declared perturbation may move it)."""
    if spec.review.tolerances.get(metric) is None:
        declared = getattr(model_object(spec.model), "ladder_tolerances", None)
        if callable(declared):
            t = dict(declared(spec.param_names, dict(spec.model.fixed), dict(spec.fidelities[from_fidelity].settings),
                              dict(spec.fidelities[to_fidelity].settings))).get(metric)
            if t is not None:
                return t
    return tolerance(spec, metric)


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


PARENT_BASE = 32
"""A generation's ask id numbers 64 positions of verification batches: ``0 .. PARENT_BASE - 1``
its own rounds (``round * perturbations + i``), ``PARENT_BASE ..`` (a promotion's) the checks of
the candidates it promotes."""
PARENT_SLOTS = 64 - PARENT_BASE


def max_rounds(spec: Any, fidelity: int) -> int:
    """Verification rounds a generation may take: while the best contender not yet rejected is
    unverified (the previous round rejected those above it), the next ``spot_check_top`` are
    verified. A contender still unverified after the last round is rejected
    (``verification_exhausted``): it cannot be believed unverified."""
    return PARENT_BASE // max(1, len(chosen(spec, fidelity)))


def rank_key(spec: Any, e: Mapping[str, Any]) -> tuple:
    """``(0 feasible | 1 infeasible | 2 unusable, first objective minimized, candidate index)``."""
    try:
        metrics = e["metrics"] or {}
        feasible = all(g <= 0 for g in spec.constraint_values(metrics))
        return (0 if feasible else 1, spec.objective_values(metrics)[0], e["candidate_index"])
    except (KeyError, TypeError, ValueError):
        return (2, math.inf, e["candidate_index"])


def ranked(spec: Any, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` best first: feasible before infeasible, then the first objective, then index."""
    return sorted(rows, key=lambda e: rank_key(spec, e))


def contenders(spec: Any, rows: list[Mapping[str, Any]], incumbent: float | None) -> list[Mapping[str, Any]]:
    """The rows that could become the campaign's best at their rung, best first.

    ``incumbent``: the best feasible objective (minimized, as ``spec.objective_values``) told at
    this rung by earlier asks, None when there is none. With one objective a row contends when it
    is feasible and strictly better (a tie keeps the earlier, already verified best); with
    several objectives every feasible row does (any may join the front).
    """
    out = []
    for e in ranked(spec, rows):
        key = rank_key(spec, e)
        if key[0] != 0:
            break
        if len(spec.objectives) == 1 and incumbent is not None and not key[1] < incumbent:
            break
        out.append(e)
    return out


def next_round(spec: Any, kind: str, rows: list[Mapping[str, Any]], verified: set, rejected: set,
               incumbent: float | None = None) -> list[Mapping[str, Any]]:
    """The rows to verify next (empty: done). ``rows``: the succeeded, unflagged ones.

    Done once the best contender not rejected has been verified (or none is left); each round
    takes the next ``spot_check_top`` contenders (of any kind of generation: search, promotion,
    certification). Verification is spent where a claim is made: a row that cannot become the
    best is never re-run here (the promotion checks its parents: :func:`plan_parents`).
    """
    if kind not in VERIFIED_KINDS or spec.review.spot_check_top <= 0:
        return []
    alive = [e for e in contenders(spec, rows, incumbent) if e["evaluation_id"] not in rejected]
    if not alive or alive[0]["evaluation_id"] in verified:
        return []
    return [e for e in alive if e["evaluation_id"] not in verified][: spec.review.spot_check_top]


def _checks(spec: Any, generation: Mapping[str, Any], sources: list[Mapping[str, Any]], position0: int,
            stride: int, only: set[str] | None = None) -> list[Check]:
    fidelity = int(generation["fidelity"])
    settings = dict(spec.fidelities[fidelity].settings)
    out = []
    for i, p in enumerate(chosen(spec, fidelity)):
        if only is not None and p.name not in only:
            continue  # keeps the others' positions (and so their seeds)
        position = position0 + i * stride
        seed = verification_seed(generation["seed"], position) if p.reseed else int(generation["seed"])
        out.append(Check(
            perturbation=p, position=position, seed=seed,
            fixed={**dict(spec.model.fixed), **dict(p.fixed)}, settings={**settings, **dict(p.fidelity)},
            sources=list(sources), key_indices=[int(e["candidate_index"]) for e in sources],
        ))
    return out


def explicit(spec: Any, from_fidelity: int, to_fidelity: int) -> list[str]:
    """The perturbations a promotion's parents still need as verification batches: those of
    :func:`chosen` the promotion does not perform itself (:func:`ladder`)."""
    covered = {p.name for p in ladder(spec, from_fidelity, to_fidelity)}
    return [p.name for p in chosen(spec, from_fidelity) if p.name not in covered]


def _padded(picked: list[Mapping[str, Any]], shape: int) -> list[Mapping[str, Any]]:
    return [picked[min(i, len(picked) - 1)] for i in range(max(len(picked), shape))]


def plan(spec: Any, generation: Mapping[str, Any], picked: list[Mapping[str, Any]], round_: int = 0) -> list[Check]:
    """The verification batches (one per perturbation) of ``picked`` rows of a generation."""
    if not picked:
        return []
    n_perts = max(1, len(chosen(spec, int(generation["fidelity"]))))
    return _checks(spec, generation, _padded(picked, spec.review.spot_check_top), round_ * n_perts, 1)


def plan_parents(spec: Any, parents: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]],
                 to_fidelity: int | None = None) -> list[tuple[Mapping[str, Any], Check]]:
    """The checks of a promotion's unverified parents: ``parents`` is ``[(parent generation,
    its rows to verify)]`` in ask order; returns ``[(parent generation, check)]``. With
    ``to_fidelity`` (the promotion's rung), the perturbations the promotion performs itself
    (:func:`ladder`) are left out: its own result is compared with the claim instead.

    Each batch holds at most ``spot_check_top`` rows of one generation (each row keeps its own
    key: same seed, same candidate index), padded to that fixed shape; positions are
    ``PARENT_BASE + j``. Should the checks need more than :data:`PARENT_SLOTS` positions, the
    batches grow (the smallest shape that fits) instead.
    """
    if not parents:
        return []
    fidelity = int(parents[0][0]["fidelity"])
    n_perts = len(chosen(spec, fidelity))
    only = None if to_fidelity is None else set(explicit(spec, fidelity, to_fidelity))
    if not n_perts or only == set():
        return []
    shape = max(1, spec.review.spot_check_top)
    while sum(math.ceil(len(rows) / shape) for _, rows in parents) * n_perts > PARENT_SLOTS:
        shape += 1
    out, j = [], 0
    for gen, rows in parents:
        for k in range(0, len(rows), shape):
            chunk = _padded(list(rows[k:k + shape]), shape)
            out += [(gen, c) for c in _checks(spec, gen, chunk, PARENT_BASE + j, 1, only)]
            j += n_perts
    return out


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def compare(spec: Any, perturbation: str, claimed: Mapping[str, Any], ok: bool,
            again: Mapping[str, Any] | None, tolerances: Mapping[str, Tolerance] | None = None) -> list[Verdict]:
    """Findings about one candidate: its claimed metrics against a perturbed run of it
    (``tolerances``: per metric, instead of :func:`tolerance`)."""
    if not ok or again is None:
        return [Verdict("high", "verification", f"under {perturbation} the evaluation failed "
                        f"(the claimed result does not survive the perturbation)",
                        {"perturbation": perturbation})]
    out: list[Verdict] = []
    objectives = {o.metric for o in spec.objectives}
    for metric in dict.fromkeys([o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]):
        a, b = _num(claimed.get(metric)), _num(again.get(metric))
        tol = (tolerances or {}).get(metric) or tolerance(spec, metric)
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
