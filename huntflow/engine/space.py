"""The search space: a spec's parameters as the optimizers see them and as the models get them.

Every optimizer works in the unit cube ``[0, 1]^D``, one coordinate per *searched* parameter
(fixed ones are not searched). :meth:`SearchSpace.decode` maps a point to the user's values, a
deterministic function of ``u`` alone:

* continuous ``{low, high}``: ``low + u (high - low)``, or log-linear with ``log: true`` (the
  very formula used before the other kinds existed, so all-continuous campaigns ask the same
  candidates as before);
* integer ``{type: int, low, high}``: the ``high - low + 1`` values split the axis into equal
  bins, value ``low + floor(u * size)``; with ``log: true`` the axis runs over
  ``[log(low - 1/2), log(high + 1/2)]`` and the value is the rounded ``exp``, so each integer's
  share of the axis is proportional to its share of the log range;
* categorical ``{choices: [...]}``: ``k`` equal bins, the choice of index ``floor(u * k)``.

Discrete coordinates are then *canonical*: :meth:`canonical` snaps them to the centre of their
value's bin, and :meth:`encode` maps values back to that centre, so the prefilter and the
exploit / recover steering see one point per distinct candidate. Distances for the k-NN
prefilter and recover use :meth:`features`: a categorical becomes a one-hot block scaled so that
two different choices are at distance 1 and equal ones at 0 (choices have no order); every
other coordinate is ``u`` itself.

What evaluation rows store, and function / command models receive, are the decoded user values
(ints as ``int``, a categorical as the choice itself, a fixed parameter as its value); a JAX
model receives :meth:`model_vector` (categoricals as their index, as floats).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from huntflow.engine.spec import Bound, CampaignSpec, Categorical, Fixed, IntParam, choice_key

ONE_HOT_SCALE = 1.0 / math.sqrt(2.0)  # two different choices end up at distance 1


def continuous_values(u: np.ndarray, low: np.ndarray, high: np.ndarray, log: np.ndarray) -> np.ndarray:
    """Unit-cube coordinates to continuous values, linearly or log-linearly (clipped to the bounds)."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    lin = low + u * (high - low)
    safe_low = np.where(log, low, 1.0)
    safe_high = np.where(log, high, 1.0)
    logv = np.exp(np.log(safe_low) + u * (np.log(safe_high) - np.log(safe_low)))
    return np.clip(np.where(log, logv, lin), low, high)


@dataclass(frozen=True)
class Dim:
    """One searched coordinate. ``size``: number of values (0 for a continuous one)."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float
    high: float
    log: bool
    size: int
    choices: tuple = ()


class SearchSpace:
    """The spec's parameters: the unit cube the optimizers search and the values models get."""

    def __init__(self, space: Mapping[str, Any]):
        self.names: tuple[str, ...] = tuple(space)
        dims: list[Dim] = []
        self.fixed: dict[str, Any] = {}
        for name, p in space.items():
            if isinstance(p, Fixed):
                self.fixed[name] = p.value
            elif isinstance(p, IntParam):
                dims.append(Dim(name, "int", float(p.low), float(p.high), bool(p.log), int(p.high - p.low + 1)))
            elif isinstance(p, Categorical):
                dims.append(Dim(name, "categorical", 0.0, float(len(p.choices) - 1), False, len(p.choices),
                                tuple(p.choices)))
            elif isinstance(p, Bound):
                dims.append(Dim(name, "float", float(p.low), float(p.high), bool(p.log), 0))
            else:
                raise TypeError(f"space.{name}: unknown parameter kind {type(p).__name__}")
        self.dims: tuple[Dim, ...] = tuple(dims)
        self.searched: tuple[str, ...] = tuple(d.name for d in dims)
        self._low = np.array([d.low if d.kind == "float" else 0.0 for d in dims])
        self._high = np.array([d.high if d.kind == "float" else 1.0 for d in dims])
        self._log = np.array([d.log and d.kind == "float" for d in dims], dtype=bool)
        self._discrete = np.array([d.kind != "float" for d in dims], dtype=bool)
        self.has_categorical = any(d.kind == "categorical" for d in dims)

    @classmethod
    def of(cls, spec: CampaignSpec) -> "SearchSpace":
        """The search space of a validated spec."""
        return cls(spec.space)

    @property
    def dim(self) -> int:
        """Number of searched coordinates."""
        return len(self.dims)

    @property
    def discrete(self) -> bool:
        """Whether any searched coordinate is an integer or a categorical."""
        return bool(self._discrete.any())

    # ------------------------------------------------------------ optimizer side
    def _index(self, d: Dim, u: float) -> int:
        """The value index (0 .. size-1) of coordinate ``u`` on a discrete axis."""
        u = min(max(float(u), 0.0), 1.0)
        if d.kind == "int" and d.log:
            a, b = math.log(d.low - 0.5), math.log(d.high + 0.5)
            v = math.floor(math.exp(a + u * (b - a)) + 0.5)
            return int(min(max(v, d.low), d.high) - d.low)
        return min(d.size - 1, int(math.floor(u * d.size)))

    def _centre(self, d: Dim, index: int) -> float:
        if d.kind == "int" and d.log:
            a, b = math.log(d.low - 0.5), math.log(d.high + 0.5)
            return (math.log(d.low + index) - a) / (b - a)
        return (index + 0.5) / d.size

    def decode(self, u: np.ndarray) -> list[Any]:
        """A unit-cube point (``dim``,) to the values of every parameter, in ``names`` order.

        Floats are Python ``float``, integers ``int``, categoricals the choice itself, fixed
        parameters their value.
        """
        u = np.asarray(u, dtype=float).reshape(self.dim)
        cont = continuous_values(u, self._low, self._high, self._log)
        searched: dict[str, Any] = {}
        for j, d in enumerate(self.dims):
            if d.kind == "float":
                searched[d.name] = float(cont[j])
            elif d.kind == "int":
                searched[d.name] = int(d.low) + self._index(d, u[j])
            else:
                searched[d.name] = d.choices[self._index(d, u[j])]
        return [searched[n] if n in searched else self.fixed[n] for n in self.names]

    def candidate(self, u: np.ndarray) -> dict[str, Any]:
        """:meth:`decode` as ``{name: value}``."""
        return dict(zip(self.names, self.decode(u)))

    def canonical(self, u: np.ndarray) -> np.ndarray:
        """``u`` with every discrete coordinate moved to the centre of its value's bin (a copy;
        continuous coordinates are left exactly as they are)."""
        out = np.array(u, dtype=float, copy=True).reshape(self.dim)
        for j, d in enumerate(self.dims):
            if d.kind != "float":
                out[j] = self._centre(d, self._index(d, out[j]))
        return out

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """User values to their canonical unit-cube point (inverse of :meth:`decode`).

        Raises:
            ValueError: a value is missing or not one of its parameter's values.
        """
        values = self.user_params(params)
        out = np.empty(self.dim)
        for j, d in enumerate(self.dims):
            v = values[d.name]
            if d.kind == "float":
                if d.log:
                    out[j] = (math.log(v) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
                else:
                    out[j] = (v - d.low) / (d.high - d.low)
            elif d.kind == "int":
                out[j] = self._centre(d, int(v) - int(d.low))
            else:
                out[j] = self._centre(d, self.choice_index(d.name, v))
        return np.clip(out, 0.0, 1.0)

    def features(self, u: np.ndarray) -> np.ndarray:
        """Coordinates for distances (k-NN prefilter, recover): ``u``, with each categorical
        replaced by a scaled one-hot block. ``u`` itself when there is no categorical.

        Args:
            u: (n, dim) or (dim,) points.

        Returns:
            (n, F) array (F = dim when no parameter is categorical).
        """
        u = np.atleast_2d(np.asarray(u, dtype=float))
        if not self.has_categorical:
            return u
        cols = []
        for j, d in enumerate(self.dims):
            if d.kind != "categorical":
                cols.append(u[:, j:j + 1])
                continue
            idx = np.minimum(d.size - 1, np.floor(np.clip(u[:, j], 0.0, 1.0) * d.size).astype(int))
            cols.append(np.eye(d.size)[idx] * ONE_HOT_SCALE)
        return np.concatenate(cols, axis=1)

    def min_steps(self) -> np.ndarray:
        """(dim,) smallest useful perturbation per coordinate: one bin for a discrete one (a
        smaller step would round back to the same value), 0 for a continuous one."""
        steps = np.zeros(self.dim)
        for j, d in enumerate(self.dims):
            if d.kind != "float":
                steps[j] = 1.0 / d.size  # the mean bin width (log-scale integers have unequal bins)
        return steps

    # ------------------------------------------------------------ model side
    def choice_index(self, name: str, value: Any) -> int:
        """The index of ``value`` among the choices of categorical ``name``.

        Raises:
            ValueError: ``value`` is not one of its choices.
        """
        d = next(d for d in self.dims if d.name == name)
        key = choice_key(value) if isinstance(value, (str, int, float, bool)) else None
        for i, c in enumerate(d.choices):
            if choice_key(c) == key:
                return i
        raise ValueError(f"params.{name}: {value!r} is not one of the choices {list(d.choices)}")

    def user_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stored params as the user's values (ints as ``int``, a categorical as its choice, a
        fixed parameter as its value even when absent), in ``names`` order.

        Raises:
            ValueError: a searched parameter is missing or has a value it cannot take (the
                message names it: ``params.<name>: ...``).
        """
        out: dict[str, Any] = {}
        kinds = {d.name: d for d in self.dims}
        for n in self.names:
            if n in self.fixed:
                out[n] = self.fixed[n]
                continue
            if n not in params:
                raise ValueError(f"params.{n}: missing")
            v, d = params[n], kinds[n]
            if d.kind == "categorical":
                out[n] = d.choices[self.choice_index(n, v)]
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ValueError(f"params.{n}: expected a finite number, got {v!r}")
            if d.kind == "int":
                if v != int(v):
                    raise ValueError(f"params.{n}: expected an integer, got {v!r}")
                out[n] = int(v)
            else:
                out[n] = float(v)
        return out

    def model_vector(self, params: Mapping[str, Any]) -> list[float]:
        """One candidate as a JAX model's parameter vector (``names`` order): numbers as floats,
        a categorical as its choice index, a fixed bool as 1.0/0.0, a fixed string as 0.0 (the
        index of its only choice).

        Raises:
            ValueError: as :meth:`user_params`.
        """
        values = self.user_params(params)
        kinds = {d.name: d.kind for d in self.dims}
        out = []
        for n in self.names:
            v = values[n]
            if kinds.get(n) == "categorical":
                out.append(float(self.choice_index(n, v)))
            elif isinstance(v, str):
                out.append(0.0)
            else:
                out.append(float(v))
        return out

    def model_matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(P, len(names)) float64 of :meth:`model_vector` for each candidate's params."""
        return np.array([self.model_vector(p) for p in rows], dtype=np.float64).reshape(len(rows), len(self.names))
