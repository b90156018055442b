"""The hunt's contract: determinism, exact resume from any checkpoint, bounds, optimizers,
failures and rejections, tell errors, multi-objective summaries and budget extension."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.models.base import Status
from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize.pareto import hypervolume, nondominated_mask
from huntflow.engine.spec import parse_spec


def _spec(**over):
    base = {
        "slug": "hunt-test",
        "model": {"name": "constrained_sphere"},
        "space": {"x0": {"low": -2.0, "high": 2.0}, "x1": {"low": -2.0, "high": 2.0}, "x2": {"low": 0.01, "high": 10.0, "log": True}},
        "objectives": [{"metric": "f"}],
        "constraints": [{"metric": "g", "max": 0.0}],
        "budget": {"evaluations": 96},
        "optimizer": {"name": "ngopt", "population": 8},
        "seed": 5,
    }
    base.update(over)
    return parse_spec(base)


def _outcome(spec, cand, fidelity):
    """A deterministic fake simulator with failures and review rejections in parts of the space."""
    x = np.array([cand[n] for n in spec.param_names])
    if x[0] > 1.2:
        return Outcome("failed", {}, "blowup")
    bias = float(spec.fidelities[fidelity].settings.get("bias", 0.0))
    metrics = {"f": float(np.sum((x - 1.0) ** 2) + bias * np.mean(np.sin(3 * x))), "g": float(np.sum(x) - 3.0)}
    if x[1] < -1.8:
        return Outcome("rejected", metrics, "spot_check")
    return Outcome("ok", metrics)


def _drive(spec, kill_at=(), roundtrip_every=False, in_flight=2):
    """Run to the end keeping up to ``in_flight`` asks outstanding; at each event index in
    ``kill_at`` the hunt is replaced by ``Hunt.loads`` of its checkpoint. Returns the event log."""
    hunt = Hunt.start(spec)
    log, queue, event = [], [], 0

    def checkpoint(h):
        nonlocal event
        event += 1
        if roundtrip_every or event in kill_at:
            return Hunt.loads(h.dumps())
        return h

    while not hunt.is_finished():
        ask = hunt.ask() if len(queue) < in_flight else None
        if ask is not None:
            queue.append(ask)
            log.append(("ask", ask.ask_id, ask.kind, ask.fidelity, ask.candidates, ask.decisions, ask.meta))
            hunt = checkpoint(hunt)
            continue
        assert queue, "nothing in flight and nothing asked: the hunt is stuck"
        ask = queue.pop(0)
        notes = hunt.tell(ask.ask_id, [_outcome(spec, c, ask.fidelity) for c in ask.candidates])
        log.append(("tell", ask.ask_id, notes))
        hunt = checkpoint(hunt)
    return hunt, log


def test_same_spec_and_seed_ask_the_same_candidates():
    spec = _spec(budget={"evaluations": 48})
    _, a = _drive(spec)
    _, b = _drive(spec)
    assert a == b
    _, c = _drive(_spec(seed=6, budget={"evaluations": 48}))
    assert c != a


@pytest.fixture(scope="module")
def ladder_run():
    spec = _spec(
        fidelities=[{"name": "low", "settings": {"bias": 0.4}}, {"name": "high"}],
        optimizer={"name": "ngopt", "population": 8, "options": {"prefilter_min_data": 16}},
    )
    return spec, _drive(spec)[1]


@pytest.mark.parametrize("kill_at", [(1,), (2,), (3, 4), (7,), (12, 13, 20)])
def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(ladder_run, kill_at):
    spec, full = ladder_run
    assert len(full) > max(kill_at)
    assert {e[2] for e in full if e[0] == "ask"} == {"search", "certification"}
    assert any(n["status"] == "failed" for e in full if e[0] == "tell" for n in e[2])
    _, resumed = _drive(spec, kill_at=kill_at)
    assert resumed == full


def test_checkpoint_round_trip_after_every_ask_and_tell_changes_nothing():
    spec = _spec(fidelities=[{"name": "a", "settings": {"bias": 0.5}}, {"name": "b", "settings": {"bias": 0.2}}, {"name": "c"}])
    h1, full = _drive(spec)
    h2, resumed = _drive(spec, roundtrip_every=True)
    assert resumed == full
    assert h1.summary() == h2.summary()
    json.dumps(h1.summary())


def test_loads_rejects_bytes_that_are_not_a_checkpoint():
    with pytest.raises(ValueError):
        Hunt.loads(b"not a pickle")


@pytest.mark.parametrize("name", ["ngopt", "cma", "twopointsde", "random"])
def test_each_optimizer_stays_within_bounds_and_finds_feasible_points(name):
    spec = _spec(optimizer={"name": name, "population": 8}, budget={"evaluations": 64})
    hunt, log = _drive(spec)
    seen = [c for e in log if e[0] == "ask" for c in e[4]]
    assert len(seen) == 64
    for c in seen:
        for n, b in spec.space.items():
            assert b.low <= c[n] <= b.high
    s = hunt.summary()
    assert s["finished"] and s["evaluations_told"] == 64 and s["best_objective"] is not None
    assert s["best_certified"]  # one rung: certified by construction


def test_log_scale_bounds_are_searched_uniformly_in_log_space():
    spec = _spec(optimizer={"name": "random", "population": 8}, budget={"evaluations": 64})
    _, log = _drive(spec)
    logs = np.log10([c["x2"] for e in log if e[0] == "ask" for c in e[4]])
    assert logs.min() < -1.7 and logs.max() > 0.7
    assert np.median(logs) == pytest.approx(-0.5, abs=0.2)  # log10 of the geometric mean


def test_failed_and_rejected_outcomes_are_recorded_not_invented():
    spec = _spec(budget={"evaluations": 64}, optimizer={"name": "random", "population": 8})
    hunt, log = _drive(spec)
    notes = [n for e in log if e[0] == "tell" for n in e[2]]
    failed = [n for n in notes if n["status"] == "failed"]
    rejected = [n for n in notes if n["status"] == "rejected"]
    assert failed and all(n["alm_loss"] is None and n["objectives"] is None and n["failure_category"] == "blowup" for n in failed)
    assert rejected and all(not n["feasible"] and n["alm_loss"] is None for n in rejected)
    s = hunt.summary()
    assert s["evaluations_failed"] == len(failed) and s["evaluations_rejected"] == len(rejected)


def test_nonfinite_ok_metrics_are_recorded_as_failed():
    spec = _spec()
    hunt = Hunt.start(spec)
    ask = hunt.ask()
    outs = [Outcome("ok", {"f": math.nan, "g": 0.0})] + [Outcome("ok", {"f": 1.0, "g": -1.0})] * (len(ask.candidates) - 1)
    notes = hunt.tell(ask.ask_id, outs)
    assert notes[0]["status"] == "failed" and notes[0]["failure_category"] == "nonfinite"
    assert notes[1]["feasible"]


def test_tell_rejects_unknown_ids_wrong_counts_and_missing_metrics_without_changing_state():
    hunt = Hunt.start(_spec())
    ask = hunt.ask()
    with pytest.raises(KeyError):
        hunt.tell(ask.ask_id + 100, [])
    with pytest.raises(ValueError):
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": 1.0, "g": 0.0})])
    with pytest.raises(ValueError):
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": 1.0})] * len(ask.candidates))
    with pytest.raises(ValueError):
        hunt.tell(ask.ask_id, [Outcome("weird", {})] * len(ask.candidates))
    assert hunt.pending == [ask.ask_id] and hunt.evals == []
    hunt.tell(ask.ask_id, [Outcome("ok", {"f": 1.0, "g": 0.0})] * len(ask.candidates))
    with pytest.raises(KeyError):
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": 1.0, "g": 0.0})] * len(ask.candidates))


def test_extend_budget_reopens_a_finished_single_rung_hunt():
    spec = _spec(budget={"evaluations": 32})
    hunt, _ = _drive(spec)
    assert hunt.is_finished() and hunt.ask() is None
    hunt.extend_budget(20)
    assert not hunt.is_finished()
    sizes = []
    while (a := hunt.ask()) is not None:
        sizes.append(len(a.candidates))
        hunt.tell(a.ask_id, [_outcome(spec, c, 0) for c in a.candidates])
    assert sizes == [8, 8, 4]
    assert hunt.is_finished() and hunt.summary()["evaluations_told"] == 52
    with pytest.raises(ValueError):
        hunt.extend_budget(0)


def test_extend_budget_on_a_finished_ladder_searches_more_and_certifies_new_candidates():
    spec = _spec(fidelities=[{"name": "low", "settings": {"bias": 0.4}}, {"name": "high"}], budget={"evaluations": 60})
    hunt, _ = _drive(spec)
    first = {v["param_hash"] for v in hunt.summary()["certified"]}
    k = hunt.stages[-1].count
    hunt.extend_budget(k + 16)
    kinds = []
    while not hunt.is_finished():
        a = hunt.ask()
        kinds.append(a.kind)
        hunt.tell(a.ask_id, [_outcome(spec, c, a.fidelity) for c in a.candidates])
    assert kinds == ["search", "search", "certification"]
    s = hunt.summary()
    hashes = [v["param_hash"] for v in s["certified"]]
    assert len(hashes) == len(set(hashes)) and first < set(hashes)
    assert s["evaluations_asked"] == 60 + k + 16


def test_prefilter_never_rejects_more_than_its_cap_and_tells_the_rejections():
    spec = _spec(
        budget={"evaluations": 80},
        constraints=[{"metric": "g", "max": -4.0}],
        optimizer={
            "name": "random",
            "population": 8,
            "options": {"prefilter_threshold": 1.0, "prefilter_max_reject_fraction": 0.25, "prefilter_min_data": 16},
        },
    )
    hunt, log = _drive(spec, in_flight=1)
    asks = [e for e in log if e[0] == "ask"]
    active = [a for a in asks if a[6]["prefilter"]["active"]]
    assert active, "the prefilter never became active"
    for a in asks:
        assert len(a[4]) == len(a[5])
        pre = a[6]["prefilter"]
        assert pre["rejected"] <= pre["cap"] == 2
        if pre["active"]:
            assert pre["rejected"] == 2  # threshold 1.0 rejects whatever the cap allows
            kept = {json.dumps(c, sort_keys=True) for c in a[4]}
            assert all(json.dumps(r["params"], sort_keys=True) not in kept for r in pre["rejected_candidates"])
            assert all(d["prefilter"]["p_feasible"] is not None for d in a[5])
    assert hunt.summary()["prefilter_rejected"] == 2 * len(active)
    assert hunt.summary()["evaluations_told"] == 80  # rejections do not spend the budget


def test_prefilter_with_zero_fraction_rejects_nothing():
    spec = _spec(
        budget={"evaluations": 48},
        constraints=[{"metric": "g", "max": -4.0}],
        optimizer={"name": "random", "population": 8, "options": {"prefilter_threshold": 1.0, "prefilter_max_reject_fraction": 0.0}},
    )
    hunt, _ = _drive(spec, in_flight=1)
    assert hunt.summary()["prefilter_rejected"] == 0


def _zdt1_spec(optimizer="ngopt", goal2="minimize", budget=64):
    return parse_spec(
        {
            "slug": "zdt",
            "model": {"name": "zdt1"},
            "space": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(3)},
            "objectives": [{"metric": "f1"}, {"metric": "f2", "goal": goal2}],
            "reference_point": [1.1, 10.0 if goal2 == "minimize" else -10.0],
            "budget": {"evaluations": budget},
            "optimizer": {"name": optimizer, "population": 8},
            "seed": 2,
        }
    )


def _zdt1(c):
    x = np.array([c["x0"], c["x1"], c["x2"]])
    g = 1 + 9 * x[1:].sum() / 2
    return {"f1": float(x[0]), "f2": float(g * (1 - np.sqrt(x[0] / g)))}


@pytest.mark.parametrize("goal2", ["minimize", "maximize"])
def test_multi_objective_front_and_hypervolume_are_recorded_per_generation(goal2):
    spec = _zdt1_spec(goal2=goal2)
    hunt = Hunt.start(spec)
    hv_seen = []
    while (a := hunt.ask()) is not None:
        notes = hunt.tell(a.ask_id, [Outcome("ok", _zdt1(c)) for c in a.candidates])
        hv_seen.append(notes[0]["hypervolume"])
        assert all(n["objective"] == pytest.approx(_zdt1(c)["f1"]) for n, c in zip(notes, a.candidates))
    s = hunt.summary()
    assert [h["hypervolume"] for h in s["hypervolume_history"]] == hv_seen
    assert hv_seen == sorted(hv_seen) and hv_seen[-1] > 0
    sign = 1.0 if goal2 == "minimize" else -1.0
    front = np.array([[v["objectives"][0], sign * v["objectives"][1]] for v in s["front"]])
    assert nondominated_mask(front).all()
    assert s["hypervolume"] == pytest.approx(hypervolume(front, np.array([1.1, 10.0])))
    for v in s["front"]:
        assert v["objectives"][1] == pytest.approx(_zdt1(v["params"])["f2"])


def test_chebyshev_scalarization_records_seeded_weights():
    spec = parse_spec({**_zdt1_spec().model_dump(), "optimizer": {"name": "cma", "population": 8, "options": {"scalarization": "chebyshev"}}})
    a1, a2 = Hunt.start(spec).ask(), Hunt.start(spec).ask()
    w = [d["weights"] for d in a1.decisions]
    assert w == [d["weights"] for d in a2.decisions]
    assert all(abs(sum(x) - 1) < 1e-9 and min(x) >= 0 for x in w)


def test_hunt_drives_the_real_batched_evaluator():
    spec = parse_spec(
        {
            "slug": "rs",
            "model": {"name": "rosen_suzuki"},
            "space": {f"x{i}": {"low": -3.0, "high": 3.0} for i in range(4)},
            "objectives": [{"metric": "f"}],
            "constraints": [{"metric": m, "max": 0.0} for m in ("g1", "g2", "g3")],
            "budget": {"evaluations": 96},
            "optimizer": {"name": "cma", "population": 16},
            "seed": 1,
        }
    )
    hunt = Hunt.start(spec)
    while (a := hunt.ask()) is not None:
        x = np.array([[c[n] for n in spec.param_names] for c in a.candidates])
        r = evaluate_population("rosen_suzuki", spec.param_names, x, seed=a.ask_id)
        outs = [
            Outcome("ok", {k: float(v[i]) for k, v in r.metrics.items()}) if s == Status.OK
            else Outcome("failed", {}, Status(int(s)).failure_category)
            for i, s in enumerate(r.status)
        ]
        hunt.tell(a.ask_id, outs)
    s = hunt.summary()
    assert s["finished"] and s["best_objective"] < -20  # feasible and well below random's typical
    assert s["alm"]["outer"] == 6
