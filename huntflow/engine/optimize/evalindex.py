"""What the ask, the tell and the summary need from a hunt's told evaluations, kept as they come.

``Hunt.evals`` only grows: an evaluation, once told, is appended and never changed. So the
per-rung views that dedup, exploit, the feasibility phase, the tell and the summary read — which
hashes a rung has told, which evaluations are feasible, the best with one objective and the front
with several, each objective's range over the ok ones, the least violating successful one, how
many failed or were rejected, the promoted and certified ones — are updated
from the new tail (:meth:`EvalIndex.update`) instead of recomputed from the whole list on every
ask and tell. At 32 000 told evaluations the full scans cost the summary 15 ms and each ask
14 ms (dedup); at 96 000, 91 ms and 54 ms (benchmarks/RESULTS.md, "Seventh issue-13 session").

The index is derived state: it is not in the checkpoint (:meth:`Hunt.dumps` leaves it out; a
loaded hunt builds it in one pass on first use), and each answer is the one the scan it replaces
gives (tests/engine/test_optimize_evalindex.py compares them along a hunt).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from huntflow.engine.optimize.pareto import dominates

ATTRIBUTE = "_evalindex"
"""Where a hunt keeps its index (in ``__dict__``; left out of checkpoints)."""


class EvalIndex:
    """Per-rung views of an append-only list of told evaluations (see the module docstring)."""

    def __init__(self) -> None:
        self.seen = 0
        self.told: dict[int, dict[str, int]] = {}
        """rung -> hash -> index of the evaluation standing for it (the first ok one, else the first)."""
        self.feasible: dict[int, list[int]] = {}
        """rung -> indices of its feasible evaluations, in order."""
        self.best_value: dict[int, float] = {}
        self.best: dict[int, list[int]] = {}
        """rung -> indices of the feasible evaluations at the rung's lowest first objective, in order."""
        self.front: dict[int, list[int]] = {}
        """rung -> with several objectives, the indices of its non-dominated feasible evaluations
        (equal ones all kept, as :func:`~huntflow.engine.optimize.pareto.nondominated_mask`), in order."""
        self.front_points: dict[int, list[list[float]]] = {}
        """rung -> the objectives of :attr:`front`'s evaluations, aligned with it."""
        self.ok_low: dict[int, list[float]] = {}
        self.ok_high: dict[int, list[float]] = {}
        """rung -> each objective's lowest and highest value over its ok evaluations."""
        self.least: dict[int, tuple[float, int]] = {}
        """rung -> (total violation, index) of the least violating ok evaluation (earliest on ties)."""
        self.feasible_search: set[int] = set()
        """Rungs with a feasible search evaluation."""
        self.by_kind: dict[str, list[int]] = {}
        """Indices of the promotion and certification evaluations."""
        self.failed = 0
        self.rejected = 0
        self.feasible_count = 0
        self._points: np.ndarray | None = None  # every evaluation's point, rows of a growing buffer
        self._labels: np.ndarray | None = None  # and whether it was feasible
        self._count = 0
        self._uniform = True  # False once a point is not a float vector of the first one's length

    def update(self, evals: list[dict[str, Any]]) -> "EvalIndex":
        """Take in the evaluations appended since the last update; returns self."""
        if len(evals) < self.seen:  # not the list it was built on: start again
            self.__init__()
        self._append_points(evals[self.seen:])
        for i in range(self.seen, len(evals)):
            e = evals[i]
            f, status = e["fidelity"], e["status"]
            told = self.told.setdefault(f, {})
            j = told.get(e["hash"])
            if j is None or (evals[j]["status"] != "ok" and status == "ok"):
                told[e["hash"]] = i
            if status == "failed":
                self.failed += 1
            elif status == "rejected":
                self.rejected += 1
            if e["kind"] in ("promotion", "certification"):
                self.by_kind.setdefault(e["kind"], []).append(i)
            obj = [float(v) for v in e["objectives"]] if status == "ok" else []
            if status == "ok":
                violation = sum(max(0.0, g) for g in e["constraints"])
                if f not in self.least or violation < self.least[f][0]:
                    self.least[f] = (violation, i)
                if f in self.ok_low:
                    self.ok_low[f] = [min(a, b) for a, b in zip(self.ok_low[f], obj)]
                    self.ok_high[f] = [max(a, b) for a, b in zip(self.ok_high[f], obj)]
                else:
                    self.ok_low[f], self.ok_high[f] = list(obj), list(obj)
            if e["feasible"]:  # ok, with finite objectives (telling.parse)
                self.feasible_count += 1
                self.feasible.setdefault(f, []).append(i)
                if e["kind"] == "search":
                    self.feasible_search.add(f)
                if len(obj) > 1:
                    self._enter_front(f, i, obj)
                v = obj[0]
                if f not in self.best_value or v < self.best_value[f]:
                    self.best_value[f], self.best[f] = v, [i]
                elif v == self.best_value[f]:
                    self.best[f].append(i)
        self.seen = len(evals)
        return self

    def points_and_labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Every told evaluation's point, ``(n, d)`` float64, and feasibility, ``(n,)`` bool, in
        order: what the prefilter trains on (views of the index's buffers: read, never change
        them). None when the points are not all float vectors of one length."""
        if not self._uniform:
            return None
        if self._points is None:
            return np.zeros((0, 0)), np.zeros(0, dtype=bool)
        return self._points[:self._count], self._labels[:self._count]

    def _append_points(self, new: list[dict[str, Any]]) -> None:
        if not new or not self._uniform:
            return
        try:
            block = np.array([e["u"] for e in new], dtype=float)
        except (ValueError, TypeError):
            block = None
        width = None if self._points is None else self._points.shape[1]
        if block is None or block.ndim != 2 or (width is not None and block.shape[1] != width):
            self._uniform = False
            return
        end = self._count + len(block)
        if self._points is None or end > len(self._points):  # grow by doubling: appends stay O(1) a row
            size = max(1024, 2 * end)
            points, labels = np.empty((size, block.shape[1])), np.zeros(size, dtype=bool)
            if self._points is not None:
                points[:self._count], labels[:self._count] = self._points[:self._count], self._labels[:self._count]
            self._points, self._labels = points, labels
        self._points[self._count:end] = block
        self._labels[self._count:end] = [bool(e["feasible"]) for e in new]
        self._count = end

    def _enter_front(self, f: int, i: int, p: list[float]) -> None:
        """Row ``i`` (objectives ``p``, feasible) into rung ``f``'s front: left out when a front
        row dominates it, else added and every front row it dominates dropped (dominance is
        transitive, so the front stays the non-dominated set of all the rung's feasible rows)."""
        rows, points = self.front.setdefault(f, []), self.front_points.setdefault(f, [])
        if any(dominates(q, p) for q in points):
            return
        keep = [k for k, q in enumerate(points) if not dominates(p, q)]
        self.front[f] = [rows[k] for k in keep] + [i]
        self.front_points[f] = [points[k] for k in keep] + [p]


def of(hunt: Any) -> EvalIndex:
    """``hunt``'s index, brought up to date with its evaluations (built on first use)."""
    index = hunt.__dict__.get(ATTRIBUTE)
    if index is None:
        index = hunt.__dict__[ATTRIBUTE] = EvalIndex()
    return index.update(hunt.evals)
