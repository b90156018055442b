"""Review's perturbation checks on the engine alone: the old same-key re-run passes artefacts,
the declared perturbations reject them."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine import verify
from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.models.base import REPEAT, Perturbation, Tolerance, perturbations_of, tolerances_of
from huntflow.engine.spec import parse_spec
from huntflow.errors import SpecError

DECAY = {"slug": "decay", "model": {"name": "euler_decay"},
         "space": {"rate": {"low": 0.0, "high": 4.0}, "shift": {"low": -1.0, "high": 1.0}},
         "objectives": [{"metric": "f"}], "budget": {"evaluations": 16},
         "fidelities": [{"name": "coarse", "settings": {"dt": 0.5, "steps": 5}}]}
TRAP = {"slug": "trap", "model": {"name": "noise_trap", "fixed": {"noise": 0.01}},
        "space": {"x0": {"low": -1.0, "high": 1.0}, "x1": {"low": -1.0, "high": 1.0}},
        "objectives": [{"metric": "f"}], "budget": {"evaluations": 16}}


def _rerun(spec, check: verify.Check) -> dict[str, float]:
    names = spec.param_names
    params = np.array([[float(e["params"][n]) for n in names] for e in check.sources])
    out = evaluate_population(spec.model.name, names, params, seed=check.seed, fixed=check.fixed,
                              fidelity=check.settings, candidate_indices=np.asarray(check.key_indices))
    assert out.status[0] == 0
    return {k: float(v[0]) for k, v in out.metrics.items()}


def _row(spec, params: dict[str, float], index: int, metrics: dict[str, float]) -> dict:
    return {"evaluation_id": f"e{index}", "candidate_index": index, "params": params, "metrics": metrics,
            "param_hash": "h"}


def test_a_step_size_artefact_passes_the_old_repeat_check_and_fails_half_dt():
    spec = parse_spec(DECAY)
    x = np.array([[4.0, 0.0], [0.5, 0.0]])  # rate·dt = 2 (artefact) and 0.25 (honest)
    claimed = evaluate_population("euler_decay", spec.param_names, x, seed=1, fidelity={"dt": 0.5, "steps": 5})
    assert claimed.metrics["f"][0] == pytest.approx(-1.0)  # exact y(T) = e^-10 > 0: an artefact
    gen = {"kind": "search", "fidelity": 0, "seed": 1}
    for i in range(2):
        metrics = {k: float(v[i]) for k, v in claimed.metrics.items()}
        row = _row(spec, {"rate": float(x[i, 0]), "shift": 0.0}, i, metrics)
        (check,) = verify.plan(spec, gen, verify.next_round(spec, "search", [row], set(), set()))
        assert check.perturbation.name == "half_dt" and check.settings == {"dt": 0.25, "steps": 10}
        old = verify.compare(spec, "repeat", metrics, True, metrics)  # the old same-key re-run
        new = verify.compare(spec, "half_dt", metrics, True, _rerun(spec, check))
        assert old == []
        if i == 0:
            assert [v.severity for v in new] == ["high"] and "half_dt" in new[0].message
            assert new[0].details["claimed"] == pytest.approx(-1.0) and new[0].details["again"] == pytest.approx(0.0)
        else:
            assert new == []


def test_a_noise_lucky_candidate_passes_the_old_check_and_fails_another_noise_key():
    spec = parse_spec(TRAP)
    x = np.tile([[0.8, 0.0]], (64, 1))  # inside the trap: noise 200× the declared one
    out = evaluate_population("noise_trap", spec.param_names, x, seed=4)
    lucky = int(np.argmin(out.metrics["f"]))
    metrics = {k: float(v[lucky]) for k, v in out.metrics.items()}
    assert metrics["f"] < 0 < metrics["f_true"]  # the luckiest draw of 64 looks better than any true value
    row = _row(spec, {"x0": 0.8, "x1": 0.0}, lucky, metrics)
    (check,) = verify.plan(spec, {"kind": "search", "fidelity": 0, "seed": 4}, [row])
    assert check.perturbation.reseed and check.seed != 4 and check.key_indices == [lucky]
    same_key = verify.Check(REPEAT, 0, 4, check.fixed, check.settings, check.sources, check.key_indices)
    assert verify.compare(spec, "repeat", metrics, True, _rerun(spec, same_key)) == []
    (verdict,) = verify.compare(spec, "noise_key", metrics, True, _rerun(spec, check))
    assert verdict.severity == "high" and verdict.details["metric"] == "f"


def test_honest_noise_survives_another_key():
    spec = parse_spec({**TRAP, "space": {"x0": {"low": -1.0, "high": 0.5}, "x1": {"low": -1.0, "high": 1.0}}})
    rng = np.random.default_rng(0)
    x = rng.uniform([-1, -1], [0.5, 1], (256, 2))
    a = evaluate_population("noise_trap", spec.param_names, x, seed=9)
    b = evaluate_population("noise_trap", spec.param_names, x, seed=verify.verification_seed(9, 0))
    rejected = [i for i in range(len(x)) if verify.compare(spec, "noise_key", {"f": a.metrics["f"][i]}, True,
                                                            {"f": b.metrics["f"][i]})]
    assert rejected == []
    assert not np.array_equal(a.metrics["f"], b.metrics["f"])  # the noise was redrawn


def test_feasibility_that_does_not_survive_is_high_and_a_moved_constraint_alone_is_medium():
    spec = parse_spec({**DECAY, "constraints": [{"metric": "y_end", "max": 0.0}]})
    (flip,) = [v for v in verify.compare(spec, "half_dt", {"f": -1.0, "y_end": -1.0}, True,
                                          {"f": -1.0, "y_end": 0.5}) if v.details.get("feasibility")]
    assert flip.severity == "high" and "infeasible under half_dt" in flip.message
    moved = verify.compare(spec, "half_dt", {"f": 0.0, "y_end": -2.0}, True, {"f": 0.0, "y_end": -0.5})
    assert [(v.severity, v.details["metric"]) for v in moved] == [("medium", "y_end")]
    (failed,) = verify.compare(spec, "half_dt", {"f": 0.0, "y_end": -2.0}, False, None)
    assert failed.severity == "high" and "failed" in failed.message


def test_tolerances_come_from_the_spec_then_the_model_then_the_default():
    spec = parse_spec({**DECAY, "review": {"tolerances": {"f": {"rtol": 0.5}}}})
    assert verify.tolerance(spec, "f") == Tolerance(rtol=0.5, atol=0.0)
    assert verify.tolerance(spec, "y_end") == Tolerance(rtol=0.1, atol=0.05)  # the model's
    sphere = parse_spec({**DECAY, "model": {"name": "sphere"}, "space": {"x0": {"low": -1.0, "high": 1.0}},
                         "fidelities": [{"name": "default"}], "review": {"spot_check_rtol": 0.02}})
    assert verify.tolerance(sphere, "f") == Tolerance(rtol=0.02, atol=0.0)


def test_a_model_that_declares_nothing_gets_a_repeat_run():
    class Bare:  # an external model as another helper may add it: no review declarations
        name = "bare"

    (p,) = perturbations_of(Bare(), ("x",), {}, {})
    assert (p.name, p.default, p.reseed, dict(p.fidelity)) == ("repeat", True, False, {})
    assert tolerances_of(Bare(), ("x",), {}) == {}

    class Declares:
        name = "declares"

        def perturbations(self, param_names, fixed, fidelity):
            return (Perturbation("half_dt", "halved", fidelity={"dt": 0.5}),)

    names = [(p.name, p.default) for p in perturbations_of(Declares(), ("x",), {}, {})]
    assert names == [("half_dt", True), ("repeat", False)]  # repeat stays available, opt-in


def test_spec_names_perturbations_and_tolerances_of_the_model_only():
    spec = parse_spec({**DECAY, "review": {"perturbations": ["repeat", "half_dt"]}})
    assert [p.name for p in verify.chosen(spec, 0)] == ["repeat", "half_dt"]
    with pytest.raises(SpecError) as e:
        parse_spec({**DECAY, "review": {"perturbations": ["fine_grid"], "tolerances": {"g": {"rtol": 1}}}})
    text = str(e.value)
    assert "review.tolerances.g: unknown metric 'g'" in text
    with pytest.raises(SpecError) as e:
        parse_spec({**DECAY, "review": {"perturbations": ["fine_grid"]}})
    assert "review.perturbations.0: unknown perturbation 'fine_grid'" in str(e.value)
    assert "half_dt" in str(e.value)


def test_rounds_take_the_best_few_padded_to_a_fixed_shape_until_the_best_survivor_is_verified():
    spec = parse_spec({**DECAY, "review": {"spot_check_top": 2}})
    rows = [_row(spec, {"rate": 1.0, "shift": 0.0}, i, {"f": float(f), "y_end": 0.0})
            for i, f in enumerate([3.0, 1.0, 2.0, 0.5])]
    ids = lambda picked: [e["candidate_index"] for e in picked]  # noqa: E731
    first = verify.next_round(spec, "search", rows, set(), set())
    assert ids(first) == [3, 1]
    done = {e["evaluation_id"] for e in first}
    assert verify.next_round(spec, "search", rows, done, set()) == []  # the best survived: done
    assert ids(verify.next_round(spec, "search", rows, done, {"e3", "e1"})) == [2, 0]  # both rejected: next two
    assert verify.next_round(spec, "search", rows, done, {"e3"}) == []  # e1, verified, is the best left
    (check,) = verify.plan(spec, {"kind": "search", "fidelity": 0, "seed": 1}, rows[:1])
    assert ids(check.sources) == [0, 0]  # padded by repeating the last
    assert ids(verify.next_round(spec, "certification", rows, set(), set())) == [3, 1]
    (check,) = verify.plan(spec, {"kind": "certification", "fidelity": 0, "seed": 1}, rows[:1], 1)
    assert len(check.sources) == 2 and check.position == 1  # round 1 of one perturbation
    assert verify.next_round(spec, "verification", rows, set(), set()) == []
    none = parse_spec({**DECAY, "review": {"spot_check_top": 0}})
    assert verify.next_round(none, "search", rows, set(), set()) == []


def test_only_contenders_for_the_best_are_verified():
    spec = parse_spec({**DECAY, "constraints": [{"metric": "y_end", "max": 0.5}]})
    rows = [_row(spec, {"rate": 1.0, "shift": 0.0}, i, {"f": f, "y_end": y})
            for i, (f, y) in enumerate([(3.0, 0.0), (1.0, 0.0), (0.2, 0.9), (0.5, 0.0)])]
    ids = lambda picked: [e["candidate_index"] for e in picked]  # noqa: E731
    assert ids(verify.contenders(spec, rows, None)) == [3, 1, 0]  # feasible ones, best first (2 is infeasible)
    assert ids(verify.contenders(spec, rows, 1.0)) == [3]  # only what beats the rung's best so far
    assert verify.contenders(spec, rows, 0.5) == []  # a tie keeps the earlier (verified) best
    assert verify.next_round(spec, "search", rows, set(), set(), 0.5) == []
    assert ids(verify.next_round(spec, "search", rows, set(), set(), 1.0)) == [3]
    assert ids(verify.next_round(spec, "search", rows, set(), {"e3"}, 1.0)) == []  # rejected: nothing left to believe


def test_a_promotions_parents_are_checked_per_generation_in_a_fixed_shape():
    spec = parse_spec({**DECAY, "review": {"spot_check_top": 2}})
    a = {"generation_id": "ga", "fidelity": 0, "seed": 11}
    b = {"generation_id": "gb", "fidelity": 0, "seed": 22}
    rows_a = [_row(spec, {"rate": 1.0, "shift": 0.0}, i, {"f": 0.0, "y_end": 0.0}) for i in (4, 1, 6)]
    rows_b = [_row(spec, {"rate": 1.0, "shift": 0.0}, 2, {"f": 0.0, "y_end": 0.0})]
    planned = verify.plan_parents(spec, [(a, rows_a), (b, rows_b)])
    assert [(g["generation_id"], c.position) for g, c in planned] == [("ga", 32), ("ga", 33), ("gb", 34)]
    assert all(len(c.sources) == 2 for _, c in planned)  # padded to spot_check_top
    assert [c.key_indices for _, c in planned] == [[4, 1], [6, 6], [2, 2]]  # each row keeps its own key
    assert [c.seed for _, c in planned] == [11, 11, 22]  # half_dt: the parent generation's own seed
    many = [(dict(a, generation_id=f"g{i}"), rows_a) for i in range(20)]  # 40 batches of 2 would not fit
    planned = verify.plan_parents(spec, many)
    assert len(planned) <= verify.PARENT_SLOTS and len({len(c.sources) for _, c in planned}) == 1
    assert max(c.position for _, c in planned) < 64


CGL = {"slug": "cgl-ladder", "model": {"name": "cgl", "fixed": {"sigma": 0.0, "L": 80.0}},
       "space": {"alpha": {"low": 0.5, "high": 3.0}, "beta": {"low": -3.0, "high": -0.5}},
       "objectives": [{"metric": "log_prime_sse"}], "constraints": [{"metric": "h_norm", "max": 0.05}],
       "budget": {"evaluations": 64},
       "fidelities": [{"name": "coarse", "settings": {"grid": 32, "steps": 300, "dt": 0.1}},
                      {"name": "fine", "settings": {"grid": 64, "steps": 600, "dt": 0.05}}]}


def _fine(settings: dict, **more) -> dict:
    return {**CGL, **more, "fidelities": [CGL["fidelities"][0], {"name": "fine", "settings": settings}]}


def test_a_promotion_performs_the_step_halving_when_its_rung_composes_declared_refinements():
    spec = parse_spec(CGL)  # fine = the coarse rung with fine_grid then half_dt
    assert [p.name for p in verify.ladder(spec, 0, 1)] == ["half_dt"] and verify.explicit(spec, 0, 1) == []
    deeper = parse_spec(_fine({"grid": 128, "steps": 2400, "dt": 0.0125}))  # three halvings, two grid doublings
    assert [p.name for p in verify.ladder(deeper, 0, 1)] == ["half_dt"]
    assert [p.name for p in verify.ladder(parse_spec(_fine({"grid": 32, "steps": 600, "dt": 0.05})), 0, 1)] == ["half_dt"]
    for settings in ({"grid": 64, "steps": 300, "dt": 0.05},  # a shorter horizon
                     {"grid": 64, "steps": 300, "dt": 0.1},  # a finer grid only: half_dt is not performed
                     {"grid": 16, "steps": 600, "dt": 0.05}):  # a coarser grid
        other = parse_spec(_fine(settings))
        assert verify.ladder(other, 0, 1) == [] and verify.explicit(other, 0, 1) == ["half_dt"], settings
    noisy = parse_spec({**CGL, "model": {"name": "cgl", "fixed": {"sigma": 0.05, "L": 80.0}}})
    assert [p.name for p in verify.chosen(noisy, 0)] == ["half_dt", "noise_key"]
    assert verify.ladder(noisy, 0, 1) == []  # the promotion draws other keys: noise is mixed in, check explicitly
    both = parse_spec({**CGL, "review": {"perturbations": ["half_dt", "repeat"]}})
    assert verify.explicit(both, 0, 1) == ["repeat"]  # a repeat is never performed by a rung change


def test_parent_batches_leave_out_what_the_promotion_performs_and_keep_the_others_positions():
    spec = parse_spec({**CGL, "review": {"perturbations": ["half_dt", "repeat"]}})
    gen = {"generation_id": "ga", "fidelity": 0, "seed": 11}
    rows = [_row(spec, {"alpha": 1.0, "beta": -1.0}, i, {"log_prime_sse": 1.0, "h_norm": 0.0}) for i in (3, 5)]
    every = verify.plan_parents(spec, [(gen, rows)])  # one batch of spot_check_top = 1 per row and perturbation
    assert [(c.perturbation.name, c.position) for _, c in every] == [("half_dt", 32), ("repeat", 33),
                                                                      ("half_dt", 34), ("repeat", 35)]
    left = verify.plan_parents(spec, [(gen, rows)], to_fidelity=1)
    assert [(c.perturbation.name, c.position) for _, c in left] == [(c.perturbation.name, c.position)
                                                                      for _, c in every if c.perturbation.name == "repeat"]
    assert verify.plan_parents(parse_spec(CGL), [(gen, rows)], to_fidelity=1) == []


def test_a_repeated_perturbation_is_run_once():
    spec = parse_spec({**DECAY, "review": {"perturbations": ["half_dt", "repeat", "half_dt"]}})
    assert [p.name for p in verify.chosen(spec, 0)] == ["half_dt", "repeat"]


def test_the_ladder_tolerance_is_the_spec_override_then_the_models_rung_change_then_the_declared(tmp_path):
    (tmp_path / "ladder_tol_model.py").write_text(
        "from huntflow.engine.models.base import Tolerance\n"
        "from huntflow.engine.models.cgl import CGLModel\n"
        "class Wider(CGLModel):\n"
        "    def ladder_tolerances(self, param_names, fixed, lower, upper):\n"
        "        return {'log_prime_sse': Tolerance(rtol=2.0 * upper['grid'] / lower['grid'], atol=0.5)}\n"
        "MODEL = Wider()\n")
    declared = parse_spec(CGL)
    assert verify.ladder_tolerance(declared, "log_prime_sse", 0, 1) == verify.tolerance(declared, "log_prime_sse")
    wider = parse_spec({**CGL, "model": {"entrypoint": "ladder_tol_model:MODEL", "pythonpath": [str(tmp_path)],
                                         "fixed": CGL["model"]["fixed"]}})
    assert verify.ladder_tolerance(wider, "log_prime_sse", 0, 1) == Tolerance(rtol=4.0, atol=0.5)
    assert verify.ladder_tolerance(wider, "h_norm", 0, 1) == verify.tolerance(wider, "h_norm")
    pinned = parse_spec({**CGL, "review": {"tolerances": {"log_prime_sse": {"rtol": 0.1}}}})
    assert verify.ladder_tolerance(pinned, "log_prime_sse", 0, 1) == Tolerance(rtol=0.1, atol=0.0)
    # and compare uses it: a move inside the wider tolerance is no finding
    assert verify.compare(declared, "half_dt", {"log_prime_sse": 0.7, "h_norm": 0.0}, True,
                          {"log_prime_sse": 3.0, "h_norm": 0.0})
    assert verify.compare(wider, "half_dt", {"log_prime_sse": 0.7, "h_norm": 0.0}, True,
                          {"log_prime_sse": 3.0, "h_norm": 0.0},
                          {"log_prime_sse": verify.ladder_tolerance(wider, "log_prime_sse", 0, 1)}) == []
