"""Simulators huntflow hunts over; importing this package registers them all in ``REGISTRY``."""

from huntflow.engine.models.artefacts import ARTEFACT_MODELS
from huntflow.engine.models.base import REGISTRY, CandidateResult, KnownOptimum, Model, Status
from huntflow.engine.models.benchmarks import BENCHMARKS, MixedModel
from huntflow.engine.models.cgl import MODEL as CGL_MODEL

for _model in BENCHMARKS:
    REGISTRY.register(_model)
REGISTRY.register(CGL_MODEL)
REGISTRY.register(MixedModel())
for _model in ARTEFACT_MODELS:
    REGISTRY.register(_model)

__all__ = ["REGISTRY", "CandidateResult", "KnownOptimum", "Model", "Status"]
