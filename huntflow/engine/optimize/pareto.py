"""Pareto dominance, hypervolume and Chebyshev scalarization (all objectives minimized).

Dominance: ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in one.

Hypervolume (the Lebesgue measure of the region dominated by a front and bounded by a
reference point ``r``; only points strictly better than ``r`` in every objective count):

* 2 objectives: exact sweep. Sort the non-dominated points by the first objective; each adds
  the rectangle ``(r1 - f1_i) * (f2_{i-1} - f2_i)`` (``f2_{-1} = r2``). ``O(n log n)``.
* ``d > 2`` objectives: exact "hypervolume by slicing objectives" (HSO): sort by the last
  objective, and sum, over the slabs between consecutive last-objective values, the slab's
  thickness times the ``(d-1)``-dimensional hypervolume of the points below it. Exact, and fast
  enough for the fronts a campaign produces (hundreds of points in 3-D).

Scalarization for a single-objective optimizer: the weighted Chebyshev (ParEGO) function
``max_i w_i * (f_i - z_i) / s_i + 0.05 * sum_i w_i * (f_i - z_i) / s_i`` with ideal ``z`` and
scale ``s`` (nadir minus ideal) taken from the observed evaluations; the small augmentation term
makes the scalarization strictly Pareto-compliant.
"""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` Pareto-dominates ``b`` (minimization).

    Args:
        a: (d,) objective vector.
        b: (d,) objective vector.

    Returns:
        True when ``a <= b`` everywhere and ``a < b`` somewhere.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a <= b) and np.any(a < b))


def nondominated_mask(points: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of ``points`` (duplicates are all kept).

    Args:
        points: (n, d) objective vectors.

    Returns:
        (n,) bool array, True for rows no other row dominates.
    """
    pts = np.asarray(points, dtype=float)
    n = pts.shape[0]
    if n == 0:
        return np.ones(0, dtype=bool)
    if pts.ndim == 2 and pts.shape[1] == 1:
        # one objective (evolve's summary ranks the whole history every tick: O(n), not O(n^2)):
        # a row is dominated when some row is less; a NaN row never is, nor dominates
        col = pts[:, 0]
        finite = col[~np.isnan(col)]
        return np.ones(n, dtype=bool) if finite.size == 0 else ~(col > finite.min())
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        le = np.all(pts <= pts[i], axis=1)
        lt = np.any(pts < pts[i], axis=1)
        if np.any(le & lt):
            mask[i] = False
    return mask


def pareto_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting: rank 0 is the front, rank 1 the front of the rest, ...

    Args:
        points: (n, d) objective vectors.

    Returns:
        (n,) int array of front indices.
    """
    pts = np.asarray(points, dtype=float)
    return constrained_ranks(pts, np.zeros(pts.shape[0]))


def constrained_ranks(points: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Non-dominated sorting under constrained domination (Deb et al. 2002).

    ``a`` dominates ``b`` when ``v_a = 0 < v_b``, or both are infeasible and ``v_a < v_b``, or
    both are feasible and ``a`` Pareto-dominates ``b``; ``v`` is the total constraint violation.

    Args:
        points: (n, d) objective vectors.
        violation: (n,) total constraint violation, 0 when feasible.

    Returns:
        (n,) int array of front indices (0 = dominated by no one).
    """
    pts = np.asarray(points, dtype=float).reshape(len(violation), -1)
    v = np.asarray(violation, dtype=float)
    n = len(v)
    feas = v <= 0.0
    le = np.all(pts[:, None, :] <= pts[None, :, :], axis=2)
    lt = np.any(pts[:, None, :] < pts[None, :, :], axis=2)
    dom = (le & lt & feas[:, None] & feas[None, :]) | (feas[:, None] & ~feas[None, :])
    dom |= ~feas[:, None] & ~feas[None, :] & (v[:, None] < v[None, :])  # dom[i, j]: i dominates j
    ranks = np.full(n, -1, dtype=int)
    count = dom.sum(axis=0)  # how many dominate each
    rank = 0
    current = np.flatnonzero(count == 0)
    while current.size:
        ranks[current] = rank
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the members of one front: per objective, the gap between a
    member's two neighbours divided by the front's extent, summed; the extremes (and every
    member of a front of at most two) get ``inf``.

    Args:
        points: (n, d) objective vectors of one front.
    """
    pts = np.asarray(points, dtype=float)
    n, d = pts.shape
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    for k in range(d):
        order = np.argsort(pts[:, k], kind="stable")
        col = pts[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0 and np.isfinite(span):
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def _hv2d(pts: np.ndarray, ref: np.ndarray) -> float:
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    total, prev_f2 = 0.0, ref[1]
    for f1, f2 in pts[order]:
        if f2 < prev_f2:
            total += (ref[0] - f1) * (prev_f2 - f2)
            prev_f2 = f2
    return float(total)


def _hv(pts: np.ndarray, ref: np.ndarray) -> float:
    d = pts.shape[1]
    if pts.shape[0] == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - pts[:, 0].min())
    if d == 2:
        return _hv2d(pts, ref)
    pts = pts[np.argsort(pts[:, -1], kind="stable")]
    total = 0.0
    for i in range(pts.shape[0]):
        upper = pts[i + 1, -1] if i + 1 < pts.shape[0] else ref[-1]
        depth = upper - pts[i, -1]
        if depth <= 0:
            continue
        below = pts[: i + 1, :-1]
        below = below[nondominated_mask(below)]
        total += depth * _hv(below, ref[:-1])
    return float(total)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference``.

    Args:
        points: (n, d) minimized objective vectors (any n, including 0).
        reference: (d,) reference point; points not strictly better than it in every
            objective contribute nothing.

    Returns:
        The hypervolume (0.0 for an empty front).

    Raises:
        ValueError: the shapes disagree.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return 0.0
    if pts.ndim != 2 or pts.shape[1] != ref.shape[0]:
        raise ValueError(f"points must have shape (n, {ref.shape[0]}), got {pts.shape}")
    pts = pts[np.all(np.isfinite(pts), axis=1) & np.all(pts < ref, axis=1)]
    if pts.shape[0] == 0:
        return 0.0
    pts = np.unique(pts[nondominated_mask(pts)], axis=0)
    return _hv(pts, ref)


def chebyshev(values: np.ndarray, weights: np.ndarray, ideal: np.ndarray, scale: np.ndarray) -> float:
    """Augmented weighted Chebyshev scalarization of one objective vector.

    Args:
        values: (d,) minimized objectives.
        weights: (d,) non-negative weights summing to 1.
        ideal: (d,) best value seen per objective.
        scale: (d,) positive normalization (nadir - ideal, floored).

    Returns:
        ``max_i w_i z_i + 0.05 * sum_i w_i z_i`` with ``z = (values - ideal) / scale``.
    """
    z = (np.asarray(values, float) - ideal) / scale
    wz = np.asarray(weights, float) * z
    return float(np.max(wz) + 0.05 * np.sum(wz))


def front_loss(values: np.ndarray, front: np.ndarray, reference: np.ndarray, ideal: np.ndarray) -> float:
    """A scalar loss that rewards improving a Pareto front (used to drive a 1-objective optimizer).

    In the box normalized by ``ideal`` (0) and ``reference`` (1):

    * a point the front does not dominate gets minus its hypervolume improvement,
      ``-(HV(front + y) - HV(front))`` (<= 0);
    * a dominated point gets the additive epsilon it lacks,
      ``max_p min_i (y_i - p_i)`` over the front points ``p`` (>= 0): how far it must move,
      equally in every objective, to stop being dominated.

    The two branches meet at 0 on the front's attainment surface.

    Args:
        values: (d,) minimized objectives of the candidate.
        front: (n, d) current non-dominated points (n may be 0).
        reference: (d,) normalization upper corner (worse than every point considered).
        ideal: (d,) normalization lower corner.

    Returns:
        The loss (a float; lower is better).
    """
    scale = np.maximum(np.asarray(reference, float) - ideal, 1e-12)
    y = (np.asarray(values, float) - ideal) / scale
    f = (np.asarray(front, float).reshape(-1, y.shape[0]) - ideal) / scale
    ones = np.ones_like(y)
    if f.shape[0]:
        dominated_by = np.all(f <= y, axis=1)
        if dominated_by.any():
            return float(np.max(np.min(y[None, :] - f[dominated_by], axis=1)))
    return -(hypervolume(np.vstack([f, y[None, :]]), ones) - hypervolume(f, ones))
