"""The spec's ``model`` block: which simulator, of which kind, and how to run it.

Exactly one of ``name`` (built in, or an installed package's ``huntflow.models`` entry point),
``entrypoint`` (``module:attr`` of a JAX model or its factory), ``function`` (``module:attr`` of
``fn(params, *, fidelity, seed, workdir) -> dict``) or ``command`` (an argv template, no shell).
Function and command models declare their ``metrics`` (or their registration does), so
objectives and constraints are checked at ``campaign add``; they run in a process pool
(``workers``, ``walltime_seconds``, ``retries``; :mod:`huntflow.engine.external`). Relative
``pythonpath`` entries and a relative ``command[0]`` are resolved against the spec file's
directory (``load_spec``) or the working directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from huntflow.engine.external.batch import Retries, RunSettings
from huntflow.engine.external.commands import check_template, executable_source, resolve_executable
from huntflow.engine.models import sources

Scalar = int | float | str | bool
KINDS = ("name", "entrypoint", "function", "command")


class RetrySpec(BaseModel):
    """Retries of transient failure categories, waiting ``backoff_seconds * 2**k`` before the k-th."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max: int = Field(default=0, ge=0, le=10)
    categories: list[str] = Field(default_factory=lambda: ["timeout", "exit_code"])
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)


class ModelRef(BaseModel):
    """The simulator a campaign hunts (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    entrypoint: str | None = Field(default=None, pattern=sources.TARGET.pattern)
    function: str | None = Field(default=None, pattern=sources.TARGET.pattern)
    command: list[str] | None = Field(default=None, min_length=1)
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    metrics: list[str] | None = Field(default=None, min_length=1)
    workers: int | None = Field(default=None, gt=0, le=256)
    walltime_seconds: float | None = Field(default=None, gt=0, le=7 * 86400)
    retries: RetrySpec | None = None
    pythonpath: list[str] = Field(default_factory=list)

    @field_validator("pythonpath")
    @classmethod
    def _absolute_paths(cls, v: list[str], info: ValidationInfo) -> list[str]:
        base = Path((info.context or {}).get("base_dir") or ".")
        return [str((base / p).resolve()) for p in v]

    @field_validator("command")
    @classmethod
    def _absolute_program(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v and "/" in v[0] and not os.path.isabs(v[0]):
            base = Path((info.context or {}).get("base_dir") or ".")
            return [str((base / v[0]).resolve()), *v[1:]]
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "ModelRef":
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> Literal["name", "entrypoint", "function", "command"]:
        return next(k for k in KINDS if getattr(self, k) is not None)  # type: ignore[return-value]

    @property
    def label(self) -> str:
        """A short name for tables and reports."""
        if self.command is not None:
            return "command:" + os.path.basename(self.command[0])
        return str(getattr(self, self.kind))

    def resolve(self) -> "Resolved":
        """What the reference names (imports it; cached per reference in this process).

        Raises:
            KeyError: unknown model name.
            ValueError: unimportable path, broken entry point or registration.
        """
        key = self.model_dump_json()
        hit = _RESOLVED.get(key)
        if hit is None:
            hit = _RESOLVED[key] = _resolve(self)
        return hit


@dataclass(frozen=True)
class Resolved:
    """A resolved model: JAX (``jax_key`` for :func:`evaluate_population`) or external."""

    ref: ModelRef
    jax: Any = None
    jax_key: str | None = None
    external: sources.ExternalModel | None = None

    @property
    def is_external(self) -> bool:
        return self.external is not None

    def metric_names(self, param_names: tuple[str, ...]) -> tuple[str, ...] | None:
        if self.ref.metrics is not None:
            return tuple(self.ref.metrics)
        if self.jax is not None:
            return tuple(self.jax.metric_names(tuple(param_names), self.ref.fixed))
        return self.external.metric_names(tuple(param_names), self.ref.fixed)

    def run_settings(self, param_names: tuple[str, ...]) -> RunSettings:
        """How the pool runs this external model: spec values over the registration's defaults."""
        ext, ref = self.external, self.ref
        retries = ref.retries.model_dump() if ref.retries is not None else dict(ext.retries or {})
        return RunSettings(
            kind=ext.kind, target=ext.target, metrics=self.metric_names(param_names) or (),
            workers=int(ref.workers or ext.workers or min(8, os.cpu_count() or 1)),
            walltime_seconds=float(ref.walltime_seconds or ext.walltime_seconds or 3600.0),
            retries=Retries(int(retries.get("max", 0)), tuple(retries.get("categories", ("timeout", "exit_code"))),
                            float(retries.get("backoff_seconds", 1.0))),
            pythonpath=tuple(ref.pythonpath) + tuple(ext.pythonpath),
        )

    def source(self) -> dict[str, Any]:
        """Provenance: where the model comes from (entry point / function path with the package's
        version and the module's sha256 / command with the executable's path and sha256)."""
        ext = self.external
        if ext is None:
            if self.ref.entrypoint is not None:
                module_name = self.ref.entrypoint.partition(":")[0]
                return {"kind": "jax", "entrypoint": self.ref.entrypoint, **sources.distribution_of(module_name)}
            return {"kind": "jax", **sources.name_source(str(self.ref.name))}
        if ext.kind == "command":
            return {**executable_source(ext.target), "registered": dict(ext.source) or None}
        module_name = str(ext.target).partition(":")[0]
        file = _module_file(module_name)
        return {"kind": "function", "function": ext.target, **sources.distribution_of(module_name),
                "module_file": file, "sha256": _sha256(file) if file else None,
                "registered": dict(ext.source) or None}


def _module_file(module_name: str) -> str | None:
    """The file a module is (or would be) loaded from, without importing it here."""
    module = sys.modules.get(module_name)
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return found.origin if found is not None and found.has_location else None


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


_RESOLVED: dict[str, Resolved] = {}


def _resolve(ref: ModelRef) -> Resolved:
    sources.add_pythonpath(ref.pythonpath)
    if ref.function is not None:
        return Resolved(ref, external=sources.ExternalModel("function", ref.function, source={}))
    if ref.command is not None:
        return Resolved(ref, external=sources.ExternalModel("command", tuple(ref.command), source={}))
    key = ref.name if ref.name is not None else ref.entrypoint
    model = sources.by_name(key) if ref.name is not None else sources.by_target(key)
    if isinstance(model, sources.ExternalModel):
        sources.add_pythonpath(model.pythonpath)
        return Resolved(ref, external=model)
    return Resolved(ref, jax=model, jax_key=key)


def check(ref: ModelRef, param_names: tuple[str, ...], fidelities: list[dict[str, Any]]) -> tuple[set[str] | None, list[str]]:
    """Check a reference for a spec: ``(metric names or None, ["field: problem", ...])``.

    Imports what it names (so an unimportable function or unknown entry point is refused at
    ``campaign add``), finds a command's executable, checks its placeholders, and runs the
    model's own ``validate`` on every fidelity rung.
    """
    field = f"model.{ref.kind}"
    try:
        resolved = ref.resolve()
    except KeyError as e:
        return None, [f"{field}: {e.args[0]}"]
    except ValueError as e:
        return None, [f"{field}: {e}"]
    errors: list[str] = []
    if resolved.jax is not None:
        if ref.metrics is not None:
            errors.append("model.metrics: a JAX model reports its own metrics; give metrics only for "
                          "function and command models")
        for i, fid in enumerate(fidelities):
            try:
                resolved.jax.validate(param_names, ref.fixed, fid)
            except ValueError as e:
                errors.append(f"fidelities.{i}: {e}")
        return set(resolved.jax.metric_names(param_names, ref.fixed)), errors
    ext = resolved.external
    origin = field if ref.kind in ("function", "command") else "model.name"
    if ext.kind == "function":
        if ref.function is not None:
            # a function named in the spec is imported here to refuse it early; one a registration
            # names is the registration's business (it may be heavy: it is imported only in workers)
            try:
                if not callable(sources.load_object(ext.target)):
                    errors.append(f"{origin}: {ext.target} is not callable")
            except ValueError as e:
                errors.append(f"{origin}: {e}")
    else:
        argv = list(ext.target)
        if resolve_executable(argv[0]) is None:
            errors.append(f"{origin}{'.0' if origin == 'model.command' else ''}: cannot find executable "
                          f"{argv[0]!r} (not on PATH, or not an executable file)")
        keys = set().union(*[set(f) for f in fidelities]) if fidelities else set()
        for i, problem in check_template(argv, param_names, ref.fixed, keys):
            errors.append(f"{origin}.{i}: {problem}" if origin == "model.command" else f"{origin}: {problem}")
    if ext.validate is not None:
        for i, fid in enumerate(fidelities):
            try:
                ext.validate(tuple(param_names), dict(ref.fixed), dict(fid))
            except ValueError as e:
                errors.append(f"fidelities.{i}: {e}")
    try:
        metrics = resolved.metric_names(param_names)
    except Exception as e:  # the registration's metric_names callable failed
        return None, [*errors, f"model.metrics: {type(e).__name__}: {e}"]
    if not metrics:
        errors.append(f"model.metrics: a {ext.kind} model must declare the metric names it reports")
        return None, errors
    return set(metrics), errors
