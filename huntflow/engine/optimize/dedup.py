"""No budget twice on one point: which candidates a hunt already has, and what to do instead.

Integer and categorical parameters make the decoded point a step function of the optimizer's
unit-cube point, so an optimizer asks the same decoded candidate again (CMA-ES whose step is
below one bin, NSGA-II children that round back to a parent, a Halton sequence that revisits a
bin, the incumbent re-proposed by exploit). A candidate is identified by its
:func:`~huntflow.engine.optimize.ladder.param_hash` at its rung; the search never evaluates a
hash that was already told or is in flight at that rung, nor one twice in a batch:

* a search candidate whose hash was already **told** is not evaluated: the optimizer is told
  the stored result at once (the same loss a fresh evaluation of a deterministic model would
  give: the objective re-scalarized and the ALM loss under today's multipliers; a review
  rejection gets the infeasible penalty; a failure is told nothing, as failures never are)
  and asked again. Telling rather than dropping keeps the optimizer's picture true: a CMA-ES
  whose samples all round to the incumbent sees the plateau and keeps moving its continuous
  coordinates instead of waiting for news that never comes;
* one **in flight** (asked by an earlier batch, not told yet) or already in this batch has no
  result to tell: the optimizer's candidate is dropped (never told, like a failure) and it is
  asked again;
* after :data:`DUPLICATE_DRAWS_PER_CANDIDATE` re-asks per candidate the optimizer is taken to
  have converged onto known points, and the batch is filled with uniformly drawn points that
  are new (``source: "fill"``, handed to the optimizer with ``suggest`` so it learns from them;
  RNG seeded by ``(spec.seed, ask_id)``). If even :data:`FILL_DRAWS_PER_CANDIDATE` draws per
  candidate find nothing new, the rung's space is taken as exhausted: the batch is what was
  found, and the search stage ends there (its remaining budget is not spent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from huntflow.engine.space import SearchSpace

DUPLICATE_DRAWS_PER_CANDIDATE = 20
FILL_DRAWS_PER_CANDIDATE = 50


def known(evals: list[dict], pending: Iterable[Any], fidelity: int,
          told: dict[str, int] | None = None) -> tuple[dict[str, int], set[str]]:
    """The points a rung already has.

    Args:
        evals: the hunt's told evaluations (``hash``, ``fidelity``, ``status``).
        pending: the hunt's pending asks (``fidelity``, ``hashes``).
        fidelity: the rung.
        told: the first half of the answer, kept as evaluations were told
            (:mod:`~huntflow.engine.optimize.evalindex`; read, never changed); None scans ``evals``.

    Returns:
        ``(told, in_flight)``: hash -> index of the evaluation whose result stands for it (the
        first successful one, else the first), and the hashes asked but not yet told.
    """
    in_flight = {h for p in pending if p.fidelity == fidelity for h in p.hashes}
    if told is not None:
        return told, in_flight
    told = {}
    for i, e in enumerate(evals):
        if e["fidelity"] != fidelity:
            continue
        j = told.get(e["hash"])
        if j is None or (evals[j]["status"] != "ok" and e["status"] == "ok"):
            told[e["hash"]] = i
    return told, in_flight


class Taken:
    """The hashes an injected point may not have: the rung's told and in-flight ones, this
    batch's, and those added as points are taken; a view over the collections it is given (a
    union of them copied the rung's whole history on every ask)."""

    def __init__(self, *collections: Any) -> None:
        self._collections = collections
        self._added: set[str] = set()

    def __contains__(self, h: object) -> bool:
        return h in self._added or any(h in c for c in self._collections)

    def add(self, h: str) -> None:
        self._added.add(h)


def fill(space: SearchSpace, rng: np.random.Generator, n: int, is_new: Callable[[list, str], bool],
         hash_of: Callable[[list], str]) -> list[tuple[np.ndarray, list, str]]:
    """Up to ``n`` new uniformly drawn points, at most ``FILL_DRAWS_PER_CANDIDATE * n`` draws.

    Returns:
        ``[(u, values, hash)]``, canonical ``u``; fewer than ``n`` when the space has no more
        new points to find.
    """
    out: list[tuple[np.ndarray, list, str]] = []
    hashes: set[str] = set()
    for _ in range(FILL_DRAWS_PER_CANDIDATE * max(n, 1)):
        if len(out) >= n:
            break
        u = space.canonical(rng.random(space.dim))
        values = space.decode(u)
        h = hash_of(values)
        if h in hashes or not is_new(values, h):
            continue
        hashes.add(h)
        out.append((u, values, h))
    return out
