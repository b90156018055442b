"""Where a model comes from: built in, an installed package's entry point, or an import path.

A model is either a JAX :class:`~huntflow.engine.models.base.Model` (batched with jit/vmap) or
an :class:`ExternalModel`: a Python function or an executable run candidate by candidate in a
process pool (:mod:`huntflow.engine.external`). Packages register either kind under the
``huntflow.models`` entry-point group; the object an entry point names is

* a ``Model`` (has ``build`` and ``metric_names``),
* a mapping describing a function or command model (:func:`external_from_mapping`; no huntflow
  import needed, the function itself stays a ``"module:attr"`` string imported only where it runs),
* or a zero-argument callable returning one of those.

Misuse (unknown names, unimportable paths, malformed descriptions) raises ``ValueError`` /
``KeyError`` whose message names what is wrong; the spec turns it into a field error.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "huntflow.models"
TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
"""``package.module:attr`` (attr may be dotted)."""

_KEYS = {"function", "command", "metrics", "validate", "workers", "walltime_seconds", "retries", "pythonpath"}


@dataclass(frozen=True)
class ExternalModel:
    """A function or command model: what runs, what it reports, and how it is run by default.

    kind:    ``"function"`` (target ``"module:attr"``) or ``"command"`` (target: argv template).
    metrics: declared metric names, or a callable ``(param_names, fixed) -> names``.
    validate: optional ``(param_names, fixed, fidelity) -> None`` raising ``ValueError``.
    workers, walltime_seconds, retries: defaults the spec's ``model`` block may override.
    source:  provenance of the registration (entry point, distribution, version).
    """

    kind: str
    target: str | tuple[str, ...]
    metrics: tuple[str, ...] | Callable[..., Any] | None = None
    validate: Callable[..., Any] | None = None
    workers: int | None = None
    walltime_seconds: float | None = None
    retries: Mapping[str, Any] | None = None
    pythonpath: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)

    def metric_names(self, param_names: tuple[str, ...], fixed: Mapping[str, Any]) -> tuple[str, ...] | None:
        if callable(self.metrics):
            return tuple(str(m) for m in self.metrics(tuple(param_names), dict(fixed)))
        return None if self.metrics is None else tuple(self.metrics)


def external_from_mapping(desc: Mapping[str, Any], source: Mapping[str, Any] | None = None) -> ExternalModel:
    """An :class:`ExternalModel` from a registration mapping (keys as a spec's ``model`` block).

    Raises:
        ValueError: not exactly one of ``function``/``command``, an unknown key, or a bad value.
    """
    unknown = sorted(set(desc) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in the model description (known: {sorted(_KEYS)})")
    kinds = [k for k in ("function", "command") if desc.get(k) is not None]
    if len(kinds) != 1:
        raise ValueError("a model description needs exactly one of 'function', 'command'")
    kind = kinds[0]
    target = desc[kind]
    if kind == "function":
        if not isinstance(target, str) or not TARGET.match(target):
            raise ValueError(f"function must be a 'package.module:attr' string, got {target!r}")
    else:
        if isinstance(target, str) or not target or not all(isinstance(a, str) for a in target):
            raise ValueError("command must be a non-empty list of strings (argv, no shell)")
        target = tuple(target)
    metrics = desc.get("metrics")
    if metrics is not None and not callable(metrics):
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise ValueError("metrics must be a list of names or a callable (param_names, fixed) -> names")
        metrics = tuple(metrics)
    validate = desc.get("validate")
    if validate is not None and not callable(validate):
        raise ValueError("validate must be a callable (param_names, fixed, fidelity) -> None")
    return ExternalModel(
        kind=kind, target=target, metrics=metrics, validate=validate, workers=desc.get("workers"),
        walltime_seconds=desc.get("walltime_seconds"), retries=desc.get("retries"),
        pythonpath=tuple(desc.get("pythonpath") or ()), source=dict(source or {}),
    )


def add_pythonpath(paths: tuple[str, ...] | list[str]) -> None:
    """Put ``paths`` at the front of ``sys.path`` (once each), for importing user modules."""
    for p in reversed([str(p) for p in paths]):
        if p not in sys.path:
            sys.path.insert(0, p)


def load_object(target: str) -> Any:
    """Import ``package.module:attr`` and return the attribute.

    Raises:
        ValueError: malformed target, the module cannot be imported, or it lacks the attribute.
    """
    if not isinstance(target, str) or not TARGET.match(target):
        raise ValueError(f"expected 'package.module:attr', got {target!r}")
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # an ImportError, or whatever the module raises while importing
        raise ValueError(f"cannot import module {module_name!r}: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def is_jax_model(obj: Any) -> bool:
    return hasattr(obj, "build") and hasattr(obj, "metric_names") and hasattr(obj, "validate")


def classify(obj: Any, source: Mapping[str, Any]) -> Any:
    """A ``Model`` or :class:`ExternalModel` from what a registration names (see module doc).

    Raises:
        ValueError: the object is none of the accepted shapes.
    """
    for depth in range(2):
        if is_jax_model(obj) or isinstance(obj, ExternalModel):
            return obj
        if isinstance(obj, Mapping):
            return external_from_mapping(obj, source)
        if callable(obj) and depth == 0:
            try:
                obj = obj()
            except Exception as e:
                raise ValueError(f"the model factory raised {type(e).__name__}: {e}") from None
            continue
        break
    raise ValueError(
        f"{type(obj).__name__} is not a model: expected a JAX Model (build, metric_names, validate), "
        "a mapping with 'function' or 'command', or a zero-argument factory of one"
    )


def distribution_of(module_name: str) -> dict[str, str]:
    """``{"package": dist, "version": v}`` of the installed distribution providing a module."""
    top = module_name.split(".")[0]
    try:
        dists = md.packages_distributions().get(top) or []
        if dists:
            return {"package": dists[0], "version": md.version(dists[0])}
    except Exception:  # metadata of some other distribution is broken: provenance says unknown
        pass
    return {"package": top, "version": "unknown"}


def _entry_point(name: str) -> tuple[Any, dict[str, str]] | None:
    found = md.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        return None
    ep = next(iter(found))
    dist = getattr(ep, "dist", None)
    return ep, {"entry_point": f"{ENTRY_POINT_GROUP}:{name}", "value": ep.value,
                "package": getattr(dist, "name", None) or "unknown",
                "version": getattr(dist, "version", None) or "unknown"}


def name_source(name: str) -> dict[str, str]:
    """Provenance of a model named ``name``: built in, or which distribution's entry point."""
    from huntflow.engine.models.base import REGISTRY

    if name in REGISTRY:
        return {"builtin": name, "package": "huntflow"}
    found = _entry_point(name)
    return found[1] if found else {"name": name}


@functools.lru_cache(maxsize=None)
def entry_point(name: str) -> Any:
    """The model an installed package registers as ``name``, or ``None``.

    Raises:
        ValueError: the entry point exists but cannot be loaded or is not a model.
    """
    found = _entry_point(name)
    if found is None:
        return None
    ep, source = found
    try:
        obj = ep.load()
    except Exception as e:
        raise ValueError(f"entry point {name!r} ({ep.value}) cannot be loaded: {type(e).__name__}: {e}") from None
    return classify(obj, source)


def entry_point_names() -> list[str]:
    return sorted({ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)})


def by_name(name: str) -> Any:
    """A built-in model, else one registered through the ``huntflow.models`` entry point.

    Raises:
        KeyError: no such model (the message lists the known ones).
        ValueError: the entry point is broken.
    """
    from huntflow.engine.models.base import REGISTRY

    found = REGISTRY.lookup(name)
    if found is not None:
        return found
    found = entry_point(name)
    if found is None:
        known = ", ".join(sorted(set(REGISTRY.names()) | set(entry_point_names())))
        raise KeyError(f"unknown model {name!r}; known models: {known}")
    return found


@functools.lru_cache(maxsize=None)
def by_target(target: str) -> Any:
    """The model a ``package.module:attr`` path names (Model, factory or description)."""
    module_name = target.partition(":")[0]
    return classify(load_object(target), {"entrypoint": target, **distribution_of(module_name)})


def jax_model(key: str) -> Any:
    """The JAX model for an evaluation key: a model name, or a ``module:attr`` path.

    Raises:
        KeyError / ValueError: as :func:`by_name` / :func:`by_target`, or the model is not JAX.
    """
    model = by_target(key) if ":" in key else by_name(key)
    if not is_jax_model(model):
        raise ValueError(f"model {key!r} is a {model.kind} model, not a JAX model")
    return model
