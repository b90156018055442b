"""Augmented Lagrangian (Powell-Hestenes-Rockafellar) handling of ``g(x) <= 0`` constraints.

The optimizer minimizes, for fixed multipliers ``lambda >= 0`` and penalty ``rho > 0``::

    L(x) = f(x) + sum_i (rho / 2) * ( max(0, lambda_i / rho + g_i(x))**2 - (lambda_i / rho)**2 )

which equals ``f`` for a point exactly on every constraint boundary, adds the classical
quadratic penalty ``rho/2 * max(0, g)**2`` when ``lambda = 0``, and lets an inactive constraint
(``g_i < -lambda_i / rho``) contribute the constant ``-lambda_i**2 / (2 rho)``.

Outer iteration: huntflow closes one outer iteration per told *search generation* (one
:class:`~huntflow.engine.optimize.hunt.Ask` of kind ``search``). ``g_bar`` is the mean of each
constraint over that generation's successfully evaluated candidates (failed and review-rejected
candidates have no trustworthy ``g`` and are left out; a generation with none leaves the state
unchanged). The updates, in this order::

    lambda_i <- max(0, lambda_i + rho * g_bar_i)          (uses the old rho)
    rho      <- min(RHO_MAX, RHO_GROWTH * rho)  if any max(0, g_bar_i) > VIOLATION_TOL

with ``lambda_0 = 0``, ``rho_0 = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDA_0 = 0.0
RHO_0 = 1.0
RHO_MAX = 1e6
RHO_GROWTH = 2.0
VIOLATION_TOL = 1e-2


@dataclass(frozen=True)
class AlmState:
    """Multipliers and penalty of the augmented Lagrangian.

    lam:   (m,) tuple of multipliers, one per ``g <= 0`` constraint, each >= 0.
    rho:   penalty parameter, in ``[RHO_0, RHO_MAX]``.
    outer: number of completed outer iterations.
    """

    lam: tuple[float, ...]
    rho: float = RHO_0
    outer: int = 0

    @classmethod
    def initial(cls, n_constraints: int) -> "AlmState":
        """The starting state: ``lambda = 0`` for every constraint, ``rho = 1``, outer 0."""
        return cls(lam=(LAMBDA_0,) * n_constraints, rho=RHO_0, outer=0)

    def as_dict(self) -> dict:
        """JSON-able view: ``{"lambda": [...], "rho": float, "outer": int}``."""
        return {"lambda": list(self.lam), "rho": self.rho, "outer": self.outer}


def alm_loss(f: float, g: np.ndarray | list[float], lam: np.ndarray | tuple[float, ...], rho: float) -> float:
    """The augmented Lagrangian value of one evaluation.

    Args:
        f: (scalarized) objective to minimize.
        g: (m,) constraint values (feasible when all <= 0).
        lam: (m,) multipliers.
        rho: penalty parameter (> 0).

    Returns:
        ``f + sum_i rho/2 * (max(0, lam_i/rho + g_i)**2 - (lam_i/rho)**2)``.

    Raises:
        ValueError: ``g`` and ``lam`` have different lengths, or ``rho <= 0``.
    """
    g = np.asarray(g, dtype=float).reshape(-1)
    lam = np.asarray(lam, dtype=float).reshape(-1)
    if g.shape != lam.shape:
        raise ValueError(f"g has {g.size} values but lambda has {lam.size}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    shifted = lam / rho
    return float(f + np.sum(0.5 * rho * (np.maximum(0.0, shifted + g) ** 2 - shifted**2)))


def alm_update(state: AlmState, g_bar: np.ndarray | list[float]) -> AlmState:
    """Close one outer iteration with the mean constraint values ``g_bar``.

    Args:
        state: the current state.
        g_bar: (m,) mean of each ``g`` over the outer iteration's evaluated candidates.

    Returns:
        The next state (``outer`` incremented).

    Raises:
        ValueError: ``g_bar`` has the wrong length.
    """
    g_bar = np.asarray(g_bar, dtype=float).reshape(-1)
    lam = np.asarray(state.lam, dtype=float)
    if g_bar.shape != lam.shape:
        raise ValueError(f"g_bar has {g_bar.size} values but lambda has {lam.size}")
    new_lam = np.maximum(0.0, lam + state.rho * g_bar)
    rho = state.rho
    if np.any(np.maximum(0.0, g_bar) > VIOLATION_TOL):
        rho = min(RHO_MAX, RHO_GROWTH * rho)
    return AlmState(lam=tuple(float(v) for v in new_lam), rho=float(rho), outer=state.outer + 1)
