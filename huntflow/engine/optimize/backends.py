"""Optimizer backends behind one ask/tell interface, over the unit cube ``[0, 1]^D``.

Every backend proposes points ``u`` in the unit cube of the searched parameters;
:class:`~huntflow.engine.space.SearchSpace` decodes them to the user's values (continuous
coordinates exactly as :func:`to_params` maps them: linearly, or in log space for ``log: true``
bounds; integers and choices by equal bins), keeping ``spec.space`` order.

* ``ngopt``, ``cma``, ``twopointsde``: nevergrad's ``NGOpt``, ``CMA`` and ``TwoPointsDE`` on an
  ``ng.p.Array`` bounded to the unit cube, ``num_workers = population``, the parametrization's
  ``random_state`` seeded from ``spec.seed`` before the first ask.
* ``nsga2``: constrained NSGA-II (:mod:`~huntflow.engine.optimize.nsga2`), told the objective
  vector and the constraint violation instead of a scalar loss; the default with several
  objectives (``optimizer.name: auto``).
* ``random``: a scrambled Halton sequence (random digit permutations per dimension, drawn from
  ``spec.seed``), skipping the all-zero first point; ``tell`` is a no-op. Unlike nevergrad's
  ``ScrHaltonSearch`` it has no fixed budget, so :meth:`Hunt.extend_budget` works.

``suggest(u)`` injects a point the hunt chose itself (exploit / recover modes, see
:mod:`~huntflow.engine.optimize.modes`) and returns ``(token, u)`` like ``ask``; telling that
token teaches the optimizer about the point. For nevergrad this is ``optimizer.suggest(u)``
followed at once by ``optimizer.ask()``, which pops the suggestion (LIFO) as a candidate whose
``value`` is ``u``; the later ``tell`` of a candidate nevergrad did not generate itself goes
through the optimizer's *tell-not-asked* path (NGOpt forwards it to its sub-optimizer, CMA puts
it in the next covariance update, DE lets it replace the worst population member when it is
better). An optimizer without that path raises ``TellNotAskedNotSupportedError``; the tell is
then dropped and counted in ``suggestions_not_told``. The Halton baseline returns the point
with a token whose ``tell`` is a no-op and does not advance its sequence.

NGOpt's quadratic metamodel is computed by :mod:`~huntflow.engine.optimize.metamodel` (the same
points as nevergrad's own, without its per-evaluation overhead).

A backend pickles with its whole state (nevergrad optimizer, candidates, RNG), which is what
makes a checkpoint resume exactly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from huntflow.engine.optimize import metamodel, ngstack

NEVERGRAD_NAMES = {"ngopt": "NGOpt", "cma": "CMA", "twopointsde": "TwoPointsDE"}

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


def _primes(n: int) -> list[int]:
    primes = list(_PRIMES)
    cand = primes[-1] + 2
    while len(primes) < n:
        if all(cand % p for p in primes if p * p <= cand):
            primes.append(cand)
        cand += 2
    return primes[:n]


def to_params(u: np.ndarray, bounds: list[tuple[float, float, bool]]) -> np.ndarray:
    """Map unit-cube points to parameter values.

    Args:
        u: (D,) or (n, D) points in ``[0, 1]``.
        bounds: per parameter ``(low, high, log)``.

    Returns:
        Array of u's shape, each column within ``[low, high]`` (clipped against rounding).
    """
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    low = np.array([b[0] for b in bounds])
    high = np.array([b[1] for b in bounds])
    log = np.array([b[2] for b in bounds], dtype=bool)
    lin = low + u * (high - low)
    safe_low = np.where(log, low, 1.0)
    safe_high = np.where(log, high, 1.0)
    logv = np.exp(np.log(safe_low) + u * (np.log(safe_high) - np.log(safe_low)))
    return np.clip(np.where(log, logv, lin), low, high)


def from_params(x: np.ndarray, bounds: list[tuple[float, float, bool]]) -> np.ndarray:
    """Inverse of :func:`to_params` (values outside the bounds are clipped to the cube)."""
    x = np.asarray(x, dtype=float)
    low = np.array([b[0] for b in bounds])
    high = np.array([b[1] for b in bounds])
    log = np.array([b[2] for b in bounds], dtype=bool)
    lin = (x - low) / (high - low)
    safe = np.where(log, np.maximum(x, 1e-300), 1.0)
    lo = np.where(log, low, 1.0)
    hi = np.where(log, high, 2.0)
    logu = (np.log(safe) - np.log(lo)) / (np.log(hi) - np.log(lo))
    return np.clip(np.where(log, logu, lin), 0.0, 1.0)


class HaltonBackend:
    """Scrambled Halton quasi-random search (the ``random`` baseline)."""

    def __init__(self, dim: int, seed: int):
        rng = np.random.RandomState(seed)
        self.dim = dim
        self.bases = _primes(dim)
        self.perms = []
        for b in self.bases:
            perm = np.concatenate([[0], 1 + rng.permutation(b - 1)])
            self.perms.append(perm)
        self.index = 0

    def _point(self, i: int) -> np.ndarray:
        out = np.empty(self.dim)
        for d, (b, perm) in enumerate(zip(self.bases, self.perms)):
            f, r, n = 1.0, 0.0, i
            while n > 0:
                f /= b
                n, digit = divmod(n, b)
                r += f * perm[digit]
            out[d] = r
        return out

    def ask(self) -> tuple[Any, np.ndarray]:
        """Next point: ``(token, u)``; the token is the sequence index."""
        self.index += 1
        return self.index, self._point(self.index)

    def suggest(self, u: np.ndarray) -> tuple[Any, np.ndarray]:
        """An injected point: ``(token, u)``; the sequence does not advance."""
        return "suggested", np.clip(np.asarray(u, dtype=float), 0.0, 1.0).copy()

    def tell(self, token: Any, loss: float, objectives: list[float] | None = None, violation: float | None = None) -> None:
        """Quasi-random search learns nothing."""

    def add_budget(self, n: int) -> None:
        """No budget to raise."""


class NevergradBackend:
    """A nevergrad optimizer on the unit cube."""

    def __init__(self, name: str, dim: int, seed: int, budget: int, num_workers: int):
        import nevergrad as ng

        param = ng.p.Array(shape=(dim,), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(seed)
        self.optimizer = ng.optimizers.registry[NEVERGRAD_NAMES[name]](
            parametrization=param, budget=int(budget), num_workers=int(num_workers)
        )

    def ask(self) -> tuple[Any, np.ndarray]:
        """Next point: ``(candidate, u)``."""
        metamodel.install()  # also after unpickling: NGOpt's metamodel, the same points faster
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = ngstack.stack(self.optimizer)
            cand = self.optimizer.ask() if st is None else ngstack.ask(st)
        return cand, np.clip(np.asarray(cand.value, dtype=float), 0.0, 1.0)

    def suggest(self, u: np.ndarray) -> tuple[Any, np.ndarray]:
        """An injected point: ``(candidate, u)``, the candidate nevergrad made of ``u``."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.optimizer.suggest(u)
            cand = self.optimizer.ask()
        return cand, np.clip(np.asarray(cand.value, dtype=float), 0.0, 1.0)

    def tell(self, token: Any, loss: float, objectives: list[float] | None = None, violation: float | None = None) -> None:
        """Report the scalar loss of an asked (or suggested) candidate (nevergrad is told only
        the loss; ``objectives`` and ``violation`` are for natively multi-objective backends)."""
        from nevergrad.common.errors import TellNotAskedNotSupportedError

        metamodel.install()  # a tell may come first after unpickling
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ngstack.tell(self.optimizer, token, float(loss))  # = optimizer.tell, cheaper on NGOpt's stack
            except TellNotAskedNotSupportedError:
                self.suggestions_not_told = getattr(self, "suggestions_not_told", 0) + 1

    def add_budget(self, n: int) -> None:
        """Raise the optimizer's nominal budget (nevergrad asks past it without complaint)."""
        if self.optimizer.budget is not None:
            self.optimizer.budget = int(self.optimizer.budget) + int(n)


def make_backend(name: str, dim: int, seed: int, budget: int, num_workers: int, size: int | None = None):
    """Build the backend for ``spec.optimizer.name``.

    Args:
        name: one of ``ngopt``, ``cma``, ``twopointsde``, ``random``, ``nsga2``.
        dim: number of searched parameters.
        seed: ``spec.seed``.
        budget: planned search evaluations (nevergrad uses it to pick sub-algorithms).
        num_workers: ``spec.optimizer.population``.
        size: the NSGA-II population (``optimizer.options.nsga2_size``; default ``num_workers``).

    Returns:
        A backend with ``ask() -> (token, u)``, ``suggest(u) -> (token, u)``,
        ``tell(token, loss, objectives=None, violation=None)`` and ``add_budget(n)``; ``nsga2``
        ranks by ``objectives`` and ``violation``, the others learn from ``loss``.

    Raises:
        ValueError: unknown optimizer name.
    """
    if name == "random":
        return HaltonBackend(dim, seed)
    if name == "nsga2":
        from huntflow.engine.optimize.nsga2 import NSGA2Backend

        return NSGA2Backend(dim, seed, size or num_workers)
    if name in NEVERGRAD_NAMES:
        return NevergradBackend(name, dim, seed, budget, num_workers)
    raise ValueError(f"unknown optimizer {name!r} (known: ngopt, cma, twopointsde, random, nsga2)")
