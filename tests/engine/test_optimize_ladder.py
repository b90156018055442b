"""The fidelity ladder: plan, promotion size, identity, dedupe, certification of the same params."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize.ladder import Stage, param_hash, plan_ladder, promotion_k, rank_for_promotion
from huntflow.engine.spec import parse_spec


@pytest.mark.parametrize("budget, expected", [(1, 3), (29, 3), (31, 4), (100, 10), (155, 16), (200, 20), (5000, 20)])
def test_promotion_k_is_ten_percent_clamped_to_3_and_20(budget, expected):
    assert promotion_k(budget) == expected


def test_promotion_k_override_wins():
    assert promotion_k(1000, 5) == 5


def test_single_rung_plan_searches_the_whole_budget():
    assert plan_ladder(100, [None], [None]) == [Stage("search", 0, 100)]


def test_two_rung_plan_reserves_the_certification():
    stages = plan_ladder(200, [None, None], [None, None])
    assert [s.kind for s in stages] == ["search", "promote"]
    b = stages[0].count
    assert stages[1].count == promotion_k(b)
    assert b + stages[1].count == 200


def test_three_rung_plan_shares_the_budget_and_honours_given_values():
    stages = plan_ladder(400, [100, None, 999], [None, 7, None])
    assert stages[0] == Stage("search", 0, 100)
    assert stages[1] == Stage("promote", 0, 10)
    assert stages[3] == Stage("promote", 1, 7)
    assert stages[2].count == 400 - 100 - 10 - 7
    assert sum(s.count for s in stages) == 400


def test_plan_rejects_a_budget_too_small_for_the_ladder():
    with pytest.raises(ValueError, match="too small"):
        plan_ladder(5, [None, None, None], [None, None, None])


def test_param_hash_rounds_to_ten_significant_digits():
    names = ("a", "b")
    assert param_hash([1.0, 2.0], names) == param_hash([1.0 + 1e-12, 2.0], names)
    assert param_hash([1.0, 2.0], names) != param_hash([1.0 + 1e-8, 2.0], names)
    assert param_hash([1.0, 2.0], names) != param_hash([1.0, 2.0], ("b", "a"))


def test_rank_for_promotion_puts_feasible_best_first_then_least_violation():
    obj = np.array([[5.0], [1.0], [0.0], [3.0]])
    viol = np.array([0.0, 0.0, 2.0, 0.5])
    assert rank_for_promotion(obj, viol).tolist() == [1, 0, 3, 2]


def _ladder_spec(budget=160, rungs=3, pop=8, top_k=None, optimizer="cma"):
    fids = [{"name": f"r{i}", "settings": {"bias": 0.3 * (rungs - 1 - i)}} for i in range(rungs)]
    if top_k is not None:
        fids[0]["promote_top_k"] = top_k
    return parse_spec(
        {
            "slug": "ladder",
            "model": {"name": "sphere"},
            "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
            "objectives": [{"metric": "f"}],
            "fidelities": fids,
            "budget": {"evaluations": budget},
            "optimizer": {"name": optimizer, "population": pop},
            "seed": 11,
        }
    )


def _f(x, bias):
    x = np.asarray(x)
    return float(np.sum(x**2) + bias * np.mean(np.sin(3 * x)))


def _run(spec, duplicate_first=False):
    hunt = Hunt.start(spec)
    asks = []
    while not hunt.is_finished():
        ask = hunt.ask()
        assert ask is not None, "a hunt with nothing in flight must always ask"
        bias = spec.fidelities[ask.fidelity].settings.get("bias", 0.0)
        outs = [Outcome("ok", {"f": _f([c[n] for n in spec.param_names], bias)}) for c in ask.candidates]
        asks.append((ask, hunt.tell(ask.ask_id, outs)))
    return hunt, asks


def test_ladder_promotes_distinct_top_k_and_certifies_exactly_the_same_params():
    spec = _ladder_spec()
    hunt, asks = _run(spec)
    kinds = [a.kind for a, _ in asks]
    assert kinds.count("promotion") == 1 and kinds.count("certification") == 1
    by_hash = {}
    for a, notes in asks:
        for c, n in zip(a.candidates, notes):
            by_hash.setdefault((a.fidelity, n["param_hash"]), []).append(c)
    stages = hunt.stages
    promo = next(a for a, _ in asks if a.kind == "promotion")
    cert = next(a for a, _ in asks if a.kind == "certification")
    assert len(promo.candidates) == stages[1].count == promotion_k(stages[0].count)
    assert len(cert.candidates) == stages[3].count
    for ask, rung in ((promo, 0), (cert, 1)):
        hashes = [d["parent_hash"] for d in ask.decisions]
        assert len(set(hashes)) == len(hashes)
        for c, d in zip(ask.candidates, ask.decisions):
            assert d["from_fidelity"] == rung
            assert c in by_hash[(rung, d["parent_hash"])]  # bit-identical params
    # the promoted ones are the best of rung 0
    rung0 = sorted(
        ((n["objective"], n["param_hash"]) for a, notes in asks if a.fidelity == 0 for n in notes)
    )
    assert [d["parent_hash"] for d in promo.decisions] == [h for _, h in rung0[: len(promo.candidates)]]
    s = hunt.summary()
    assert s["best_certified"] and s["best_fidelity"] == 2
    assert len(s["certified"]) == len(cert.candidates)
    for view in s["certified"]:
        parent = hunt.evals[view["delta"]["parent_eval"]]
        assert view["delta"]["objectives"][0] == pytest.approx(view["objectives"][0] - parent["objectives"][0])


def test_promote_top_k_from_the_spec_wins():
    spec = _ladder_spec(top_k=4)
    _, asks = _run(spec)
    assert len(next(a for a, _ in asks if a.kind == "promotion").candidates) == 4


def test_promotion_dedupes_repeated_params():
    spec = _ladder_spec(rungs=2, budget=60, optimizer="cma")
    hunt = Hunt.start(spec)
    first = hunt.ask()
    # tell an identical outcome for a duplicated point by asking, then forging no duplicates:
    # re-evaluated params share a hash, so promotion must list each hash once
    outs = [Outcome("ok", {"f": 1.0}) for _ in first.candidates]
    hunt.tell(first.ask_id, outs)
    dup = hunt.evals[0]
    for _ in range(3):
        hunt.evals.append(dict(dup))  # the same point evaluated again at rung 0
    while True:
        ask = hunt.ask()
        if ask.kind != "search":
            break
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": 2.0}) for _ in ask.candidates])
    hashes = [d["parent_hash"] for d in ask.decisions]
    assert ask.kind == "certification"
    assert len(hashes) == len(set(hashes))
    assert hashes.count(dup["hash"]) == 1


def test_promotion_waits_for_in_flight_search_of_its_rung():
    spec = _ladder_spec(rungs=2, budget=40, pop=8)
    hunt = Hunt.start(spec)
    asks = []
    while (a := hunt.ask()) is not None:
        asks.append(a)
    assert all(a.kind == "search" for a in asks)
    assert hunt.pending == [a.ask_id for a in asks]
    for a in asks:
        hunt.tell(a.ask_id, [Outcome("ok", {"f": 1.0}) for _ in a.candidates])
    assert hunt.ask().kind == "certification"
