"""The stellarator model (huntflow/engine/models/stellarator): names, validation, and real VMEC++
evaluations at the package's very-low-fidelity preset (a few seconds each)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("constellaration", reason="the 'stellarator' extra (constellaration, VMEC++) is not installed")

import numpy as np  # noqa: E402
from constellaration import problems  # noqa: E402
from constellaration.geometry import surface_rz_fourier as rz  # noqa: E402

from huntflow.engine.models import stellarator as st  # noqa: E402
from huntflow.engine.models.stellarator import boundary as sb  # noqa: E402
from huntflow.engine.models.stellarator.evaluate import EvaluationFailed, run  # noqa: E402

VERY_LOW = {"preset": "very_low_fidelity"}


def test_masked_coefficients_are_the_packages_mask():
    b = rz.set_max_mode_numbers(sb.initial_boundary("p1"), max_poloidal_mode=3, max_toroidal_mode=2)
    mask = rz.build_mask(b, max_poloidal_mode=3, max_toroidal_mode=2)
    names = st.masked_coefficients(3, 2)
    assert len(names) == int(np.sum(mask.r_cos)) + int(np.sum(mask.z_sin)) == len(set(names))
    for name in names:
        kind, m, n = st.parse_coefficient(name)
        assert st.coefficient_name(kind, m, n) == name
        assert bool(mask.r_cos[m, n + 2])


def test_params_round_trip_the_initial_guess():
    b = sb.initial_boundary("p1")
    fixed, space = sb.fixed_and_space("p1", 2, 2)
    x0 = sb.params_from_boundary(b, 2, 2)
    again = sb.boundary_from_params({**fixed, **x0})
    padded = rz.set_max_mode_numbers(b, max_poloidal_mode=2, max_toroidal_mode=2)
    np.testing.assert_allclose(again.r_cos, padded.r_cos)
    np.testing.assert_allclose(again.z_sin, padded.z_sin)
    for name, bound in space.items():
        assert bound["low"] < x0[name] < bound["high"]
    st.validate(tuple(space), fixed, VERY_LOW)


def test_validate_names_the_field():
    fixed, space = sb.fixed_and_space("p1", 2, 1)
    names = tuple(space)
    cases = [
        (names[1:], fixed, VERY_LOW, f"space: masked coefficients ['{names[0]}']"),
        ((*names, "rc_m3_n0"), fixed, VERY_LOW, "space: ['rc_m3_n0'] are not masked"),
        (names, {**fixed, "problem": "p4"}, VERY_LOW, "model.fixed.problem"),
        (names, {**fixed, "max_toroidal_mode": 0}, VERY_LOW, "model.fixed.max_toroidal_mode"),
        (names, fixed, {"preset": "medium"}, "settings.preset"),
        (names, fixed, {"preset": "low_fidelity", "evaluate": True}, "settings.evaluate"),
    ]
    for params, fx, fid, message in cases:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            st.validate(params, fx, fid)
    # a coefficient frozen in model.fixed need not be searched
    st.validate(names[1:], {**fixed, names[0]: 0.0}, VERY_LOW)


def test_p1_metrics_are_the_problem_classes():
    fixed, _ = sb.fixed_and_space("p1", 2, 2)
    x0 = sb.params_from_boundary(sb.initial_boundary("p1"), 2, 2)
    metrics, boundary = run({**fixed, **x0}, VERY_LOW)
    assert set(st.metric_names((), fixed)) <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    p = problems.GeometricalProblem()
    assert metrics["objective"] == metrics["max_elongation"] > 1.0
    violations = [metrics[f"violation_{v}"] for v in st.VIOLATIONS["p1"]]
    assert metrics["feasibility"] == pytest.approx(max(0.0, *violations))
    # the rotating ellipse is far from P1's triangularity bound (-0.5): infeasible, scored 0
    assert metrics["average_triangularity"] > -0.5 and metrics["feasible"] == 0.0 and metrics["score"] == 0.0
    assert metrics["violation_average_triangularity"] == pytest.approx(
        (metrics["average_triangularity"] - p._average_triangularity_upper_bound) / 0.5)
    assert metrics["evaluated"] == 0.0 and boundary.n_field_periods == 3


def test_a_boundary_vmec_cannot_start_from_is_invalid_boundary():
    fixed, _ = sb.fixed_and_space("p1", 2, 2)
    x0 = sb.params_from_boundary(sb.initial_boundary("p1"), 2, 2)
    with pytest.raises(EvaluationFailed) as info:
        run({**fixed, **x0, "rc_m1_n0": 0.9}, VERY_LOW)  # minor radius 0.9 at major radius 1
    assert info.value.failure_category == "invalid_boundary"


def _p3_metrics(l_grad_b: float, aspect: float, **overrides) -> dict:
    # a P3-feasible point: iota/NFP >= 0.25, log10 qi <= -3.5, mirror <= 0.25, compression <= 0.9, well >= 0
    m = {"aspect_ratio": aspect, "aspect_ratio_over_edge_rotational_transform": aspect / 0.9, "max_elongation": 3.0,
         "axis_rotational_transform_over_n_field_periods": 0.3, "edge_rotational_transform_over_n_field_periods": 0.3,
         "axis_magnetic_mirror_ratio": 0.1, "edge_magnetic_mirror_ratio": 0.2, "average_triangularity": 0.0,
         "vacuum_well": 0.01, "minimum_normalized_magnetic_gradient_scale_length": l_grad_b, "qi": 1e-4,
         "flux_compression_in_regions_of_bad_curvature": 0.5}
    return {**m, **overrides}


def test_p3_front_score_is_the_packages_hypervolume_of_the_feasible_members():
    from huntflow.engine.models.stellarator.front import score_certified_metrics

    # (-L_gradB, A) against (1, 20): (-2, 10) alone spans 3 x 10; (-4, 15) adds (4 - 2) x (20 - 15)
    front = [_p3_metrics(2.0, 10.0), _p3_metrics(4.0, 15.0)]
    infeasible = _p3_metrics(9.0, 5.0, qi=1e-2)  # log10 qi = -2 > -3.5: left out, as the package does
    out = score_certified_metrics([*front, infeasible])
    assert out["score"] == pytest.approx(3 * 10 + 2 * 5)
    assert out["feasibility"][2] > 0.01 and max(out["feasibility"][:2]) <= 0.01
    assert score_certified_metrics([infeasible])["score"] == 0.0


def test_p1_example_is_the_box_its_header_prints_with_a_feasibility_phase():
    from pathlib import Path

    from huntflow.engine.spec import load_spec

    spec = load_spec(Path(__file__).parents[2] / "examples" / "stellarator_p1.yaml")
    fixed, space = sb.fixed_and_space("p1", 2, 2, half_width=0.5, alpha=0.5)
    assert dict(spec.model.fixed) == fixed
    assert {n: (b.low, b.high) for n, b in spec.space.items()} == {n: (b["low"], b["high"]) for n, b in space.items()}
    assert spec.optimizer.options["feasibility_first"] is True
