"""Parameters <-> ``SurfaceRZFourier`` boundaries, initial guesses and search boxes.

Everything geometric is the ``constellaration`` package's: its rotating-ellipse and near-axis
initial guesses, ``set_max_mode_numbers``, ``build_mask`` and the spectral scaling
``compute_infinity_norm_spectrum_scaling_fun`` its own augmented-Lagrangian runner searches in
(``exp(-alpha * max(|m|, |n|))``: high modes get narrow intervals).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from constellaration import initial_guess, problems
from constellaration.geometry import surface_rz_fourier as rz

from huntflow.engine.models.stellarator import FIXED_KEYS, coefficient_name, masked_coefficients, parse_coefficient

PROBLEM_CLASSES = {
    "p1": problems.GeometricalProblem,
    "p2": problems.SimpleToBuildQIStellarator,
    "p3": problems.MHDStableQIStellarator,
}


def problem_for(name: str):
    """The package's problem object for ``p1``/``p2``/``p3``."""
    return PROBLEM_CLASSES[name]()


def boundary_from_params(params: Mapping[str, Any]) -> rz.SurfaceRZFourier:
    """The boundary a candidate's params (searched coefficients + ``model.fixed``) describe.

    Raises:
        pydantic.ValidationError / ValueError: the package refuses the coefficients.
    """
    max_m, max_n = int(params["max_poloidal_mode"]), int(params["max_toroidal_mode"])
    r_cos = np.zeros((max_m + 1, 2 * max_n + 1))
    z_sin = np.zeros_like(r_cos)
    r_cos[0, max_n] = float(params["major_radius"])
    for name in masked_coefficients(max_m, max_n):
        kind, m, n = parse_coefficient(name)
        (r_cos if kind == "rc" else z_sin)[m, n + max_n] = float(params[name])
    return rz.SurfaceRZFourier(r_cos=r_cos, z_sin=z_sin, n_field_periods=int(params["n_field_periods"]),
                               is_stellarator_symmetric=True)


def params_from_boundary(boundary: rz.SurfaceRZFourier, max_poloidal_mode: int, max_toroidal_mode: int) -> dict[str, float]:
    """The masked coefficients of ``boundary`` cut or padded to the mode limits."""
    b = rz.set_max_mode_numbers(boundary, max_poloidal_mode=max_poloidal_mode, max_toroidal_mode=max_toroidal_mode)
    out = {}
    for name in masked_coefficients(max_poloidal_mode, max_toroidal_mode):
        kind, m, n = parse_coefficient(name)
        out[name] = float((b.r_cos if kind == "rc" else b.z_sin)[m, n + max_toroidal_mode])
    return out


def initial_boundary(problem: str) -> rz.SurfaceRZFourier:
    """The package's own starting points (its optimization_examples/launch_alm_*.py)."""
    if problem == "p1":
        return initial_guess.generate_rotating_ellipse(aspect_ratio=4.0, elongation=3.0, rotational_transform=0.9,
                                                       n_field_periods=3)
    if problem == "p2":
        return initial_guess.generate_nae(aspect_ratio=10.0, max_elongation=5.0, rotational_transform=0.75,
                                          mirror_ratio=0.25, n_field_periods=3, max_poloidal_mode=1, max_toroidal_mode=1)
    return initial_guess.generate_nae(aspect_ratio=15.0, max_elongation=4.0, rotational_transform=0.75,
                                      mirror_ratio=0.25, n_field_periods=3, max_poloidal_mode=1, max_toroidal_mode=1)


def fixed_and_space(problem: str, max_poloidal_mode: int, max_toroidal_mode: int, *, half_width: float = 0.5,
                    alpha: float = 1.5, boundary: rz.SurfaceRZFourier | None = None) -> tuple[dict, dict]:
    """``model.fixed`` and ``space`` for a campaign around ``boundary`` (default: the problem's
    initial guess): each coefficient ``x0 +- half_width * exp(-alpha * max(|m|, |n|))``, the
    package runner's first trust region (its ``bounds_initial``, ``infinity_norm_spectrum_scaling``)."""
    b = initial_boundary(problem) if boundary is None else boundary
    x0 = params_from_boundary(b, max_poloidal_mode, max_toroidal_mode)
    fixed = {"problem": problem, "n_field_periods": int(b.n_field_periods), "max_poloidal_mode": max_poloidal_mode,
             "max_toroidal_mode": max_toroidal_mode, "major_radius": float(b.r_cos[0, b.max_toroidal_mode])}
    space = {}
    for name, value in x0.items():
        _, m, n = parse_coefficient(name)
        width = half_width * float(rz.compute_infinity_norm_spectrum_scaling_fun(
            poloidal_modes=np.array([m]), toroidal_modes=np.array([n]), alpha=alpha)[0])
        space[name] = {"low": round(value - width, 6), "high": round(value + width, 6)}
    assert set(fixed) == set(FIXED_KEYS)
    return fixed, space


__all__ = ["boundary_from_params", "coefficient_name", "fixed_and_space", "initial_boundary", "params_from_boundary",
           "problem_for"]
