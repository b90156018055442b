"""The campaign spec: what a researcher writes in YAML, validated at the edge.

Every check happens here, before anything is stored: finite bounds with ``low < high``, a
known model whose parameters and metrics match, a positive budget, a known optimizer, a
fidelity ladder the model accepts. Errors are collected into one :class:`SpecError` whose
lines each name the offending field (``space.x0.low: ...``).

Example (``examples/rosenbrock_4d.yaml``)::

    slug: rosenbrock-4d
    model: {name: rosenbrock}
    space:
      x0: {low: -2.0, high: 2.0}
      ...
    objectives:
      - {metric: f, goal: minimize, target: 1.0e-3}
    budget: {evaluations: 800}
    optimizer: {name: ngopt, population: 16}   # default name: auto
    seed: 7
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from huntflow.engine.modelref import ModelRef
from huntflow.errors import SpecError

OPTIMIZERS = ("auto", "ngopt", "cma", "twopointsde", "random", "nsga2")
"""Known optimizers: ``auto`` (the default: NGOpt with one objective, NSGA-II with several; see
:meth:`CampaignSpec.optimizer_name`), nevergrad NGOpt, CMA-ES, TwoPointsDE, a quasi-random
(scrambled Halton) baseline, and a native multi-objective NSGA-II."""

Scalar = int | float | str | bool


class _Strict(BaseModel):
    # allow_inf_nan=False: NaN and ±inf are refused in every float field, nested dicts included
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Bound(_Strict):
    """A searched parameter's interval; ``log`` searches it on a log scale (needs ``low > 0``)."""

    low: float
    high: float
    log: bool = False

    @field_validator("low", "high")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> "Bound":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale bound needs low > 0")
        return self

    @model_validator(mode="before")
    @classmethod
    def _drop_type(cls, data: Any) -> Any:
        # ``type: float`` may be written; it is the default and is not stored (same fingerprint)
        if isinstance(data, dict) and data.get("type") == "float":
            data = {k: v for k, v in data.items() if k != "type"}
        return data


class IntParam(_Strict):
    """An integer parameter ``low <= n <= high`` (both included); ``log`` searches it on a log
    scale (needs ``low >= 1``)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @field_validator("low", "high", mode="before")
    @classmethod
    def _integral(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
            raise ValueError(f"must be an integer, got {v!r}")
        return int(v)

    @model_validator(mode="after")
    def _ordered(self) -> "IntParam":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high}); for one value use {{value: {self.low}}}")
        if self.log and self.low < 1:
            raise ValueError("a log-scale integer needs low >= 1")
        return self


def _check_scalar(v: Any) -> Any:
    if not isinstance(v, (str, int, float, bool)):
        raise ValueError(f"must be a string, number or boolean, got {type(v).__name__}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def choice_key(v: Any) -> tuple[str, Any]:
    """What makes two choices the same: numbers by value (``1 == 1.0``), strings and booleans by
    type and value (``true`` is not ``1``)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("number", float(v))
    return ("str", str(v))


class Categorical(_Strict):
    """One of ``choices`` (strings, numbers or booleans; at least two, all different). A JAX model
    receives the choice's index; function and command models receive the choice itself."""

    type: Literal["categorical"] = "categorical"
    choices: list[Scalar] = Field(min_length=2)

    @field_validator("choices", mode="before")
    @classmethod
    def _scalars(cls, v: Any) -> Any:
        if isinstance(v, list):
            for i, c in enumerate(v):
                try:
                    _check_scalar(c)
                except ValueError as e:
                    raise ValueError(f"choice {i}: {e}") from None
            keys = [choice_key(c) for c in v]
            dupes = sorted({repr(c) for c, k in zip(v, keys) if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"choices must be different, repeated: {', '.join(dupes)}")
        return v


class Fixed(_Strict):
    """A parameter held at ``value``: passed to the model like a searched one, never searched."""

    type: Literal["fixed"] = "fixed"
    value: Scalar

    @field_validator("value", mode="before")
    @classmethod
    def _scalar(cls, v: Any) -> Any:
        return _check_scalar(v)


PARAM_KINDS = ("float", "int", "categorical", "fixed")


def _param_kind(v: Any) -> str | None:
    if isinstance(v, BaseModel):
        return {Bound: "float", IntParam: "int", Categorical: "categorical", Fixed: "fixed"}.get(type(v))
    if not isinstance(v, dict):
        return None
    if "type" in v:
        return v["type"] if v["type"] in PARAM_KINDS else None
    if "choices" in v:
        return "categorical"
    if "value" in v:
        return "fixed"
    return "float"


Param = Annotated[
    Union[Annotated[Bound, Tag("float")], Annotated[IntParam, Tag("int")],
          Annotated[Categorical, Tag("categorical")], Annotated[Fixed, Tag("fixed")]],
    Discriminator(_param_kind, custom_error_type="param_kind",
                  custom_error_message="expected {low, high} (type: float or int), {choices: [...]} or {value: ...}; "
                                       "type must be one of float, int, categorical, fixed"),
]
"""One entry of ``spec.space``: continuous :class:`Bound` (``{low, high, log}``, the default),
:class:`IntParam` (``type: int``), :class:`Categorical` (``choices``) or :class:`Fixed` (``value``)."""


class Objective(_Strict):
    """One objective: a model metric to minimize or maximize, with an optional target value."""

    metric: str
    goal: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None

    @field_validator("target")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class Constraint(_Strict):
    """``min <= metric <= max``; each bound becomes one ``g <= 0`` constraint."""

    metric: str
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Constraint":
        if self.max is None and self.min is None:
            raise ValueError("give at least one of max, min")
        for v in (self.max, self.min):
            if v is not None and not math.isfinite(v):
                raise ValueError("bounds must be finite numbers")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self


class Fidelity(_Strict):
    """One rung of the fidelity ladder (cheapest first; the last rung certifies).

    settings: model fidelity settings (grid, steps, dt, ...).
    budget:   evaluations spent searching at this rung (default: shared out by the ladder).
    promote_top_k: how many distinct feasible candidates go up to the next rung.
    """

    name: str
    settings: dict[str, Scalar] = Field(default_factory=dict)
    budget: int | None = Field(default=None, gt=0)
    promote_top_k: int | None = Field(default=None, gt=0)


class Budget(_Strict):
    evaluations: int = Field(gt=0)
    wall_time_hours: float | None = Field(default=None, gt=0)
    patience: int | None = Field(default=None, gt=0, description="generations without improvement before stopping")


class OptimizerSpec(_Strict):
    name: Literal["auto", "ngopt", "cma", "twopointsde", "random", "nsga2"] = "auto"
    population: int = Field(default=16, gt=0, le=4096)
    options: dict[str, Scalar] = Field(default_factory=dict)


class ToleranceSpec(_Strict):
    """How far a metric may move under a review perturbation: ``|a - b| <= atol + rtol * max(|a|, |b|)``."""

    rtol: float = Field(default=0.0, ge=0)
    atol: float = Field(default=0.0, ge=0)


class ReviewSpec(_Strict):
    """Adversarial review settings (:mod:`huntflow.engine.verify`).

    metric_abs_max:  a used metric beyond this magnitude is rejected.
    spot_check_top:  how many of a search generation's best candidates are verified (0: none).
    spot_check_rtol: the relative tolerance of a metric neither the spec nor the model sets.
    tolerances:      per metric, overriding the model's declared tolerance.
    perturbations:   the model's perturbations to verify under (default: those it marks default).
    verify_promoted: verify every candidate a promotion or certification promotes: by the
                     promotion's own finer-rung result where its rung performs the perturbation,
                     else by a check before it is launched (False: only contenders for the best
                     are verified; promoted candidates are trusted: benchmarks/RESULTS.md).
    """

    metric_abs_max: float = Field(default=1e12, gt=0)
    spot_check_top: int = Field(default=1, ge=0, le=64)
    spot_check_rtol: float = Field(default=1e-3, gt=0)
    tolerances: dict[str, ToleranceSpec] = Field(default_factory=dict)
    perturbations: list[str] | None = Field(default=None, max_length=8)
    verify_promoted: bool = True


class GatesSpec(_Strict):
    """Human decisions the campaign waits for (rows in ``hunt.gates``).

    promotion:  hold every promotion and certification generation until it is approved (a
                rejected one is failed, and the hunt goes on without those evaluations).
    completion: ask before completing; the campaign asks nothing new while the gate is pending,
                and a rejection keeps it running.
    """

    promotion: bool = False
    completion: bool = False


class CampaignSpec(_Strict):
    """A validated campaign. Build one with :func:`load_spec` / :func:`parse_spec`."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    title: str = ""
    description: str = ""
    model: ModelRef
    space: dict[str, Param] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)
    fidelities: list[Fidelity] = Field(default_factory=lambda: [Fidelity(name="default")], min_length=1)
    budget: Budget
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    reference_point: list[float] | None = None
    review: ReviewSpec = Field(default_factory=ReviewSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    seed: int = Field(default=0, ge=0, lt=2**31)
    priority: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    max_attempts: int = Field(default=3, gt=0, le=20)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Every model parameter, searched or fixed (``spec.space`` order)."""
        return tuple(self.space)

    @property
    def searched_names(self) -> tuple[str, ...]:
        """The parameters the optimizer searches (all but ``{value: ...}`` ones)."""
        return tuple(n for n, p in self.space.items() if not isinstance(p, Fixed))

    @property
    def optimizer_name(self) -> str:
        """The optimizer that runs: ``optimizer.name``, with ``auto`` resolved to ``ngopt`` for one
        objective and ``nsga2`` for several (benchmarks/RESULTS.md: on ZDT1 the scalarized NGOpt
        lost to random search, NSGA-II did not)."""
        if self.optimizer.name != "auto":
            return self.optimizer.name
        return "ngopt" if len(self.objectives) == 1 else "nsga2"

    @property
    def constraint_names(self) -> list[str]:
        """One name per ``g <= 0`` constraint: ``<metric>.max`` / ``<metric>.min``."""
        names = []
        for c in self.constraints:
            if c.max is not None:
                names.append(f"{c.metric}.max")
            if c.min is not None:
                names.append(f"{c.metric}.min")
        return names

    def constraint_values(self, metrics: dict[str, float]) -> list[float]:
        """g values (feasible when every one is <= 0) for a metrics dict."""
        values = []
        for c in self.constraints:
            if c.max is not None:
                values.append(float(metrics[c.metric]) - c.max)
            if c.min is not None:
                values.append(c.min - float(metrics[c.metric]))
        return values

    def objective_values(self, metrics: dict[str, float]) -> list[float]:
        """Objective values as minimized quantities (maximized metrics are negated)."""
        return [
            float(metrics[o.metric]) * (1.0 if o.goal == "minimize" else -1.0) for o in self.objectives
        ]

    def fingerprint(self) -> str:
        """A stable hash of the spec's content."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @model_validator(mode="after")
    def _against_model(self, info: ValidationInfo) -> "CampaignSpec":
        if info.context and info.context.get("stored"):
            return self  # checked against its model when it was stored (see parse_spec)
        from huntflow.engine import modelref

        names = self.param_names
        errors: list[str] = []
        if not self.searched_names:
            errors.append("space: every parameter is fixed; at least one must be searched")
        clash = sorted(set(names) & set(self.model.fixed))
        if clash:
            errors.append(f"model.fixed: {clash} are also searched in space")
        known, problems = modelref.check(self.model, names, [dict(f.settings) for f in self.fidelities])
        errors.extend(problems)
        if known is None:
            raise ValueError("\n".join(errors))
        metrics = known
        for i, o in enumerate(self.objectives):
            if o.metric not in metrics:
                errors.append(f"objectives.{i}.metric: unknown metric {o.metric!r} (model has {sorted(metrics)})")
        for i, c in enumerate(self.constraints):
            if c.metric not in metrics:
                errors.append(f"constraints.{i}.metric: unknown metric {c.metric!r} (model has {sorted(metrics)})")
        for m in self.review.tolerances:
            if m not in metrics:
                errors.append(f"review.tolerances.{m}: unknown metric {m!r} (model has {sorted(metrics)})")
        if self.review.perturbations is not None and not errors:
            from huntflow.engine.models.base import perturbations_of
            from huntflow.engine.verify import model_object

            model = model_object(self.model)
            for i, fid in enumerate(self.fidelities):
                offered = [p.name for p in perturbations_of(model, names, dict(self.model.fixed), dict(fid.settings))]
                for j, n in enumerate(self.review.perturbations):
                    if n not in offered:
                        errors.append(f"review.perturbations.{j}: unknown perturbation {n!r} at fidelity "
                                      f"{fid.name!r} (model {self.model.label} offers {', '.join(offered)})")
        if len(self.objectives) > 1:
            if self.reference_point is None:
                errors.append("reference_point: required with several objectives (for the hypervolume)")
            elif len(self.reference_point) != len(self.objectives):
                errors.append(
                    f"reference_point: needs {len(self.objectives)} values, got {len(self.reference_point)}"
                )
        if len({f.name for f in self.fidelities}) != len(self.fidelities):
            errors.append("fidelities: rung names must be unique")
        if errors:
            raise ValueError("\n".join(errors))
        return self

    @model_validator(mode="after")
    def _within_limits(self, info: ValidationInfo) -> "CampaignSpec":
        from huntflow.engine.spec_limits import check_limits

        errors = check_limits(self, model_memory=not (info.context and info.context.get("stored")))
        if errors:
            raise ValueError("\n".join(f"{field}: {message}" for field, message in errors))
        return self


def _format_errors(err: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for e in err.errors():
        parts = list(e["loc"])
        if len(parts) >= 3 and parts[0] == "space" and parts[2] in PARAM_KINDS:
            del parts[2]  # the union's tag: ``space.n.int.low`` reads ``space.n.low``
        loc = ".".join(str(p) for p in parts)
        msg = e["msg"].removeprefix("Value error, ")
        for line in msg.splitlines():
            # model-level errors carry their own "field: message" prefix
            if not loc and ": " in line:
                field, _, text = line.partition(": ")
                out.append((field, text))
            else:
                out.append((loc or "spec", line))
    return out


def parse_spec(data: Any, *, base_dir: str | Path | None = None, stored: bool = False) -> CampaignSpec:
    """Validate a spec given as a mapping (relative model paths resolve against ``base_dir``).

    ``stored=True`` is for a spec read back from a campaign row: it was checked against its
    model when it was stored, so the model (and with it JAX) is not loaded again, nor is its
    batch's memory checked against this machine; every other field check still runs.

    Raises:
        SpecError: listing every invalid field.
    """
    if not isinstance(data, dict):
        raise SpecError([("spec", f"expected a mapping at the top level, got {type(data).__name__}")])
    from huntflow.engine.spec_limits import check_raw

    raw_errors = check_raw(data)
    if raw_errors:
        raise SpecError(raw_errors)
    try:
        return CampaignSpec.model_validate(data, context={"base_dir": str(base_dir) if base_dir else None,
                                                          "stored": stored})
    except ValidationError as e:
        raise SpecError(_format_errors(e)) from None


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a YAML spec file.

    Raises:
        SpecError: the file is unreadable, too large, not UTF-8, not YAML (duplicate keys
            included), or invalid (each field named).
    """
    from huntflow.engine.spec_limits import read_spec_text, yaml_load

    path = Path(path)
    text = read_spec_text(path)
    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        raise SpecError([("file", f"{path} is not valid YAML: {' '.join(str(e).split())}")]) from None
    return parse_spec(data, base_dir=path.resolve().parent)
