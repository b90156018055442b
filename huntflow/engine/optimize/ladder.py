"""The fidelity ladder: budget plan, promotion size, candidate identity and selection.

A ladder of ``R`` rungs (cheapest first) is walked as a list of :class:`Stage` s:

* ``R == 1``: one search stage at rung 0 using the whole ``budget.evaluations``. There is no
  certification step: every evaluation already runs at the top fidelity, so the best one is
  certified by construction.
* ``R >= 2``: rungs ``0 .. R-2`` are *search* rungs, each a search stage followed by a
  promotion stage that sends the top ``K_r`` distinct candidates of rung ``r`` to rung ``r+1``.
  The promotion into the top rung ``R-1`` is the *certification*: the same params are
  re-evaluated, never re-optimized. A ``budget`` given on the top rung is ignored.

Promotion size: ``K_r = promote_top_k`` of rung ``r`` when given, else
``max(3, min(20, ceil(0.1 * b_r)))`` where ``b_r`` (the "stage budget") is the number of search
evaluations at rung ``r``.

Budget split: ``budget.evaluations`` caps every evaluation the hunt asks (search, promotion and
certification). Search rungs without a ``budget`` share what the given budgets and the
promotions leave, equally (rounding remainders go to the lowest such rung); ``K`` depends on the
share, so the split is iterated to a fixed point. When every search rung gives its budget, any
remainder is left unused.

Identity: :func:`param_hash` is the sha256 of the params (numbers rounded to 10 significant
digits, strings and booleans as they are), in spec order, so re-evaluations of the same point
share a hash; promotion and the search's duplicate check deduplicate on it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from huntflow.engine.optimize.pareto import pareto_ranks


@dataclass(frozen=True)
class Stage:
    """One step of the ladder plan.

    kind:  ``"search"`` (ask the optimizer at ``rung``) or ``"promote"`` (re-evaluate the top
           ``count`` distinct candidates of ``rung`` at ``rung + 1``).
    rung:  the rung searched, or the rung promoted *from*.
    count: evaluations of a search stage; K of a promotion.
    """

    kind: str
    rung: int
    count: int


def promotion_k(stage_budget: int, override: int | None = None) -> int:
    """How many distinct candidates a rung promotes.

    Args:
        stage_budget: search evaluations spent at the rung.
        override: the rung's ``promote_top_k`` (wins when given).

    Returns:
        ``override`` or ``max(3, min(20, ceil(0.1 * stage_budget)))``.
    """
    if override is not None:
        return int(override)
    return max(3, min(20, math.ceil(0.1 * stage_budget)))


def plan_ladder(total: int, rung_budgets: list[int | None], rung_top_k: list[int | None]) -> list[Stage]:
    """The stage list for a ladder.

    Args:
        total: ``budget.evaluations``.
        rung_budgets: each rung's ``budget`` (None when not given), cheapest first.
        rung_top_k: each rung's ``promote_top_k`` (None when not given).

    Returns:
        The stages, in the order the hunt walks them.

    Raises:
        ValueError: the budget cannot pay for one search evaluation per search rung plus the
            promotions.
    """
    n_rungs = len(rung_budgets)
    if n_rungs == 1:
        return [Stage("search", 0, int(total))]
    search_rungs = list(range(n_rungs - 1))
    unknown = [r for r in search_rungs if rung_budgets[r] is None]
    given = sum(int(rung_budgets[r]) for r in search_rungs if rung_budgets[r] is not None)
    b = {r: (int(rung_budgets[r]) if rung_budgets[r] is not None else max(1, total // n_rungs)) for r in search_rungs}
    for _ in range(50):
        ks = {r: promotion_k(b[r], rung_top_k[r]) for r in search_rungs}
        if not unknown:
            break
        free = total - given - sum(ks.values())
        share, rem = divmod(max(free, 0), len(unknown))
        new_b = dict(b)
        for i, r in enumerate(unknown):
            new_b[r] = max(1, share + (rem if i == 0 else 0))
        if new_b == b:
            break
        b = new_b
    ks = {r: promotion_k(b[r], rung_top_k[r]) for r in search_rungs}
    needed = sum(b.values()) + sum(ks.values())
    if needed > total:
        raise ValueError(
            f"budget.evaluations ({total}) is too small for the fidelity ladder: its search and "
            f"promotion stages need {needed}"
        )
    stages: list[Stage] = []
    for r in search_rungs:
        stages.append(Stage("search", r, b[r]))
        stages.append(Stage("promote", r, ks[r]))
    return stages


def param_hash(values: list[float] | np.ndarray, names: tuple[str, ...] | list[str]) -> str:
    """Stable identity of a parameter point.

    Args:
        values: parameter values in ``names`` order (numbers, or a categorical's string or
            boolean choice).
        names: parameter names (spec order).

    Returns:
        16 hex digits of the sha256 of ``[[name, value], ...]`` with numbers rounded to 10
        significant digits (as floats: ``3`` and ``3.0`` are the same point).
    """
    rounded = [[str(n), _canon(v)] for n, v in zip(names, values)]
    return hashlib.sha256(json.dumps(rounded).encode()).hexdigest()[:16]


def _canon(v) -> float | str | bool:
    """A value as hashed: numbers (ints too) rounded to 10 significant digits as floats, strings
    and booleans (categorical choices, fixed values) as they are."""
    if isinstance(v, (str, bool)):
        return v
    return float(f"{float(v):.10g}")


def rank_for_promotion(objectives: np.ndarray, violations: np.ndarray) -> np.ndarray:
    """Order in which candidates are promoted: feasible first, best first.

    Feasible candidates (violation 0) come first, ordered by Pareto rank then by the first
    objective (with one objective: by the objective); infeasible ones follow by increasing
    total violation, so a rung without feasible points still promotes its least-violating.

    Args:
        objectives: (n, d) minimized objectives.
        violations: (n,) total constraint violation ``sum max(0, g)`` (0 = feasible).

    Returns:
        (n,) indices, best first (ties broken by index, so the order is deterministic).
    """
    obj = np.asarray(objectives, dtype=float).reshape(len(violations), -1)
    viol = np.asarray(violations, dtype=float)
    feasible = viol <= 0
    ranks = np.zeros(len(viol), dtype=int)
    if feasible.any():
        ranks[feasible] = pareto_ranks(obj[feasible])
    idx = np.arange(len(viol))
    keys = (idx, obj[:, 0] if obj.shape[1] else idx, np.where(feasible, ranks, 0), np.where(feasible, 0.0, viol), ~feasible)
    return np.lexsort(keys)
