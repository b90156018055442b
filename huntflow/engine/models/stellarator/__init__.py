"""The ConStellaration stellarator problems (P1, P2, P3) as a huntflow function model.

What is hunted is a plasma boundary, a stellarator-symmetric ``SurfaceRZFourier`` of Proxima
Fusion's ``constellaration`` package (optional extra ``stellarator``). The parameters are its
masked Fourier coefficients, named ``rc_m{m}_n{n}`` (``r_cos``) and ``zs_m{m}_n{n}`` (``z_sin``)
with a negative ``n`` spelt ``nm{|n|}`` (``rc_m1_nm2`` is ``r_cos[m=1, n=-2]``); the mask is the
package's (``surface_rz_fourier.build_mask``: ``m >= 1`` and every ``|n| <= N``, or ``m = 0``
and ``1 <= n <= N``). ``model.fixed`` holds ``problem`` (p1/p2/p3), ``n_field_periods``,
``max_poloidal_mode``, ``max_toroidal_mode`` and the frozen ``major_radius`` (``r_cos[0, 0]``);
a coefficient may be frozen there too. Every masked coefficient is searched or frozen.

The metrics are the package's own, computed by its problem classes (:mod:`.evaluate`); the
fidelity rung's ``preset`` is a VMEC++ preset, and ``evaluate: true`` (with ``high_fidelity``)
scores through ``problem.evaluate`` itself. This module imports only the standard library, so
registering and validating a spec never loads VMEC++; the function runs in worker processes.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Mapping

PROBLEMS = ("p1", "p2", "p3")
PRESETS = ("very_low_fidelity", "low_fidelity", "high_fidelity", "from_boundary_resolution")
FIXED_KEYS = ("problem", "n_field_periods", "max_poloidal_mode", "max_toroidal_mode", "major_radius")
COEFFICIENT = re.compile(r"^(rc|zs)_m(\d+)_n(m?)(\d+)$")

VIOLATIONS = {
    # the order of each problem's _normalized_constraint_violations (constellaration/problems.py)
    "p1": ("aspect_ratio", "average_triangularity", "edge_rotational_transform"),
    "p2": ("aspect_ratio", "edge_rotational_transform", "log10_qi", "edge_magnetic_mirror_ratio",
           "max_elongation"),
    "p3": ("edge_rotational_transform", "log10_qi", "edge_magnetic_mirror_ratio",
           "flux_compression_in_regions_of_bad_curvature", "vacuum_well"),
}
PHYSICS = (
    # constellaration.forward_model.ConstellarationMetrics
    "aspect_ratio", "aspect_ratio_over_edge_rotational_transform", "max_elongation",
    "axis_rotational_transform_over_n_field_periods", "edge_rotational_transform_over_n_field_periods",
    "axis_magnetic_mirror_ratio", "edge_magnetic_mirror_ratio", "average_triangularity", "vacuum_well",
    "minimum_normalized_magnetic_gradient_scale_length",
)
QI = ("qi", "log10_qi")
FLUX_COMPRESSION = ("flux_compression_in_regions_of_bad_curvature",)


def coefficient_name(kind: str, m: int, n: int) -> str:
    """``rc``/``zs`` and the mode numbers -> the parameter name (``rc_m1_nm2``)."""
    return f"{kind}_m{m}_n{'m' if n < 0 else ''}{abs(n)}"


def parse_coefficient(name: str) -> tuple[str, int, int] | None:
    """The inverse of :func:`coefficient_name` (``None`` for any other name)."""
    hit = COEFFICIENT.match(name)
    if hit is None:
        return None
    kind, m, minus, n = hit.groups()
    return kind, int(m), -int(n) if minus else int(n)


def masked_coefficients(max_poloidal_mode: int, max_toroidal_mode: int) -> tuple[str, ...]:
    """Every coefficient the package's mask frees at these mode limits, ``r_cos`` first."""
    modes = [(0, n) for n in range(1, max_toroidal_mode + 1)]
    modes += [(m, n) for m in range(1, max_poloidal_mode + 1) for n in range(-max_toroidal_mode, max_toroidal_mode + 1)]
    return tuple(coefficient_name(kind, m, n) for kind in ("rc", "zs") for m, n in modes)


def metric_names(param_names: tuple[str, ...], fixed: Mapping[str, Any]) -> list[str]:
    """The metrics reported for ``fixed['problem']`` (every problem's, for a spec being checked)."""
    problem = str(fixed.get("problem", "p1")).lower()
    if problem not in PROBLEMS:
        problem = "p1"
    names = ["feasibility", "feasible", "evaluated"]
    if problem != "p3":
        names += ["objective", "score"]
    names += [f"violation_{v}" for v in VIOLATIONS[problem]]
    names += list(PHYSICS)
    if problem in ("p2", "p3"):
        names += list(QI)
    if problem == "p3":
        names += list(FLUX_COMPRESSION)
    return names


def _int(fixed: Mapping[str, Any], key: str, low: int) -> int:
    value = fixed.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise ValueError(f"model.fixed.{key} must be an integer >= {low}, got {value!r}")
    return int(value)


def validate(param_names: tuple[str, ...], fixed: Mapping[str, Any], fidelity: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the field when the spec cannot run (before anything is stored)."""
    if importlib.util.find_spec("constellaration") is None:
        raise ValueError("model stellarator needs the 'stellarator' extra: pip install 'huntflow[stellarator]'")
    problem = fixed.get("problem")
    if problem not in PROBLEMS:
        raise ValueError(f"model.fixed.problem must be one of {list(PROBLEMS)}, got {problem!r}")
    _int(fixed, "n_field_periods", 1)
    max_m, max_n = _int(fixed, "max_poloidal_mode", 1), _int(fixed, "max_toroidal_mode", 1)
    radius = fixed.get("major_radius")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise ValueError(f"model.fixed.major_radius must be a number > 0, got {radius!r}")
    masked = set(masked_coefficients(max_m, max_n))
    frozen = {k for k in fixed if k not in FIXED_KEYS}
    for name in sorted(frozen):
        if name not in masked:
            raise ValueError(f"model.fixed.{name}: not a masked coefficient at these mode limits, nor one of {list(FIXED_KEYS)}")
        if isinstance(fixed[name], bool) or not isinstance(fixed[name], (int, float)):
            raise ValueError(f"model.fixed.{name} must be a number, got {fixed[name]!r}")
    unknown = sorted(set(param_names) - masked)
    if unknown:
        raise ValueError(f"space: {unknown} are not masked coefficients at max_poloidal_mode={max_m}, "
                         f"max_toroidal_mode={max_n} (names like rc_m1_n0, zs_m1_nm1)")
    missing = sorted(masked - set(param_names) - frozen)
    if missing:
        raise ValueError(f"space: masked coefficients {missing} are neither searched nor frozen in model.fixed")
    unknown_settings = sorted(set(fidelity) - {"preset", "evaluate"})
    if unknown_settings:
        raise ValueError(f"settings {unknown_settings} unknown (known: preset, evaluate)")
    preset = fidelity.get("preset", "low_fidelity")
    if preset not in PRESETS:
        raise ValueError(f"settings.preset must be one of {list(PRESETS)}, got {preset!r}")
    if fidelity.get("evaluate", False) not in (True, False):
        raise ValueError("settings.evaluate must be true or false")
    if fidelity.get("evaluate") and preset != "high_fidelity":
        raise ValueError("settings.evaluate: problem.evaluate always runs at high_fidelity; set preset: high_fidelity")


MODEL = {
    "function": "huntflow.engine.models.stellarator.evaluate:evaluate",
    "metrics": metric_names,
    "validate": validate,
    # VMEC++ runs single-threaded: one evaluation per worker process
    "workers": 2,
    "walltime_seconds": 1800,
}
"""The registration mapping (``REGISTRY.register_external("stellarator", MODEL)``)."""
