"""Campaign KPIs (huntflow.engine.summary) on plain evaluation dicts."""

from __future__ import annotations

from huntflow.engine import summary
from huntflow.engine.spec import parse_spec


def _spec():
    return parse_spec({
        "slug": "kpi-front",
        "model": {"name": "zdt1"},
        "space": {"x0": {"low": 0.0, "high": 1.0}, "x1": {"low": 0.0, "high": 1.0}},
        "objectives": [{"metric": "f1"}, {"metric": "f2"}],
        "fidelities": [{"name": "coarse"}, {"name": "fine"}],
        "reference_point": [1.1, 1.1],
        "budget": {"evaluations": 64},
    })


def _e(fidelity, objectives, h, feasible=True, status="succeeded"):
    return {"fidelity": fidelity, "objectives": objectives, "objective": objectives[0], "param_hash": h,
            "feasible": feasible, "status": status}


def test_the_front_is_taken_at_the_highest_rung_with_a_feasible_evaluation():
    spec = _spec()
    coarse = [_e(0, [0.0, 0.0], "a"), _e(0, [0.5, 0.5], "b")]
    fine = [_e(1, [0.2, 0.8], "c"), _e(1, [0.8, 0.2], "d"), _e(1, [0.9, 0.9], "e"),
            _e(1, [0.2, 0.8], "c"),  # the same candidate again: listed once
            _e(1, [0.1, 0.1], "f", feasible=False), _e(1, [float("nan"), 0.0], "g"),
            _e(1, [0.0, 0.0], "h", status="failed")]
    # the coarse (0, 0) would dominate everything, but a coarse number is not a fine one
    assert summary.front(spec, coarse + fine) == [[0.2, 0.8], [0.8, 0.2]]
    rung, members = summary.front_members(spec, coarse + fine)
    assert rung == 1 and [m["param_hash"] for m in members] == ["c", "d"]
    # no feasible fine evaluation yet: the coarse front
    assert summary.front(spec, coarse + fine[4:]) == [[0.0, 0.0]]
    assert summary.front_members(spec, fine[4:]) == (None, [])


def test_promotion_deltas_pair_each_candidate_s_first_evaluation_at_consecutive_rungs():
    spec = parse_spec({**_spec().model_dump(mode="json"), "fidelities": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    evals = [_e(0, [1.0, 0.0], "p"), _e(0, [5.0, 0.0], "q"), _e(0, [9.0, 0.0], "lonely"),
             _e(0, [2.0, 0.0], "r", status="failed"), _e(1, [1.5, 0.0], "p"), _e(1, [7.0, 0.0], "r"),
             _e(1, [1.9, 0.0], "p"),  # p again at rung 1: its first evaluation there counts
             _e(2, [1.2, 0.0], "p", feasible=False), _e(2, [4.0, 0.0], "q")]
    got = [(d["param_hash"], d["from"], d["to"], d["objective_low"], d["objective_high"], d["feasible_high"])
           for d in summary.promotion_deltas(spec, evals)]
    assert got == [("p", "a", "b", 1.0, 1.5, True), ("p", "b", "c", 1.5, 1.2, False), ("q", "a", "c", 5.0, 4.0, True)]
