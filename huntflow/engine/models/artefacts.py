"""Two small models whose best-looking results are artefacts, to prove that review bites.

  euler_decay  [f, y_end]  y' = −rate·y, y(0) = 1, integrated with explicit Euler (step ``dt``,
               ``steps`` steps); ``y_end`` = y(T) and f = y_end + shift². The exact y(T) =
               e^{−rate·T} is positive, so f* ≈ 0 — but Euler's factor (1 − rate·dt) is negative
               once rate·dt > 1, and with an odd step count y_end comes out negative (−1 at
               rate·dt = 2): a step-size artefact an optimizer finds at once. Halving the step
               (``half_dt``) exposes it; for rate·dt ≤ ½ (the honest region) halving the step moves
               y_end by at most ~0.03 (first-order scheme), inside the declared tolerance.
               Parameters: ``rate`` (≥ 0), ``shift``. Fidelity: ``dt`` (0.5), ``steps`` (5).
  noise_trap   [f, f_true] f_true = Σ x_i², f = f_true + noise·s(x)·ε with ε ~ N(0, 1) from the
               candidate's key and s = 1, except s = ``trap_scale`` (200) where x0 > 0.5: there
               the noise is far larger than the declared ``noise``, so the luckiest draw of a
               generation is a spurious best. Another noise key (``noise_key``) exposes it; in the
               honest region the declared tolerance (8·noise) is exceeded about once in 10⁸.
               Parameters ``x0 .. x{n-1}``; fixed ``noise`` (0.01), ``trap_scale`` (200).

Neither is a benchmark of the optimizer; both are what tests and ``benchmarks/review_cost.py``
hunt over to show that review's verification rejects artefacts and passes honest results.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from huntflow.engine.models.base import CandidateResult, KnownOptimum, Perturbation, Status, Tolerance


def _status(metrics: dict[str, jax.Array]) -> jax.Array:
    finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
    return jnp.where(finite, Status.OK, Status.NONFINITE).astype(jnp.int32)


def _check_keys(kind: str, given, known: set[str], model: str) -> None:
    for key in given:
        if key not in known:
            raise ValueError(f"{kind} {key!r}: unknown for {model} (known: {', '.join(sorted(known))})")


@dataclass(frozen=True)
class EulerDecay:
    name: str = "euler_decay"

    def _settings(self, fidelity) -> tuple[float, int]:
        return float(fidelity.get("dt", 0.5)), int(fidelity.get("steps", 5))

    def metric_names(self, param_names, fixed) -> tuple[str, ...]:
        return ("f", "y_end")

    def validate(self, param_names, fixed, fidelity) -> None:
        if sorted(param_names) != ["rate", "shift"]:
            raise ValueError(f"parameters must be exactly rate and shift, got {sorted(param_names)}")
        _check_keys("fixed option", fixed, set(), self.name)
        _check_keys("fidelity setting", fidelity, {"dt", "steps"}, self.name)
        dt, steps = fidelity.get("dt", 0.5), fidelity.get("steps", 5)
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0:
            raise ValueError(f"fidelity setting 'dt': must be a positive number, got {dt!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"fidelity setting 'steps': must be an integer >= 1, got {steps!r}")

    def build(self, param_names, fixed, fidelity, *, dtype):
        dt, steps = self._settings(fidelity)
        i_rate, i_shift = param_names.index("rate"), param_names.index("shift")

        def candidate(params: jax.Array, key: jax.Array) -> CandidateResult:
            rate, shift = params[i_rate].astype(dtype), params[i_shift].astype(dtype)
            y = jax.lax.fori_loop(0, steps, lambda _, y: y - dt * rate * y, jnp.asarray(1.0, dtype))
            metrics = {"f": y + shift**2, "y_end": y}
            status = jnp.where(rate < 0, Status.INVALID_PARAMS, _status(metrics)).astype(jnp.int32)
            return CandidateResult(metrics=metrics, status=status, extras={})

        return candidate

    def known_optimum(self, param_names, fixed) -> KnownOptimum | None:
        return None

    def perturbations(self, param_names, fixed, fidelity) -> tuple[Perturbation, ...]:
        dt, steps = self._settings(fidelity)
        return (Perturbation("half_dt", f"the time step halved (dt {dt:g} -> {dt / 2:g}, {2 * steps} steps)",
                             fidelity={"dt": dt / 2, "steps": 2 * steps}, cost=2.0),)

    def tolerances(self, param_names, fixed) -> dict[str, Tolerance]:
        return {"f": Tolerance(rtol=0.1, atol=0.05), "y_end": Tolerance(rtol=0.1, atol=0.05)}


@dataclass(frozen=True)
class NoiseTrap:
    name: str = "noise_trap"

    def metric_names(self, param_names, fixed) -> tuple[str, ...]:
        return ("f", "f_true")

    def validate(self, param_names, fixed, fidelity) -> None:
        names = sorted(param_names)
        if not names or names != sorted(f"x{i}" for i in range(len(names))):
            raise ValueError(f"parameters must be exactly x0..x{len(names) - 1}, got {names}")
        _check_keys("fixed option", fixed, {"noise", "trap_scale"}, self.name)
        _check_keys("fidelity setting", fidelity, set(), self.name)
        for key in ("noise", "trap_scale"):
            if key in fixed and not float(fixed[key]) > 0:
                raise ValueError(f"fixed.{key}: must be > 0")

    def build(self, param_names, fixed, fidelity, *, dtype):
        noise = float(fixed.get("noise", 0.01))
        trap = float(fixed.get("trap_scale", 200.0))
        i0 = param_names.index("x0")

        def candidate(params: jax.Array, key: jax.Array) -> CandidateResult:
            x = params.astype(dtype)
            true = jnp.sum(x**2)
            scale = jnp.where(x[i0] > 0.5, trap, 1.0)
            f = true + noise * scale * jax.random.normal(key, (), dtype=dtype)
            metrics = {"f": f, "f_true": true}
            return CandidateResult(metrics=metrics, status=_status(metrics), extras={})

        return candidate

    def known_optimum(self, param_names, fixed) -> KnownOptimum | None:
        return KnownOptimum(value=0.0, params={n: 0.0 for n in param_names}, metric="f_true")

    def perturbations(self, param_names, fixed, fidelity) -> tuple[Perturbation, ...]:
        return (Perturbation("noise_key", "the same candidate under another noise key", reseed=True),)

    def tolerances(self, param_names, fixed) -> dict[str, Tolerance]:
        return {"f": Tolerance(rtol=1e-3, atol=8.0 * float(fixed.get("noise", 0.01)))}


ARTEFACT_MODELS = (EulerDecay(), NoiseTrap())
