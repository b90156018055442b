"""The contract every simulator ("model") satisfies.

A model maps one candidate's parameter vector to named scalar metrics. The engine batches it:
:func:`huntflow.engine.evaluate.evaluate_population` wraps :meth:`Model.build`'s function in
``jax.vmap`` and ``jax.jit`` so a whole generation is one compiled call. A model that lays a
population out better itself may also define ``build_batch`` (same arguments) returning
``fn(params (P, D), keys (P,)) -> CandidateResult`` with the batch axis first in every output;
the engine then jits that instead (the CGL model does: its fields are (N, N, P)).

Review (optional): a model may declare ``perturbations(param_names, fixed, fidelity)`` — the
re-evaluations under which its results must survive (:class:`Perturbation`: another noise key,
a halved time step, a finer grid, a plain repeat), each marked ``default`` or opt-in — and
``tolerances(param_names, fixed)`` — ``{metric: Tolerance}``, how far a metric may move under
them. Neither is required: :func:`perturbations_of` and :func:`tolerances_of` give a model
without them (an external program, say) a repeat run and the spec's default tolerance. A model
may also declare ``ladder_tolerances(param_names, fixed, lower, upper)`` — ``{metric: Tolerance}``
between a claim at fidelity settings ``lower`` and the promotion's result at ``upper``, where the
next rung composes several of its refinements (default: ``tolerances``;
:func:`huntflow.engine.verify.ladder_tolerance`).

Failures are data inside the compiled call: each candidate returns a status code
(:class:`Status`); ``Status.OK`` means every metric is trustworthy. One bad candidate never
fails the batch. Misuse that can be found before running (unknown parameter names, bad fidelity
settings) raises ``ValueError`` from :meth:`Model.validate`.
"""

from __future__ import annotations

import enum
import importlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Protocol

if TYPE_CHECKING:  # JAX is imported by the models themselves: reading a spec needs none of it
    import jax


class Status(enum.IntEnum):
    """Per-candidate status code computed inside the jitted batch."""

    OK = 0
    NONFINITE = 1  # a metric came out NaN or inf
    BLOWUP = 2  # the state grew past the model's blow-up threshold
    INVALID_PARAMS = 3  # the parameters are outside the model's domain (e.g. a negative width)
    # external (function / command) models, set by huntflow.engine.external
    TIMEOUT = 4  # killed at its walltime
    EXCEPTION = 5  # the function raised
    EXIT_CODE = 6  # the program exited non-zero (or a function's worker process died)
    INVALID_OUTPUT = 7  # a metric is missing or not a number, or the output is not JSON
    FAILED = 8  # the simulator named its own category (stored on the row instead of "failed")

    @property
    def message(self) -> str:
        return STATUS_MESSAGES[self]

    @property
    def failure_category(self) -> str | None:
        """The failure category stored on an evaluation row (``None`` for OK)."""
        return None if self is Status.OK else self.name.lower()


STATUS_MESSAGES: dict[Status, str] = {
    Status.OK: "ok",
    Status.NONFINITE: "a metric is NaN or infinite",
    Status.BLOWUP: "the state blew up (amplitude past the model's threshold)",
    Status.INVALID_PARAMS: "parameters outside the model's domain",
    Status.TIMEOUT: "killed at its walltime",
    Status.EXCEPTION: "the function raised an exception",
    Status.EXIT_CODE: "the program exited with a non-zero code",
    Status.INVALID_OUTPUT: "the output is missing a metric or is not numeric JSON",
    Status.FAILED: "the simulator reported a failure of its own category",
}


class CandidateResult(NamedTuple):
    """What a model returns for one candidate (inside jit; a batch adds a leading axis P).

    metrics: name -> scalar float array.
    status:  scalar int32, a :class:`Status` code.
    extras:  name -> array of any fixed shape, kept in the HDF5 artifact only (time series,
             spectra, downsampled fields). May be empty.
    """

    metrics: dict[str, jax.Array]
    status: jax.Array
    extras: dict[str, jax.Array]


CandidateFn = Callable[["jax.Array", "jax.Array"], CandidateResult]
"""``fn(params, key) -> CandidateResult``; ``params`` has shape (D,) in the spec's order."""


@dataclass(frozen=True)
class KnownOptimum:
    """A benchmark's known best value (for tests, the demo and the optimizer benchmark)."""

    value: float
    params: dict[str, float] | None = None
    metric: str = "f"


@dataclass(frozen=True)
class Perturbation:
    """A re-evaluation under which a trustworthy result must survive (review's verification).

    name:     short id, used in findings and ``review.perturbations`` (``half_dt``).
    what:     one line for the report ("the time step halved (twice the steps)").
    fidelity: fidelity settings to override (resolved values, e.g. ``{"dt": 0.05, "steps": 600}``).
    fixed:    ``fixed`` options to override.
    reseed:   draw from another noise key (a stochastic model's noise is re-drawn).
    cost:     evaluation cost per candidate relative to the original (2.0 for a halved step).
    default:  run when the spec names no perturbations (else only when named).
    """

    name: str
    what: str
    fidelity: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    reseed: bool = False
    cost: float = 1.0
    default: bool = True


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move under a perturbation: ``|a - b| <= atol + rtol * max(|a|, |b|)``."""

    rtol: float = 1e-3
    atol: float = 0.0

    def close(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.atol + self.rtol * max(abs(a), abs(b))


REPEAT = Perturbation("repeat", "the same evaluation again (another batch shape)")
"""The perturbation every model has: for a deterministic JAX model it checks little more than
that XLA is deterministic; for an external program it catches non-determinism."""


def perturbations_of(model: Any, param_names: tuple[str, ...], fixed: Mapping[str, Any],
                     fidelity: Mapping[str, Any]) -> tuple[Perturbation, ...]:
    """Every perturbation the model offers at this rung (``repeat`` always among them)."""
    declared = getattr(model, "perturbations", None)
    out = tuple(declared(param_names, fixed, fidelity)) if callable(declared) else ()
    if not any(p.name == REPEAT.name for p in out):
        out += (Perturbation(REPEAT.name, REPEAT.what, default=not out),)
    return out


def tolerances_of(model: Any, param_names: tuple[str, ...], fixed: Mapping[str, Any]) -> dict[str, Tolerance]:
    """The model's declared per-metric tolerances (``{}`` when it declares none)."""
    declared = getattr(model, "tolerances", None)
    return dict(declared(param_names, fixed)) if callable(declared) else {}


class Model(Protocol):
    """A simulator huntflow can hunt over."""

    name: str

    def metric_names(self, param_names: tuple[str, ...], fixed: Mapping[str, Any]) -> tuple[str, ...]:
        """The metric names this model reports for these parameters."""
        ...

    def validate(
        self, param_names: tuple[str, ...], fixed: Mapping[str, Any], fidelity: Mapping[str, Any]
    ) -> None:
        """Raise ``ValueError`` (message naming the offending name) if the model cannot run these."""
        ...

    def build(
        self,
        param_names: tuple[str, ...],
        fixed: Mapping[str, Any],
        fidelity: Mapping[str, Any],
        *,
        dtype: Any,
    ) -> CandidateFn:
        """Return the single-candidate function; ``fixed``/``fidelity`` values are static."""
        ...

    def known_optimum(self, param_names: tuple[str, ...], fixed: Mapping[str, Any]) -> KnownOptimum | None:
        """The known optimum, where one is known."""
        ...


BUILTINS: dict[str, str] = {
    **{name: "huntflow.engine.models.benchmarks:BENCHMARKS" for name in
       ("sphere", "rosenbrock", "rastrigin", "ackley", "rosen_suzuki", "constrained_sphere", "zdt1")},
    "mixed": "huntflow.engine.models.benchmarks:MIXED",
    "cgl": "huntflow.engine.models.cgl:MODEL",
    "euler_decay": "huntflow.engine.models.artefacts:ARTEFACT_MODELS",
    "noise_trap": "huntflow.engine.models.artefacts:ARTEFACT_MODELS",
}
"""Built-in model name -> ``"module:attr"`` of the model (or of a tuple of models, one of them
named so). A built-in is imported on its first lookup, so reading a stored spec, ``--help`` and
the CLI's read-only commands never import JAX."""


@dataclass
class Registry:
    """Name -> model: the built-ins (:data:`BUILTINS`, imported on first lookup) and whatever
    :meth:`register` / :meth:`register_external` added.

    ``models`` holds the JAX models loaded so far; ``external`` function/command model
    descriptions (:class:`huntflow.engine.models.sources.ExternalModel`). Models of installed
    packages are found through the ``huntflow.models`` entry point instead (:func:`sources.by_name`).
    """

    models: dict[str, Model] = field(default_factory=dict)
    external: dict[str, Any] = field(default_factory=dict)
    builtin: dict[str, str] = field(default_factory=lambda: dict(BUILTINS))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __contains__(self, name: object) -> bool:
        return name in self.models or name in self.external or name in self.builtin

    def register(self, model: Model) -> Model:
        if model.name in self:
            raise ValueError(f"model {model.name!r} is already registered")
        self.models[model.name] = model
        return model

    def register_external(self, name: str, description: Mapping[str, Any]) -> Any:
        """Register a function/command model described by a mapping (see ``sources``)."""
        from huntflow.engine.models.sources import external_from_mapping

        if name in self:
            raise ValueError(f"model {name!r} is already registered")
        self.external[name] = external_from_mapping(description, {"builtin": name})
        return self.external[name]

    def lookup(self, name: str) -> Any:
        """The model (JAX or external) registered as ``name``, importing a built-in; else ``None``."""
        if name in self.models:
            return self.models[name]
        if name in self.external:
            return self.external[name]
        target = self.builtin.get(name)
        if target is None:
            return None
        with self._lock:  # ticks advance campaigns in threads: one import, one object per name
            if name not in self.models:
                module, _, attr = target.partition(":")
                found = getattr(importlib.import_module(module), attr)
                for model in found if isinstance(found, tuple) else (found,):
                    if model.name == name:
                        self.models[name] = model
                if name not in self.models:
                    raise ValueError(f"built-in model {name!r}: {target} defines no model of that name")
        return self.models[name]

    def get(self, name: str) -> Model:
        """The JAX model ``name`` (a built-in is imported here).

        Raises:
            KeyError: no JAX model of that name (the message lists the known ones).
        """
        model = self.lookup(name) if name not in self.external else None
        if model is None:
            known = ", ".join(sorted({*self.models, *self.builtin}))
            raise KeyError(f"unknown model {name!r}; known models: {known}")
        return model

    def names(self) -> list[str]:
        return sorted({*self.models, *self.external, *self.builtin})


REGISTRY = Registry()
