"""A damped, driven pendulum in JAX: an example of a model that lives in its own package.

``MODEL`` satisfies huntflow's ``Model`` protocol (``huntflow.engine.models.base``): huntflow
vmaps and jits ``build``'s single-candidate function over a whole generation, exactly as for its
built-in models. The package registers it in its pyproject::

    [project.entry-points."huntflow.models"]
    damped-pendulum = "hf_pendulum:MODEL"

Parameters: ``length`` (m) and ``damping`` (1/s). The pendulum starts at ``theta0`` (fixed,
radians) and is integrated with semi-implicit Euler for ``steps`` steps of ``dt`` (fidelity).
Metrics: ``energy_left`` (fraction of the initial energy left at the end), ``period`` (seconds,
from the small-angle formula corrected for amplitude) and ``period_error`` against
``target_period`` (fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from huntflow.engine.models.base import CandidateResult, Status

G = 9.81
FIXED = {"theta0": 1.0, "target_period": 2.0}
FIDELITY = {"steps": 2000, "dt": 0.005}


@dataclass(frozen=True)
class DampedPendulum:
    name: str = "damped-pendulum"

    def metric_names(self, param_names, fixed):
        return ("energy_left", "period", "period_error")

    def validate(self, param_names, fixed, fidelity):
        if set(param_names) != {"length", "damping"}:
            raise ValueError(f"damped-pendulum searches exactly length and damping, got {sorted(param_names)}")
        for key in fixed:
            if key not in FIXED:
                raise ValueError(f"fixed.{key}: unknown option (known: {sorted(FIXED)})")
        for key in fidelity:
            if key not in FIDELITY:
                raise ValueError(f"fidelity setting {key!r}: unknown (known: {sorted(FIDELITY)})")

    def build(self, param_names, fixed, fidelity, *, dtype):
        fixed = {**FIXED, **fixed}
        fidelity = {**FIDELITY, **fidelity}
        i_len, i_damp = param_names.index("length"), param_names.index("damping")
        steps, dt = int(fidelity["steps"]), float(fidelity["dt"])
        theta0, target = float(fixed["theta0"]), float(fixed["target_period"])

        def candidate(params: jax.Array, key: jax.Array) -> CandidateResult:
            length, damping = params[i_len].astype(dtype), params[i_damp].astype(dtype)

            def step(state, _):
                theta, omega = state
                omega = omega - dt * (G / length * jnp.sin(theta) + damping * omega)
                return (theta + dt * omega, omega), None

            (theta, omega), _ = jax.lax.scan(step, (jnp.asarray(theta0, dtype), jnp.zeros((), dtype)), None,
                                             length=steps)

            def energy(th, om):
                return 0.5 * (length * om) ** 2 + G * length * (1.0 - jnp.cos(th))

            left = energy(theta, omega) / energy(jnp.asarray(theta0, dtype), jnp.zeros((), dtype))
            period = 2 * jnp.pi * jnp.sqrt(length / G) * (1 + theta0**2 / 16)
            metrics = {"energy_left": left, "period": period, "period_error": jnp.abs(period - target)}
            finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
            invalid = (length <= 0) | (damping < 0)
            status = jnp.where(invalid, Status.INVALID_PARAMS, jnp.where(finite, Status.OK, Status.NONFINITE))
            return CandidateResult(metrics=metrics, status=status.astype(jnp.int32), extras={})

        return candidate

    def known_optimum(self, param_names, fixed):
        return None


MODEL = DampedPendulum()
