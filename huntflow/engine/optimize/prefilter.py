"""Feasibility prefilter: skip candidates that are very likely infeasible before dispatch.

A k-nearest-neighbour classifier on the optimizer's unit-cube coordinates (every parameter
normalized to ``[0, 1]``, log-scale ones in log space). Training data: every told evaluation,
labelled feasible when it succeeded and met every constraint; failed, review-rejected and
constraint-violating ones are infeasible (so the filter also learns regions that blow up).

``p_feasible`` of a query is the Laplace-smoothed feasible fraction of its ``k`` nearest
neighbours: ``(n_feasible + 0.5) / (k + 1)``. The filter is active once there are at least
``min_data`` evaluations and both classes are present. A candidate is rejected when
``p_feasible < threshold``, but never more than ``floor(max_reject_fraction * batch size)``
candidates of one batch; past the cap, candidates are accepted whatever their score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.1
DEFAULT_MAX_REJECT_FRACTION = 0.5
DEFAULT_MIN_DATA = 20
DEFAULT_K = 7


@dataclass(frozen=True)
class PrefilterConfig:
    """Prefilter settings (from ``spec.optimizer.options``: ``prefilter``, ``prefilter_threshold``,
    ``prefilter_max_reject_fraction``, ``prefilter_min_data``, ``prefilter_k``)."""

    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION
    min_data: int = DEFAULT_MIN_DATA
    k: int = DEFAULT_K

    @classmethod
    def from_options(cls, options: dict) -> "PrefilterConfig":
        """Read the settings from optimizer options.

        Raises:
            ValueError: a value is out of range.
        """
        cfg = cls(
            enabled=bool(options.get("prefilter", True)),
            threshold=float(options.get("prefilter_threshold", DEFAULT_THRESHOLD)),
            max_reject_fraction=float(options.get("prefilter_max_reject_fraction", DEFAULT_MAX_REJECT_FRACTION)),
            min_data=int(options.get("prefilter_min_data", DEFAULT_MIN_DATA)),
            k=int(options.get("prefilter_k", DEFAULT_K)),
        )
        if not 0.0 <= cfg.threshold <= 1.0:
            raise ValueError(f"optimizer.options.prefilter_threshold must be in [0, 1], got {cfg.threshold}")
        if not 0.0 <= cfg.max_reject_fraction <= 1.0:
            raise ValueError(
                f"optimizer.options.prefilter_max_reject_fraction must be in [0, 1], got {cfg.max_reject_fraction}"
            )
        if cfg.k < 1 or cfg.min_data < 1:
            raise ValueError("optimizer.options.prefilter_k and prefilter_min_data must be >= 1")
        return cfg


def is_active(labels: np.ndarray, cfg: PrefilterConfig) -> bool:
    """Whether enough data exists to filter: ``min_data`` labels with both classes present."""
    labels = np.asarray(labels, dtype=bool)
    return active_for(labels.size, int(labels.sum()), cfg)


def active_for(told: int, feasible: int, cfg: PrefilterConfig) -> bool:
    """:func:`is_active` from the counts: ``told`` labels of which ``feasible`` are True."""
    return bool(cfg.enabled and told >= cfg.min_data and 0 < feasible < told)


def p_feasible(train_x: np.ndarray, train_y: np.ndarray, query: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """k-NN feasibility probability of each query point.

    Args:
        train_x: (n, D) unit-cube coordinates of told evaluations.
        train_y: (n,) bool, True = feasible.
        query: (q, D) unit-cube coordinates.
        k: neighbours (capped at n).

    Returns:
        (q,) probabilities ``(feasible neighbours + 0.5) / (k + 1)``.
    """
    train_x = np.asarray(train_x, dtype=float)
    train_y = np.asarray(train_y, dtype=bool)
    query = np.atleast_2d(np.asarray(query, dtype=float))
    n = train_x.shape[0]
    k = min(k, n)
    d2 = ((query[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)
    if k == n:
        return (np.broadcast_to(train_y, d2.shape).sum(axis=1) + 0.5) / (k + 1)
    # the k a stable sort puts first, without sorting (O(n), not O(n log n), per query): every
    # point nearer than the k-th distance, then the earliest of those at exactly that distance
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1:k]
    nearer = d2 < kth
    at = d2 == kth
    chosen = nearer | (at & (np.cumsum(at, axis=1) <= (k - nearer.sum(axis=1))[:, None]))
    return ((chosen & train_y[None, :]).sum(axis=1) + 0.5) / (k + 1)


def rejection_cap(batch_size: int, cfg: PrefilterConfig) -> int:
    """Most candidates one batch may lose to the prefilter: ``floor(fraction * batch_size)``."""
    return int(np.floor(cfg.max_reject_fraction * batch_size + 1e-9))
