"""A native multi-objective backend: constrained NSGA-II on the unit cube.

The nevergrad backends see one number per candidate, so several objectives reach them
scalarized (hypervolume-improvement loss; see :mod:`~huntflow.engine.optimize.hunt`). That
collapses onto a few regions of the front at small budgets (benchmarks/RESULTS.md: on ZDT1-2d
it lost to random search). This backend is told the objective *vector* and the total
constraint violation of every candidate and keeps a population spread along the front, as in
NSGA-II (Deb, Pratap, Agarwal & Meyarivan, IEEE TEC 6(2), 2002):

* **Ranking** (:func:`~huntflow.engine.optimize.pareto.constrained_ranks`): constrained domination. With ``v`` the total
  violation ``sum(max(0, g_j))``, ``a`` dominates ``b`` when ``v_a = 0 < v_b``, or both are
  infeasible and ``v_a < v_b``, or both are feasible and ``a`` Pareto-dominates ``b`` (no
  objective worse, one better; objectives minimized). Ranks are the successive
  non-dominated fronts (rank 0 = dominated by no one).
* **Environmental selection** (:meth:`NSGA2Backend._select`), run at the first ask after new
  tells: the parent population plus everything told since is cut to ``size`` members, whole
  fronts first, then the last front by **crowding distance**
  (:func:`~huntflow.engine.optimize.pareto.crowding_distance`: per objective,
  the normalized gap between a member's two neighbours, summed; the extremes get infinity),
  larger first. This is the (mu + lambda) elitism of NSGA-II, done per told batch so that it
  works for any batch size and with several batches in flight.
* **Variation** (:meth:`NSGA2Backend.ask`): two binary tournaments on (rank, crowding), then
  simulated binary crossover (SBX, distribution index ``eta_c``, probability ``p_c``, each
  coordinate exchanged with probability 1/2, bounded form) and polynomial mutation
  (index ``eta_m``, per-coordinate probability ``1/D``, bounded form). A child equal to a
  parent gets one coordinate mutated, so no evaluation is spent twice on the same point.
* **Start**: before two candidates have been told, points come from a Latin hypercube of
  ``size`` points (then uniform ones).

Telling a candidate the backend did not ask (``suggest``: exploit / recover points) enters it
in the next selection like any other. Candidates told with ``violation = inf`` (review
rejections, prefilter rejections: no trustworthy objectives) are dropped: NSGA-II has nothing to
rank them by, and never re-asks a point.

With one objective this is a real-coded (mu + lambda) genetic algorithm with the same
constraint handling. All randomness comes from one ``numpy.random.Generator`` seeded by
``spec.seed``; the whole state pickles, so a checkpoint resumes exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from huntflow.engine.optimize.pareto import constrained_ranks, crowding_distance

ETA_C = 15.0  # SBX distribution index
ETA_M = 20.0  # polynomial mutation index
P_CROSSOVER = 0.9
PENDING_BATCHES_KEPT = 64  # asked-but-never-told tokens older than this many batches are forgotten


class NSGA2Backend:
    """Constrained NSGA-II; ``tell`` takes the objective vector and the violation."""

    def __init__(self, dim: int, seed: int, size: int, eta_c: float = ETA_C, eta_m: float = ETA_M,
                 p_crossover: float = P_CROSSOVER):
        if size < 2:
            raise ValueError(f"the NSGA-II population needs at least 2 members, got {size}")
        self.dim = dim
        self.size = int(size)
        self.eta_c, self.eta_m, self.p_c = float(eta_c), float(eta_m), float(p_crossover)
        self.rng = np.random.default_rng([int(seed), 0x45A2])
        m = self.size
        self.initial = (np.argsort(self.rng.random((m, dim)), axis=0) + self.rng.random((m, dim))) / m
        self.n_asked = 0  # tokens issued (asks and suggestions)
        self.initial_used = 0
        self.pending: dict[int, np.ndarray] = {}
        self.told: list[tuple[np.ndarray, np.ndarray, float]] = []  # since the last selection
        self.pop_u = np.empty((0, dim))
        self.pop_obj = np.empty((0, 0))
        self.pop_viol = np.empty(0)
        self.pop_rank = np.empty(0, dtype=int)
        self.pop_crowd = np.empty(0)
        self.generations = 0  # selections made

    # ------------------------------------------------------------ ask / tell
    def ask(self) -> tuple[Any, np.ndarray]:
        """Next point: ``(token, u)``."""
        if self.told:
            self._select()
        if len(self.pop_viol) < 2:
            if self.initial_used < len(self.initial):
                u = self.initial[self.initial_used]
                self.initial_used += 1
            else:
                u = self.rng.random(self.dim)
        else:
            u = self._offspring()
        return self._issue(u)

    def suggest(self, u: np.ndarray) -> tuple[Any, np.ndarray]:
        """An injected point: ``(token, u)``; told like any other."""
        return self._issue(np.clip(np.asarray(u, dtype=float), 0.0, 1.0))

    def tell(self, token: Any, loss: float, objectives: list[float] | None = None, violation: float | None = None) -> None:
        """Record a told candidate for the next selection.

        Args:
            token: from ``ask`` / ``suggest``.
            loss: the scalar loss (used as the single objective when ``objectives`` is None).
            objectives: minimized objective values.
            violation: total constraint violation (0 feasible; ``inf``: untrustworthy, dropped).
        """
        u = self.pending.pop(token, None)
        if u is None:
            return
        v = 0.0 if violation is None else float(violation)
        obj = np.asarray([loss] if objectives is None else objectives, dtype=float)
        if not math.isfinite(v) or not np.all(np.isfinite(obj)):
            return
        self.told.append((u, obj, max(0.0, v)))

    def add_budget(self, n: int) -> None:
        """NSGA-II has no budget to raise."""

    # ------------------------------------------------------------ internals
    def _issue(self, u: np.ndarray) -> tuple[int, np.ndarray]:
        token = self.n_asked
        self.n_asked += 1
        self.pending[token] = u
        horizon = token - PENDING_BATCHES_KEPT * self.size
        if horizon > 0 and len(self.pending) > PENDING_BATCHES_KEPT * self.size:
            self.pending = {t: p for t, p in self.pending.items() if t >= horizon}
        return token, u.copy()

    def _select(self) -> None:
        """(mu + lambda): parents plus the newly told, cut to ``size`` by rank then crowding."""
        us = [u for u, _, _ in self.told]
        objs = [o for _, o, _ in self.told]
        viols = [v for _, _, v in self.told]
        self.told = []
        m = len(objs[0])
        if len(self.pop_viol):
            us = list(self.pop_u) + us
            objs = list(self.pop_obj) + objs
            viols = list(self.pop_viol) + viols
        U = np.asarray(us, dtype=float)
        O = np.asarray(objs, dtype=float).reshape(len(objs), m)
        V = np.asarray(viols, dtype=float)
        ranks, crowd = _rank_and_crowd(O, V)
        keep = np.sort(np.lexsort((np.arange(len(V)), -crowd, ranks))[: self.size])
        self.pop_u, self.pop_obj, self.pop_viol = U[keep], O[keep], V[keep]
        # the tournaments compare rank and crowding within the kept population
        self.pop_rank, self.pop_crowd = _rank_and_crowd(self.pop_obj, self.pop_viol)
        self.generations += 1

    def _tournament(self) -> int:
        a, b = self.rng.integers(len(self.pop_viol), size=2)
        if self.pop_rank[a] != self.pop_rank[b]:
            return int(a if self.pop_rank[a] < self.pop_rank[b] else b)
        if self.pop_crowd[a] != self.pop_crowd[b]:
            return int(a if self.pop_crowd[a] > self.pop_crowd[b] else b)
        return int(a if self.rng.random() < 0.5 else b)

    def _offspring(self) -> np.ndarray:
        i, j = self._tournament(), self._tournament()
        p1, p2 = self.pop_u[i], self.pop_u[j]
        child = sbx(p1, p2, self.eta_c, self.p_c, self.rng)
        child = polynomial_mutation(child, self.eta_m, 1.0 / self.dim, self.rng)
        if np.array_equal(child, p1) or np.array_equal(child, p2):
            child = polynomial_mutation(child, self.eta_m, 1.0 / self.dim, self.rng, force=True)
        return child


def _rank_and_crowd(objs: np.ndarray, viol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constrained rank of each candidate, and its crowding distance within its front (an
    infeasible front, whose members share one violation value, gets minus the violation)."""
    ranks = constrained_ranks(objs, viol)
    crowd = np.zeros(len(viol))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding_distance(objs[idx]) if viol[idx[0]] <= 0 else -viol[idx]
    return ranks, crowd


def sbx(p1: np.ndarray, p2: np.ndarray, eta: float, p_crossover: float, rng: np.random.Generator) -> np.ndarray:
    """One child of bounded simulated binary crossover on ``[0, 1]^D`` (Deb & Agrawal 1995;
    the bounded spread factor of Deb's reference NSGA-II code)."""
    child = p1.copy()
    if rng.random() > p_crossover:
        return child
    swap = rng.random(len(p1)) < 0.5
    r = rng.random(len(p1))
    first = rng.random(len(p1)) < 0.5
    for d in range(len(p1)):
        y1, y2 = min(p1[d], p2[d]), max(p1[d], p2[d])
        if not swap[d] or y2 - y1 < 1e-14:
            continue
        # the child below both parents (spread bounded by 0) or above them (bounded by 1)
        dist, sign = (y1, -1.0) if first[d] else (1.0 - y2, 1.0)
        beta = 1.0 + 2.0 * dist / (y2 - y1)
        alpha = 2.0 - beta ** -(eta + 1.0)
        bq = (r[d] * alpha) ** (1.0 / (eta + 1.0)) if r[d] <= 1.0 / alpha else (1.0 / (2.0 - r[d] * alpha)) ** (1.0 / (eta + 1.0))
        child[d] = min(max(0.5 * ((y1 + y2) + sign * bq * (y2 - y1)), 0.0), 1.0)
    return child


def polynomial_mutation(x: np.ndarray, eta: float, prob: float, rng: np.random.Generator, force: bool = False) -> np.ndarray:
    """Bounded polynomial mutation on ``[0, 1]^D`` (Deb & Goyal 1996); with ``force`` exactly one
    randomly chosen coordinate is mutated."""
    y = x.copy()
    if force:
        mask = np.zeros(len(x), dtype=bool)
        mask[rng.integers(len(x))] = True
    else:
        mask = rng.random(len(x)) < prob
    r = rng.random(len(x))
    for d in np.flatnonzero(mask):
        d1, d2 = y[d], 1.0 - y[d]
        if r[d] < 0.5:
            xy = 1.0 - d1
            val = 2.0 * r[d] + (1.0 - 2.0 * r[d]) * xy ** (eta + 1.0)
            dq = val ** (1.0 / (eta + 1.0)) - 1.0
        else:
            xy = 1.0 - d2
            val = 2.0 * (1.0 - r[d]) + 2.0 * (r[d] - 0.5) * xy ** (eta + 1.0)
            dq = 1.0 - val ** (1.0 / (eta + 1.0))
        y[d] = min(max(y[d] + dq, 0.0), 1.0)
    return y
