"""The NSGA-II backend: constrained ranking, crowding, convergence on ZDT1, determinism and
checkpoints through the Hunt, and what it is (not) told."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize.nsga2 import polynomial_mutation, sbx
from huntflow.engine.optimize.pareto import constrained_ranks, crowding_distance, hypervolume
from huntflow.engine.spec import parse_spec
from huntflow.errors import SpecError

from test_optimize_hunt import _drive, _spec

ZDT1_HV_OPTIMUM = 1.1 * 1.1 - 1.0 / 3.0  # the true front f2 = 1 - sqrt(f1) against (1.1, 1.1)


def _zdt_spec(budget, seed=0, dim=3, optimizer="nsga2", options=None):
    return parse_spec({
        "slug": "zdt-nsga",
        "model": {"name": "zdt1"},
        "space": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(dim)},
        "objectives": [{"metric": "f1"}, {"metric": "f2"}],
        "reference_point": [1.1, 1.1],
        "budget": {"evaluations": budget},
        "optimizer": {"population": 8, "options": options or {}, **({"name": optimizer} if optimizer else {})},
        "seed": seed,
    })


def _zdt1(c, dim):
    x = np.array([c[f"x{i}"] for i in range(dim)])
    g = 1 + 9 * x[1:].sum() / (dim - 1)
    return {"f1": float(x[0]), "f2": float(g * (1 - np.sqrt(x[0] / g)))}


def _run(spec, dim=3):
    hunt = Hunt.start(spec)
    while (a := hunt.ask()) is not None:
        hunt.tell(a.ask_id, [Outcome("ok", _zdt1(c, dim)) for c in a.candidates])
    return hunt


def test_constrained_ranks_put_every_feasible_front_before_the_infeasible_by_violation():
    objs = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0], [-5.0, -5.0], [-9.0, -9.0], [0.5, 0.5]])
    viol = np.array([0.0, 0.0, 0.0, 0.0, 0.3, 0.1, 0.0])
    # feasible: (0,1), (1,0), (.5,.5) are the front; (1,1) behind (.5,.5); (2,2) behind that;
    # the infeasible points, however good their objectives, come after, less violation first
    assert constrained_ranks(objs, viol).tolist() == [0, 0, 1, 2, 4, 3, 0]
    assert constrained_ranks(objs, np.zeros(7)).tolist() == [2, 2, 3, 4, 1, 0, 2]


def test_crowding_distance_is_the_normalized_neighbour_gap_with_infinite_extremes():
    pts = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(pts)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)
    assert np.isinf(crowding_distance(pts[:2])).all()


def test_variation_operators_stay_in_the_unit_cube_and_move_off_the_parents():
    rng = np.random.default_rng(0)
    p1, p2 = np.array([0.0, 0.2, 0.9, 1.0]), np.array([0.1, 0.8, 0.9, 0.0])
    children = np.array([polynomial_mutation(sbx(p1, p2, 15.0, 1.0, rng), 20.0, 0.25, rng) for _ in range(500)])
    assert children.min() >= 0.0 and children.max() <= 1.0
    # coordinate 2 is equal in both parents: only mutation moves it; coordinate 1 spreads around both
    assert 0 < np.mean(children[:, 2] != 0.9) < 0.5
    assert children[:, 1].min() < 0.2 and children[:, 1].max() > 0.8
    forced = polynomial_mutation(p1, 20.0, 0.0, rng, force=True)
    assert np.sum(forced != p1) == 1


def test_nsga2_spreads_along_the_zdt1_front():
    hunt = _run(_zdt_spec(256))
    s = hunt.summary()
    front = np.array([v["objectives"] for v in s["front"]])
    hv = hypervolume(front, np.array([1.1, 1.1]))
    assert s["hypervolume"] == pytest.approx(hv)
    random_hv = _run(_zdt_spec(256, optimizer="random")).summary()["hypervolume"]
    assert hv > 0.6 * ZDT1_HV_OPTIMUM > random_hv
    assert front[:, 0].max() - front[:, 0].min() > 0.5  # a spread front, not one corner
    assert hunt.backend.generations >= 256 // 8 - 1  # one selection per told batch


def test_same_seed_same_candidates_and_checkpoints_resume_exactly():
    spec = _spec(optimizer={"name": "nsga2", "population": 8}, budget={"evaluations": 64})
    _, full = _drive(spec)
    assert _drive(spec)[1] == full
    assert _drive(spec, kill_at=(3, 8, 9))[1] == full
    assert _drive(_spec(optimizer={"name": "nsga2", "population": 8}, budget={"evaluations": 64}, seed=6))[1] != full


def test_rejected_and_failed_candidates_never_enter_the_population():
    spec = _spec(optimizer={"name": "nsga2", "population": 8}, budget={"evaluations": 96})
    hunt = Hunt.start(spec)
    statuses = []
    while (a := hunt.ask()) is not None:
        outs = []
        for c in a.candidates:
            x = np.array([c[n] for n in spec.param_names])
            metrics = {"f": float(np.sum((x - 1.0) ** 2)), "g": float(np.sum(x) - 3.0)}
            if x[0] > 1.0:
                outs.append(Outcome("failed", {}, "blowup"))
            elif x[1] < -1.0:  # review: untrustworthy, however good it looks
                outs.append(Outcome("rejected", {"f": -1e9, "g": -1e9}, "spot_check"))
            else:
                outs.append(Outcome("ok", metrics))
        statuses += [o.status for o in outs]
        hunt.tell(a.ask_id, outs)
    assert statuses.count("failed") > 0 and statuses.count("rejected") > 0
    members = np.array([hunt.space.decode(u) for u in hunt.backend.pop_u])
    assert len(members) == 8
    assert (members[:, 0] <= 1.0).all() and (members[:, 1] >= -1.0).all()
    # constraint handling: feasible points were found and fill the population
    assert hunt.summary()["best_objective"] is not None
    assert (hunt.backend.pop_viol == 0).all()


@pytest.mark.parametrize("value", [1, 2.5, True, "eight"])
def test_a_bad_population_size_option_is_rejected_by_name(value):
    # options are checked when the spec is parsed (campaign add), whichever optimizer is named
    for optimizer in ("nsga2", "ngopt"):
        with pytest.raises(SpecError, match="optimizer.options.nsga2_size"):
            _zdt_spec(64, optimizer=optimizer, options={"nsga2_size": value})


def test_auto_runs_nsga2_with_several_objectives_and_ngopt_with_one():
    from huntflow.engine.optimize.backends import NevergradBackend
    from huntflow.engine.optimize.nsga2 import NSGA2Backend

    spec = _zdt_spec(64, optimizer=None)
    assert spec.optimizer.name == "auto" and spec.optimizer_name == "nsga2"
    hunt = Hunt.start(spec)
    assert isinstance(hunt.backend, NSGA2Backend)
    assert {d["optimizer"] for d in hunt.ask().decisions} == {"nsga2"}
    single = _spec(optimizer={"population": 8})
    assert single.optimizer_name == "ngopt" and isinstance(Hunt.start(single).backend, NevergradBackend)
    assert _zdt_spec(64, optimizer="ngopt").optimizer_name == "ngopt"  # an explicit name is kept
