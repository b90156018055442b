"""P3's final score over a campaign's certified front, by the package itself (P3 only: P1/P2 score each design).

The ConStellaration P3 score is a property of a *set* of designs: the hypervolume of the feasible
ones' ``(-L_gradB, A)`` against ``(1, 20)``, which ``MHDStableQIStellarator.evaluate(boundaries)``
computes after running its high-fidelity forward model on each. :func:`score_front` hands the
certified boundaries (each certification workdir's ``boundary.json``) to exactly that call, so the
number is the package's; nothing of the scoring is re-implemented here. Because ``evaluate``
re-runs VMEC++ at high fidelity for every member (minutes each), :func:`score_certified_metrics`
is the same package scoring (``problem._score``, the last step of ``evaluate``) applied to the
high-fidelity metrics the certification rung already stored, for when a re-run is not affordable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from constellaration import forward_model
from constellaration.geometry import surface_rz_fourier as rz

from huntflow.engine.models.stellarator import FLUX_COMPRESSION, PHYSICS
from huntflow.engine.models.stellarator.boundary import problem_for


def load_boundaries(workdirs: Iterable[str | Path]) -> list[rz.SurfaceRZFourier]:
    """The ``boundary.json`` each evaluation workdir holds (written by the model's ``evaluate``)."""
    return [rz.SurfaceRZFourier.model_validate_json(Path(w, "boundary.json").read_text()) for w in workdirs]


def score_front(boundaries: list[rz.SurfaceRZFourier], problem: str = "p3") -> dict[str, Any]:
    """``problem.evaluate(boundaries)``: the package's own multi-objective score (hypervolume)."""
    result = problem_for(problem).evaluate(boundaries)
    return {"score": float(result.score), "feasibility": [float(f) for f in result.feasibility],
            "objectives": result.objectives, "by_problem_evaluate": True, "size": len(boundaries)}


def _metrics(stored: Mapping[str, float]) -> forward_model.ConstellarationMetrics:
    fields = set(PHYSICS) | {"qi"} | set(FLUX_COMPRESSION)
    return forward_model.ConstellarationMetrics(**{k: stored[k] for k in fields if k in stored})


def score_certified_metrics(metrics: list[Mapping[str, float]], problem: str = "p3") -> dict[str, Any]:
    """The package's ``_score`` (what ``evaluate`` returns) over stored high-fidelity metrics."""
    p = problem_for(problem)
    objects = [_metrics(m) for m in metrics]
    return {"score": float(p._score(objects)), "feasibility": [float(p.compute_feasibility(m)) for m in objects],
            "by_problem_evaluate": False, "size": len(objects)}


__all__ = ["load_boundaries", "score_certified_metrics", "score_front"]


if __name__ == "__main__":  # python -m huntflow.engine.models.stellarator.front WORKDIR...
    import sys

    print(json.dumps(score_front(load_boundaries(sys.argv[1:]))))
