"""What a spec may not be, beyond its types: the caps and raw-input checks of ``campaign add``.

A spec that passes here can be stored and can run: nothing in it overflows a database column,
asks for more memory than this machine has, or makes the optimizer refuse it at its first
evolve. Caps are generous but finite (see :data:`LIMITS`); each error names its field.

* :func:`read_spec_text`: a regular file under :data:`MAX_SPEC_BYTES`, UTF-8.
* :func:`yaml_load`: YAML with duplicate keys an error (PyYAML silently keeps the last one).
* :func:`check_raw`: the loaded data before validation: no NUL characters (Postgres text and
  jsonb cannot hold them), no non-finite floats or integers past 64 bits, a bounded number of
  nodes (so aliases cannot expand into a huge document).
* :func:`check_limits`: the validated spec: caps, optimizer options and ladder, memory.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from huntflow.errors import SpecError

MAX_SPEC_BYTES = 1 * 2**20
MAX_NODES = 100_000
MAX_INT = 2**63 - 1
LIMITS = {
    "evaluations": 10_000_000,  # hunt.campaigns.evaluations_budget is an integer column
    "priority": 1_000_000,  # |priority|; an integer column
    "patience": 1_000_000,
    "wall_time_hours": 100_000.0,
    "params": 1_000,
    "objectives": 8,  # exact hypervolume grows exponentially with the objective count
    "constraints": 256,
    "fidelities": 16,
    "promote_top_k": 100_000,
    "spot_check_top": 10_000,
    "title": 200,
    "description": 20_000,
    "name": 200,  # any name: parameter, metric, fidelity rung, setting
}


def read_spec_text(path: Path) -> str:
    """The text of a spec file.

    Raises:
        SpecError: unreadable, not a regular file, larger than :data:`MAX_SPEC_BYTES`, not UTF-8.
    """
    try:
        with open(path, "rb") as f:
            if not os.path.isfile(path):
                raise SpecError([("file", f"{path} is not a regular file")])
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError([("file", f"cannot read {path}: {e.strerror or e}")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError([("file", f"{path} is larger than {MAX_SPEC_BYTES} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([("file", f"{path} is not UTF-8 text (invalid byte at offset {e.start})")]) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice (merge keys ``<<`` still override)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
            ) from None
        if first is not None:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (first given on line {first + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` with duplicate keys an error.

    Raises:
        yaml.YAMLError: not YAML, or a key repeated in one mapping.
    """
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def check_raw(data: Any) -> list[tuple[str, str]]:
    """Problems of the loaded data that validation would turn into tracebacks or bad rows."""
    errors: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    nodes = 0
    while stack and len(errors) < 20:
        path, value = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return [("spec", f"more than {MAX_NODES} values (aliases expanding?): too large")]
        field = path or "spec"
        if isinstance(value, str):
            if "\x00" in value:
                errors.append((field, "contains a NUL character"))
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                errors.append((field, f"integer {value:.3e} is out of range (|n| <= 2^63 - 1)"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors.append((field, f"must be a finite number, got {value}"))
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and "\x00" in k:
                    errors.append((f"{path}.{k!r}" if path else repr(k), "key contains a NUL character"))
                    continue
                stack.append((f"{path}.{k}" if path else str(k), v))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value))
    return sorted(errors)


def _names(spec) -> list[tuple[str, str]]:
    named = [(f"space.{n}", n) for n in spec.space] + [(f"model.fixed.{k}", k) for k in spec.model.fixed]
    named += [(f"objectives.{i}.metric", o.metric) for i, o in enumerate(spec.objectives)]
    named += [(f"constraints.{i}.metric", c.metric) for i, c in enumerate(spec.constraints)]
    for i, f in enumerate(spec.fidelities):
        named += [(f"fidelities.{i}.name", f.name)] + [(f"fidelities.{i}.settings.{k}", k) for k in f.settings]
    if isinstance(getattr(spec.model, "name", None), str):
        named.append(("model.name", spec.model.name))
    named += [(f"optimizer.options.{k}", k) for k in spec.optimizer.options]
    return named


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_limits(spec, *, model_memory: bool = True) -> list[tuple[str, str]]:
    """Every cap a validated spec exceeds, and what the optimizer would refuse, as (field, message).

    ``model_memory=False`` skips asking a built-in model what a batch needs (it imports the model,
    and with it JAX; a stored spec was checked when it was added)."""
    from huntflow.engine.models import REGISTRY
    from huntflow.engine.optimize.options import check as check_options

    L = LIMITS
    errors: list[tuple[str, str]] = []

    def cap(field: str, value, high, low=None) -> None:
        if value is not None and (value > high or (low is not None and value < low)):
            rng = f"in [{low}, {high}]" if low is not None else f"<= {high}"
            errors.append((field, f"must be {rng}, got {value}"))

    cap("budget.evaluations", spec.budget.evaluations, L["evaluations"])
    cap("budget.patience", spec.budget.patience, L["patience"])
    cap("budget.wall_time_hours", spec.budget.wall_time_hours, L["wall_time_hours"])
    cap("priority", spec.priority, L["priority"], -L["priority"])
    cap("review.spot_check_top", spec.review.spot_check_top, L["spot_check_top"])
    for field, items, key in (("space", spec.space, "params"), ("objectives", spec.objectives, "objectives"),
                              ("constraints", spec.constraints, "constraints"),
                              ("fidelities", spec.fidelities, "fidelities")):
        if len(items) > L[key]:
            errors.append((field, f"at most {L[key]} entries, got {len(items)}"))
    for i, f in enumerate(spec.fidelities):
        cap(f"fidelities.{i}.budget", f.budget, L["evaluations"])
        cap(f"fidelities.{i}.promote_top_k", f.promote_top_k, L["promote_top_k"])
    for field, text, key in (("title", spec.title, "title"), ("description", spec.description, "description")):
        if len(text) > L[key]:
            errors.append((field, f"at most {L[key]} characters, got {len(text)}"))
    for field, name in _names(spec):
        if len(name) > L["name"]:
            errors.append((field, f"names are at most {L['name']} characters, got {len(name)}"))
    if errors:  # the optimizer and memory checks assume sane sizes
        return errors
    errors += check_options(spec)
    try:  # built-in models may say what a batch needs; external ones are the user's business
        estimate = (getattr(REGISTRY.get(spec.model.name), "estimate_bytes", None)
                    if spec.model.name and model_memory else None)
    except KeyError:
        estimate = None
    memory = physical_memory()
    if estimate is not None and memory:
        for i, f in enumerate(spec.fidelities):
            try:
                need = estimate(spec.param_names, spec.model.fixed, f.settings,
                                population=spec.optimizer.population, dtype=spec.dtype)
            except (ValueError, TypeError, OverflowError):
                continue
            if need > memory:
                errors.append((f"fidelities.{i}.settings", f"a batch of {spec.optimizer.population} needs about "
                               f"{need / 2**30:.1f} GiB, more than this machine's {memory / 2**30:.1f} GiB"))
    return errors


__all__ = ["LIMITS", "MAX_SPEC_BYTES", "SpecError", "check_limits", "check_raw", "read_spec_text", "yaml_load"]
