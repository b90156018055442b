"""Simulators huntflow hunts over. Built-ins are listed in ``REGISTRY`` by name and imported
(with JAX) on their first lookup (:data:`huntflow.engine.models.base.BUILTINS`)."""

from huntflow.engine.models.base import REGISTRY, CandidateResult, KnownOptimum, Model, Status

__all__ = ["REGISTRY", "CandidateResult", "KnownOptimum", "Model", "Status"]
