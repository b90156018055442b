"""The function huntflow runs per candidate: one boundary through the package's forward model.

Called in a function-model worker process (one evaluation at a time: VMEC++ runs
single-threaded), as ``evaluate(params, fidelity=..., seed=..., workdir=...)``. The metrics are
the ``constellaration`` package's: ``forward_model.forward_model`` at the rung's VMEC++ preset
gives the physics metrics, and the problem class gives the objective (``get_objective``), each
normalized constraint violation (``_normalized_constraint_violations``), ``feasibility``
(``compute_feasibility``: their positive maximum), ``feasible`` (``is_feasible``: all <= 1 %)
and ``score`` (``_score`` where feasible, else 0, as ``evaluate`` does). With
``evaluate: true`` the rung is scored by ``problem.evaluate`` itself (its high-fidelity
settings; the forward model run it makes is the one whose metrics are reported).

A boundary the package refuses or VMEC++ cannot start from is ``invalid_boundary``; VMEC++
running out of iterations is ``vmec_nonconvergence``: failure categories, never made-up losses.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pydantic
from constellaration import forward_model
from constellaration.mhd import vmec_settings

from huntflow.engine.models.stellarator import VIOLATIONS, metric_names
from huntflow.engine.models.stellarator.boundary import boundary_from_params, problem_for
from huntflow.errors import EvaluationFailed


NONCONVERGENCE = ("did not converge", "not converged")
INVALID = ("jacobian", "self-intersect", "poorly shaped", "first iterations", "spectrally condensed")


def settings_for(problem: str, preset: str) -> forward_model.ConstellarationSettings:
    """Forward-model settings at a VMEC++ preset, computing only what ``problem`` needs (as the
    package's launch_alm_* examples do: P1 skips Boozer/QI and turbulence, P2 turbulence)."""
    s = forward_model.ConstellarationSettings(vmec_preset_settings=vmec_settings.VmecPresetSettings(fidelity=preset))
    if problem == "p1":
        s = s.model_copy(update={"boozer_preset_settings": None, "qi_settings": None, "turbulent_settings": None})
    elif problem == "p2":
        s = s.model_copy(update={"turbulent_settings": None})
    return s


@contextlib.contextmanager
def _captured_forward_model(seen: list) -> Iterator[None]:
    """Record what ``forward_model.forward_model`` returns while ``problem.evaluate`` runs."""
    real = forward_model.forward_model

    def recording(*args: Any, **kwargs: Any):
        out = real(*args, **kwargs)
        seen.append(out[0])
        return out

    forward_model.forward_model = recording
    try:
        yield
    finally:
        forward_model.forward_model = real


def _classify(e: Exception) -> EvaluationFailed | None:
    text = str(e).lower()
    if any(s in text for s in NONCONVERGENCE):
        return EvaluationFailed("vmec_nonconvergence", f"VMEC++ did not converge: {str(e)[:300]}")
    if any(s in text for s in INVALID):
        return EvaluationFailed("invalid_boundary", f"VMEC++ cannot solve this boundary: {str(e)[:300]}")
    return None


def metrics_of(name: str, metrics: forward_model.ConstellarationMetrics, problem: Any = None) -> dict[str, float]:
    """The reported metrics of one forward-model result, through problem ``name``'s class."""
    problem = problem_for(name) if problem is None else problem
    out = {k: float(v) for k, v in metrics.model_dump().items() if v is not None}
    if metrics.qi is not None:
        out["log10_qi"] = math.log10(metrics.qi) if metrics.qi > 0 else -math.inf
    violations = np.asarray(problem._normalized_constraint_violations(metrics), dtype=float)
    if violations.shape != (len(VIOLATIONS[name]),):
        raise RuntimeError(f"{name}: expected {len(VIOLATIONS[name])} constraint violations, got {violations.shape}")
    out.update({f"violation_{v}": float(x) for v, x in zip(VIOLATIONS[name], violations)})
    out["feasibility"] = float(problem.compute_feasibility(metrics))
    out["feasible"] = float(problem.is_feasible(metrics))
    out["evaluated"] = 0.0
    if name != "p3":
        out["objective"] = float(problem.get_objective(metrics)[0])
        out["score"] = float(problem._score(metrics)) if problem.is_feasible(metrics) else 0.0
    return out


def run(params: dict, fidelity: dict) -> tuple[dict[str, float], Any]:
    """``(metrics, boundary)`` for one candidate (raises :class:`EvaluationFailed`)."""
    name = str(params["problem"])
    try:
        boundary = boundary_from_params(params)
    except (pydantic.ValidationError, ValueError) as e:
        raise EvaluationFailed("invalid_boundary", f"the package refuses the boundary: {str(e)[:300]}") from None
    problem = problem_for(name)
    preset = str(fidelity.get("preset", "low_fidelity"))
    official = None
    try:
        if fidelity.get("evaluate"):
            seen: list = []
            with _captured_forward_model(seen):
                official = problem.evaluate([boundary] if name == "p3" else boundary)
            metrics = seen[-1]
        else:
            metrics, _ = forward_model.forward_model(boundary, settings=settings_for(name, preset))
    except Exception as e:
        failure = _classify(e)
        if failure is None:
            raise
        raise failure from None
    out = metrics_of(name, metrics, problem)
    if official is not None:
        out["evaluated"] = 1.0
        if name != "p3":
            out.update(objective=official.objective, feasibility=official.feasibility, score=official.score)
        else:
            out["feasibility"] = float(official.feasibility[0])
    return out, boundary


def evaluate(params: dict, *, fidelity: dict, seed: int, workdir: Path) -> dict[str, float]:
    """The function-model entry point; writes the boundary to ``workdir/boundary.json``."""
    metrics, boundary = run(params, fidelity)
    Path(workdir, "boundary.json").write_text(boundary.model_dump_json())
    declared = metric_names((), params)
    return {k: metrics[k] for k in declared if k in metrics}
