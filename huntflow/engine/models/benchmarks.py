"""Analytic benchmark problems with known optima.

Each is a pure function of the parameter vector, so a batch is a single jitted, vmapped call
like any simulator. They are what the tests, the demo and the optimizer benchmark hunt over.

Parameters are named ``x0 .. x{n-1}`` (any order in the spec; the dimension is the count).
``fixed`` options common to all:
  ``noise``: standard deviation of additive Gaussian noise on every objective metric
             (drawn from the candidate's key; the noise-free value is reported as ``<m>_true``).
Fidelity settings common to all:
  ``bias``:  a cheap-model error term ``bias * mean(sin(3 x_i))`` added to the objectives, so a
             fidelity ladder of problems can be posed (the top rung uses ``bias: 0``).

Review: with ``noise > 0`` the declared perturbation is ``noise_key`` (the candidate again under
another noise key) and each noisy objective tolerates ``8 * noise`` (two draws differ by more
than 5.7 of their standard deviations about once in 10⁸ comparisons); without noise, a repeat.

Problems (metrics in brackets):
  sphere       [f]          f = Σ x_i²                                      f* = 0 at 0
  rosenbrock   [f]          f = Σ 100(x_{i+1} − x_i²)² + (1 − x_i)²         f* = 0 at 1
  rastrigin    [f]          f = 10n + Σ x_i² − 10 cos(2π x_i)               f* = 0 at 0
  ackley       [f]          the standard Ackley function                   f* = 0 at 0
  rosen_suzuki [f, g1..g3]  Rosen–Suzuki (4-D, three inequality constraints g ≤ 0)
                            f* = −44 at (0, 1, 2, −1)
  constrained_sphere [f, g] f = Σ (x_i − 1)², g = Σ x_i (feasible when g ≤ 0)
                            f* = n at 0 (the projection of 1 onto the half-space)
  zdt1         [f1, f2]     ZDT1 on [0, 1]^n (two objectives; Pareto front f2 = 1 − √f1)
  mixed        [f, g]       a mixed-integer problem over ``x`` (continuous), ``n`` (an integer)
                            and ``kind`` (a categorical: the model gets the choice's index c):
                            f = (x − 0.3)² + 0.1 (n − 3)² + 0.5 min(|c − 1|, 2),
                            g = n − 10 x − 2 (feasible when g ≤ 0); f* = 0 at x = 0.3, n = 3, c = 1
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from huntflow.engine.models.base import CandidateResult, KnownOptimum, Perturbation, Status, Tolerance

_COMMON_FIXED = {"noise"}
_COMMON_FIDELITY = {"bias"}


def _param_index(param_names: tuple[str, ...]) -> list[int]:
    """Column order that sorts x0..x{n-1}; raises ValueError on any other name."""
    idx = []
    for name in param_names:
        if not (name.startswith("x") and name[1:].isdigit()):
            raise ValueError(f"parameter {name!r}: benchmark parameters are named x0, x1, ...")
        idx.append(int(name[1:]))
    if sorted(idx) != list(range(len(idx))):
        raise ValueError(f"parameters must be exactly x0..x{len(idx) - 1}, got {sorted(param_names)}")
    return [param_names.index(f"x{i}") for i in range(len(idx))]


@dataclass(frozen=True)
class AnalyticModel:
    """A benchmark problem: ``fn(x) -> {metric: value}`` over the sorted vector x."""

    name: str
    objective_metrics: tuple[str, ...]
    constraint_metrics: tuple[str, ...]
    fn: Callable[[jax.Array], dict[str, jax.Array]]
    min_dim: int = 1
    dims: tuple[int, ...] | None = None
    optimum: Callable[[int], KnownOptimum] | None = None

    def metric_names(self, param_names, fixed) -> tuple[str, ...]:
        noisy = float(dict(fixed).get("noise", 0.0)) > 0
        true = tuple(f"{m}_true" for m in self.objective_metrics) if noisy else ()
        return self.objective_metrics + self.constraint_metrics + true

    def validate(self, param_names, fixed, fidelity) -> None:
        _param_index(tuple(param_names))
        n = len(param_names)
        if n < self.min_dim:
            raise ValueError(f"{self.name} needs at least {self.min_dim} parameters, got {n}")
        if self.dims is not None and n not in self.dims:
            raise ValueError(f"{self.name} is defined for {self.dims} parameters, got {n}")
        for key in fixed:
            if key not in _COMMON_FIXED:
                raise ValueError(f"fixed.{key}: unknown option for {self.name} (known: noise)")
        noise = dict(fixed).get("noise", 0.0)
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
            raise ValueError(f"fixed.noise: must be a finite number >= 0, got {noise!r}")
        for key in fidelity:
            if key not in _COMMON_FIDELITY:
                raise ValueError(f"fidelity setting {key!r}: unknown for {self.name} (known: bias)")
        bias = dict(fidelity).get("bias", 0.0)
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise ValueError(f"fidelity setting 'bias': must be a finite number, got {bias!r}")

    def build(self, param_names, fixed, fidelity, *, dtype) -> Callable:
        order = jnp.asarray(_param_index(tuple(param_names)))
        noise = float(fixed.get("noise", 0.0))
        bias = float(fidelity.get("bias", 0.0))
        objectives, constraints = self.objective_metrics, self.constraint_metrics

        def candidate(params: jax.Array, key: jax.Array) -> CandidateResult:
            x = params[order].astype(dtype)
            values = self.fn(x)
            metrics = {}
            shift = bias * jnp.mean(jnp.sin(3.0 * x))
            eps = jax.random.normal(key, (len(objectives),), dtype=dtype)
            for i, m in enumerate(objectives):
                true = values[m] + shift
                metrics[m] = true + noise * eps[i] if noise > 0 else true
                if noise > 0:
                    metrics[f"{m}_true"] = true
            for m in constraints:
                metrics[m] = values[m]
            finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
            status = jnp.where(finite, Status.OK, Status.NONFINITE).astype(jnp.int32)
            return CandidateResult(metrics=metrics, status=status, extras={})

        return candidate

    def known_optimum(self, param_names, fixed) -> KnownOptimum | None:
        return None if self.optimum is None else self.optimum(len(param_names))

    def perturbations(self, param_names, fixed, fidelity) -> tuple[Perturbation, ...]:
        if float(dict(fixed).get("noise", 0.0)) > 0:
            return (Perturbation("noise_key", "the same candidate under another noise key", reseed=True),)
        return ()

    def tolerances(self, param_names, fixed) -> dict[str, Tolerance]:
        noise = float(dict(fixed).get("noise", 0.0))
        if noise <= 0:
            return {}
        return {m: Tolerance(rtol=1e-3, atol=8.0 * noise) for m in self.objective_metrics}


def _rosenbrock(x):
    return {"f": jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)}


def _rastrigin(x):
    return {"f": 10.0 * x.shape[0] + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x))}


def _ackley(x):
    n = x.shape[0]
    return {
        "f": -20.0 * jnp.exp(-0.2 * jnp.sqrt(jnp.sum(x**2) / n))
        - jnp.exp(jnp.sum(jnp.cos(2 * jnp.pi * x)) / n)
        + 20.0
        + jnp.e
    }


def _rosen_suzuki(x):
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    return {
        "f": x1**2 + x2**2 + 2 * x3**2 + x4**2 - 5 * x1 - 5 * x2 - 21 * x3 + 7 * x4,
        "g1": x1**2 + x2**2 + x3**2 + x4**2 + x1 - x2 + x3 - x4 - 8,
        "g2": x1**2 + 2 * x2**2 + x3**2 + 2 * x4**2 - x1 - x4 - 10,
        "g3": 2 * x1**2 + x2**2 + x3**2 + 2 * x1 - x2 - x4 - 5,
    }


def _zdt1(x):
    n = x.shape[0]
    f1 = x[0]
    g = 1.0 + 9.0 * jnp.sum(x[1:]) / (n - 1)
    return {"f1": f1, "f2": g * (1.0 - jnp.sqrt(jnp.clip(f1 / g, 0.0, None)))}


def _at(value: float, point: Callable[[int], list[float]] | None = None, metric: str = "f"):
    def optimum(n: int) -> KnownOptimum:
        params = None if point is None else {f"x{i}": float(v) for i, v in enumerate(point(n))}
        return KnownOptimum(value=value if not callable(value) else value(n), params=params, metric=metric)

    return optimum


BENCHMARKS: tuple[AnalyticModel, ...] = (
    AnalyticModel("sphere", ("f",), (), lambda x: {"f": jnp.sum(x**2)}, optimum=_at(0.0, lambda n: [0.0] * n)),
    AnalyticModel("rosenbrock", ("f",), (), _rosenbrock, min_dim=2, optimum=_at(0.0, lambda n: [1.0] * n)),
    AnalyticModel("rastrigin", ("f",), (), _rastrigin, optimum=_at(0.0, lambda n: [0.0] * n)),
    AnalyticModel("ackley", ("f",), (), _ackley, optimum=_at(0.0, lambda n: [0.0] * n)),
    AnalyticModel(
        "rosen_suzuki", ("f",), ("g1", "g2", "g3"), _rosen_suzuki, dims=(4,),
        optimum=_at(-44.0, lambda n: [0.0, 1.0, 2.0, -1.0]),
    ),
    AnalyticModel(
        "constrained_sphere", ("f",), ("g",),
        lambda x: {"f": jnp.sum((x - 1.0) ** 2), "g": jnp.sum(x)},
        optimum=lambda n: KnownOptimum(value=float(n), params={f"x{i}": 0.0 for i in range(n)}),
    ),
    AnalyticModel("zdt1", ("f1", "f2"), (), _zdt1, min_dim=2, optimum=None),
)


@dataclass(frozen=True)
class MixedModel:
    """The ``mixed`` benchmark: a continuous, an integer and a categorical parameter (search spaces
    with ``type: int`` and ``choices``; the categorical arrives as its index)."""

    name: str = "mixed"
    params: tuple[str, ...] = ("x", "n", "kind")

    def metric_names(self, param_names, fixed) -> tuple[str, ...]:
        return ("f", "g")

    def validate(self, param_names, fixed, fidelity) -> None:
        if sorted(param_names) != sorted(self.params):
            raise ValueError(f"mixed has parameters {list(self.params)}, got {sorted(param_names)}")
        for key in list(fixed) + list(fidelity):
            raise ValueError(f"{key!r}: mixed takes no fixed options or fidelity settings")

    def build(self, param_names, fixed, fidelity, *, dtype) -> Callable:
        cols = [tuple(param_names).index(p) for p in self.params]

        def candidate(params: jax.Array, key: jax.Array) -> CandidateResult:
            x, n, c = (params[i].astype(dtype) for i in cols)
            f = (x - 0.3) ** 2 + 0.1 * (n - 3.0) ** 2 + 0.5 * jnp.minimum(jnp.abs(c - 1.0), 2.0)
            metrics = {"f": f, "g": n - 10.0 * x - 2.0}
            finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
            status = jnp.where(finite, Status.OK, Status.NONFINITE).astype(jnp.int32)
            return CandidateResult(metrics=metrics, status=status, extras={})

        return candidate

    def known_optimum(self, param_names, fixed) -> KnownOptimum | None:
        return KnownOptimum(value=0.0, params={"x": 0.3, "n": 3.0, "kind": 1.0})


MIXED = MixedModel()
