"""The augmented Lagrangian: loss formula, multiplier and penalty updates, and how a hunt uses them."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize.alm import RHO_MAX, AlmState, alm_loss, alm_update
from huntflow.engine.spec import parse_spec


def test_alm_loss_equals_objective_plus_quadratic_penalty_when_lambda_is_zero():
    # lambda = 0: f + rho/2 * sum max(0, g)^2
    assert alm_loss(3.0, [0.5, -2.0], [0.0, 0.0], 4.0) == pytest.approx(3.0 + 0.5 * 4.0 * 0.25)


def test_alm_loss_matches_the_phr_formula_by_hand():
    f, g, lam, rho = 1.5, np.array([0.2, -1.0, -0.1]), np.array([2.0, 3.0, 0.5]), 2.0
    # constraint 1: shifted = 1.0 + 0.2 -> 1/2*2*(1.2^2 - 1^2) = 0.44
    # constraint 2: max(0, 1.5 - 1.0) = 0.5 -> 1*(0.25 - 2.25) = -2.0
    # constraint 3: max(0, 0.25 - 0.1) = 0.15 -> 1*(0.0225 - 0.0625) = -0.04
    assert alm_loss(f, g, lam, rho) == pytest.approx(1.5 + 0.44 - 2.0 - 0.04)


def test_alm_loss_of_an_inactive_constraint_is_minus_lambda_squared_over_two_rho():
    assert alm_loss(0.0, [-100.0], [3.0], 2.0) == pytest.approx(-9.0 / 4.0)


def test_alm_loss_rejects_mismatched_lengths_and_bad_rho():
    with pytest.raises(ValueError):
        alm_loss(0.0, [1.0, 2.0], [0.0], 1.0)
    with pytest.raises(ValueError):
        alm_loss(0.0, [1.0], [0.0], 0.0)


def test_update_raises_lambda_by_rho_times_mean_violation_and_doubles_rho():
    s = alm_update(AlmState(lam=(1.0, 0.5), rho=4.0, outer=2), [0.25, -1.0])
    assert s.lam == pytest.approx((2.0, 0.0))  # max(0, 1 + 4*0.25), max(0, 0.5 - 4)
    assert s.rho == 8.0
    assert s.outer == 3


def test_update_keeps_rho_when_violation_is_within_tolerance():
    s = alm_update(AlmState(lam=(0.0,), rho=4.0), [0.01])
    assert s.rho == 4.0
    assert s.lam == pytest.approx((0.04,))
    assert alm_update(AlmState(lam=(0.0,), rho=4.0), [0.0101]).rho == 8.0


def test_update_caps_rho_at_rho_max():
    s = AlmState.initial(1)
    for _ in range(40):
        s = alm_update(s, [1.0])
    assert s.rho == RHO_MAX
    assert AlmState.initial(2) == AlmState(lam=(0.0, 0.0), rho=1.0, outer=0)


def _constrained_spec(pop=8, budget=48):
    return parse_spec(
        {
            "slug": "cs",
            "model": {"name": "constrained_sphere"},
            "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
            "objectives": [{"metric": "f"}],
            "constraints": [{"metric": "g", "max": 0.0}],
            "budget": {"evaluations": budget},
            "optimizer": {"name": "cma", "population": pop, "options": {"prefilter": False}},
            "seed": 3,
        }
    )


def test_hunt_annotations_follow_the_alm_updates_one_outer_iteration_per_search_generation():
    spec = _constrained_spec()
    hunt = Hunt.start(spec)
    lam, rho = [0.0], 1.0
    for outer in range(6):
        ask = hunt.ask()
        x = np.array([[c[n] for n in spec.param_names] for c in ask.candidates])
        f, g = ((x - 1.0) ** 2).sum(1), x.sum(1)
        notes = hunt.tell(ask.ask_id, [Outcome("ok", {"f": float(a), "g": float(b)}) for a, b in zip(f, g)])
        for note, fi, gi in zip(notes, f, g):
            assert note["alm_outer"] == outer
            assert note["alm_lambda"] == pytest.approx(lam)
            assert note["alm_rho"] == rho
            assert note["alm_loss"] == pytest.approx(alm_loss(fi, [gi], lam, rho))
            assert note["feasible"] == (gi <= 0)
        g_bar = float(np.mean(g))
        lam = [max(0.0, lam[0] + rho * g_bar)]
        rho = min(RHO_MAX, rho * 2) if g_bar > 1e-2 else rho
    assert hunt.summary()["alm"] == {"lambda": pytest.approx(lam), "rho": rho, "outer": 6}


def test_failed_evaluations_leave_the_alm_state_alone():
    spec = _constrained_spec()
    hunt = Hunt.start(spec)
    ask = hunt.ask()
    notes = hunt.tell(ask.ask_id, [Outcome("failed", {}, "blowup")] * len(ask.candidates))
    assert all(n["alm_loss"] is None and n["feasible"] is False for n in notes)
    assert all(n["failure_category"] == "blowup" for n in notes)
    assert hunt.summary()["alm"] == {"lambda": [0.0], "rho": 1.0, "outer": 0}


def _far_constraint_spec(feasibility_first):
    data = {"slug": "ff", "model": {"name": "constrained_sphere"},
            "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
            "objectives": [{"metric": "f"}], "constraints": [{"metric": "g", "max": 0.0}],
            "budget": {"evaluations": 400},
            "optimizer": {"name": "cma", "population": 8,
                          "options": {"prefilter": False, "feasibility_first": feasibility_first}},
            "seed": 5}
    return parse_spec(data)


def test_feasibility_first_tells_the_violation_and_holds_the_alm_until_a_feasible_point():
    spec = _far_constraint_spec(True)
    hunt = Hunt.start(spec)
    phase_told, feasible_seen = [], False
    for _ in range(50):
        ask = hunt.ask()
        x = np.array([[c[n] for n in spec.param_names] for c in ask.candidates])
        f, g = ((x - 1.0) ** 2).sum(1), 5.0 - x.sum(1)  # feasible only near the corner (2, 2, 2)
        before = hunt.summary()["alm"]
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": float(a), "g": float(b)}) for a, b in zip(f, g)])
        if not feasible_seen:
            assert hunt.summary()["alm"] == before == {"lambda": [0.0], "rho": 1.0, "outer": 0}
            phase_told.extend(np.maximum(0.0, g))
            assert hunt.loss_range == (pytest.approx(min(phase_told)), pytest.approx(max(phase_told)))
            feasible_seen = bool((g <= 0).any())
        else:
            assert hunt.summary()["alm"]["outer"] >= 1  # the ALM runs from the next ask on
            break
    assert feasible_seen


def test_feasibility_first_must_be_a_boolean():
    from huntflow.errors import SpecError

    with pytest.raises(SpecError, match="optimizer.options.feasibility_first.*must be true or false"):
        _far_constraint_spec("yes")
    assert Hunt.start(_far_constraint_spec(False)).feasibility_first is False
