"""Steering a search batch by mode: exploit's local refinement and recover's diversification.

The rules (step size, incumbents, the Latin hypercube pool, what the prefilter does with
injected points) are described in :mod:`~huntflow.engine.optimize.hunt`, whose ``_ask_search``
calls these with the hunt's state; they read it and update only ``exploit_anchor`` and
``exploit_k``. Every point returned is new (not told, in flight or already in the batch at the
rung: :mod:`~huntflow.engine.optimize.dedup`), with discrete coordinates canonical.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from huntflow.engine.optimize import dedup, evalindex
from huntflow.engine.optimize import prefilter as pf
from huntflow.engine.optimize.ladder import Stage, param_hash
from huntflow.engine.optimize.modes import EXPLOIT, RECOVER
from huntflow.engine.optimize.report import front_indices

if TYPE_CHECKING:
    from huntflow.engine.optimize.hunt import Hunt

EXPLOIT_SIGMA_FRACTION = 0.5  # exploit step / the optimizer's current sampling spread
EXPLOIT_SIGMA_MAX = 0.1  # per-dimension step size cap, unit-cube units
EXPLOIT_SIGMA_MIN = 1e-6
RECOVER_POOL_MIN = 256  # space-filling candidates drawn per recover ask (at least)
RECOVER_POOL_PER_POINT = 32


def incumbents(hunt: "Hunt", rung: int) -> list[int]:
    """Indices of the evaluations exploit refines around at ``rung``: with one objective the
    best feasible one (lowest minimized objective, earliest on ties); with several the
    feasible front. Without a feasible one, the least-violating successful one; without a
    successful one, none."""
    if hunt.n_obj > 1:
        front = front_indices(hunt, rung)
        if front:
            return front
    index = evalindex.of(hunt)
    if index.best.get(rung):  # one objective, a feasible one: the first at the lowest value
        return [index.best[rung][0]]
    least = index.least.get(rung)
    return [] if least is None else [least[1]]


def exploit_points(hunt: "Hunt", stage: Stage, centers: list[int], n: int, batch_u: list[np.ndarray], ask_id: int,
                   screen: tuple, rejected: list[dict], taken: "dedup.Taken") -> tuple[list[tuple], dict]:
    """Up to ``n`` Gaussian perturbations of the incumbent(s), screened by the prefilter, each
    a new point (not in ``taken``; a discrete coordinate steps at least one bin)."""
    active, train_x, labels, cap = screen
    cfg = hunt.prefilter
    anchor = tuple(centers)
    hunt.exploit_k = 0 if anchor != hunt.exploit_anchor else hunt.exploit_k + 1
    hunt.exploit_anchor = anchor
    # the scale the optimizer samples at now: this batch's own points, else the rung's last batch
    ref = np.asarray(batch_u, dtype=float)
    if len(ref) < 2:
        recent = [e["u"] for e in hunt.evals if e["fidelity"] == stage.rung and e["kind"] == "search"]
        ref = np.asarray(recent[-hunt.spec.optimizer.population:], dtype=float).reshape(-1, hunt.space.dim)
    spread = float(np.sqrt(np.mean(np.var(ref, axis=0)))) if len(ref) >= 2 else 2 * EXPLOIT_SIGMA_MAX
    sigma = max(EXPLOIT_SIGMA_MIN, min(EXPLOIT_SIGMA_MAX, EXPLOIT_SIGMA_FRACTION * spread) * 0.5**hunt.exploit_k)
    step = np.maximum(sigma, hunt.space.min_steps()) if hunt.space.discrete else sigma
    rng = np.random.default_rng([hunt.spec.seed, ask_id, 1])
    points: list[tuple] = []
    draws = 0
    while len(points) < n and draws < n + cap + dedup.DUPLICATE_DRAWS_PER_CANDIDATE * n:
        draws += 1
        c = centers[int(rng.integers(len(centers)))] if len(centers) > 1 else centers[0]
        u = np.clip(np.asarray(hunt.evals[c]["u"], dtype=float) + step * rng.standard_normal(hunt.space.dim), 0.0, 1.0)
        if hunt.space.discrete:
            u = hunt.space.canonical(u)
        values = hunt.space.decode(u)
        h = param_hash(values, hunt.names)
        if h in taken:
            continue
        p = float(pf.p_feasible(train_x, labels, hunt.space.features(u), cfg.k)[0]) if active else None
        if active and p < cfg.threshold and len(rejected) < cap:
            rejected.append({"params": hunt._candidate(values), "p_feasible": p, "told_loss": None, "source": EXPLOIT})
            continue
        taken.add(h)
        points.append((u, p, EXPLOIT, {"center_eval": c, "sigma": sigma}))
    meta = {"sigma": sigma, "halvings": hunt.exploit_k, "optimizer_spread": spread, "centers": list(centers)}
    return points, meta


def recover_points(hunt: "Hunt", n: int, batch_u: list[np.ndarray], ask_id: int, screen: tuple,
                    known: "dedup.Taken") -> tuple[list[tuple], dict]:
    """Up to ``n`` new points (not in ``known``) picked greedily (farthest first) from a Latin
    hypercube pool, preferring those the prefilter predicts feasible."""
    active, train_x, labels = screen
    cfg = hunt.prefilter
    dim = hunt.space.dim
    rng = np.random.default_rng([hunt.spec.seed, ask_id, 2])
    m = max(RECOVER_POOL_MIN, RECOVER_POOL_PER_POINT * n)
    pool = (np.argsort(rng.random((m, dim)), axis=0) + rng.random((m, dim))) / m  # Latin hypercube
    if hunt.space.discrete:
        pool = np.array([hunt.space.canonical(u) for u in pool])
    feats = hunt.space.features(pool)
    history = [e["u"] for e in hunt.evals] + [u for p in hunt.pending_asks.values() for u in p.u] + list(batch_u)
    dmin = np.full(m, np.inf)
    if history:
        dmin = np.sqrt(_sqdist(feats, hunt.space.features(np.asarray(history, dtype=float))).min(axis=1))
    p = pf.p_feasible(train_x, labels, feats, cfg.k) if active else None
    preferred = p >= cfg.threshold if active else np.ones(m, dtype=bool)
    taken = np.zeros(m, dtype=bool)
    points: list[tuple] = []
    while len(points) < n and not taken.all():
        free = ~taken & preferred if (~taken & preferred).any() else ~taken
        j = int(np.flatnonzero(free)[np.argmax(dmin[free])])
        taken[j] = True
        h = param_hash(hunt.space.decode(pool[j]), hunt.names)
        if h in known:
            continue
        known.add(h)
        d = float(dmin[j])
        pj = float(p[j]) if active else None
        points.append((pool[j].copy(), pj, RECOVER, {"min_distance": d if math.isfinite(d) else None}))
        dmin = np.minimum(dmin, np.sqrt(_sqdist(feats, feats[j][None, :])[:, 0]))
    meta = {"pool": m, "pool_predicted_infeasible": int((~preferred).sum())}
    return points, meta


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)
