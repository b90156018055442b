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
from huntflow.engine.optimize.hunt import default_shares
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


@pytest.mark.parametrize("name", ["ngopt", "cma", "twopointsde", "random", "nsga2"])
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


# ---------------------------------------------------------------- modes (explore / exploit / recover)
from huntflow.engine.optimize.backends import from_params  # noqa: E402


def _u(spec, cand):
    return from_params(np.array([cand[n] for n in spec.param_names]), [(b.low, b.high, b.log) for b in spec.space.values()])


def _drive_modes(spec, modes, kill_at=(), in_flight=2):
    """Like ``_drive``, asking search batches in ``modes[i % len(modes)]`` for the i-th ask
    (``modes=None``: ``ask()`` without the argument)."""
    hunt = Hunt.start(spec)
    log, queue, event, asked = [], [], 0, 0
    while not hunt.is_finished():
        ask = None
        if len(queue) < in_flight:
            ask = hunt.ask() if modes is None else hunt.ask(modes[asked % len(modes)])
        if ask is not None:
            asked += 1
            queue.append(ask)
            log.append(("ask", ask.ask_id, ask.kind, ask.fidelity, ask.candidates, ask.decisions, ask.meta))
        else:
            ask = queue.pop(0)
            log.append(("tell", ask.ask_id, hunt.tell(ask.ask_id, [_outcome(spec, c, ask.fidelity) for c in ask.candidates])))
        event += 1
        if event in kill_at:
            hunt = Hunt.loads(hunt.dumps())
    return hunt, log


def _told_hunt(spec, asks=3):
    hunt = Hunt.start(spec)
    for _ in range(asks):
        a = hunt.ask()
        hunt.tell(a.ask_id, [_outcome(spec, c, a.fidelity) for c in a.candidates])
    return hunt


def test_explore_mode_is_the_default_and_asks_what_a_hunt_without_modes_asks():
    spec = _spec(budget={"evaluations": 48})
    _, plain = _drive_modes(spec, None)
    _, explore = _drive_modes(spec, ["explore"])
    assert explore == plain
    asks = [e for e in plain if e[0] == "ask"]
    assert all(a[6]["mode"] == "explore" and a[6]["sources"] == {"optimizer": 8, "exploit": 0, "recover": 0} for a in asks)
    assert all(d["source"] == "optimizer" for a in asks for d in a[5])
    with pytest.raises(ValueError, match="mode"):
        Hunt.start(spec).ask("sideways")


def test_exploit_candidates_refine_the_incumbent_and_are_told_to_the_optimizer():
    spec = _spec(budget={"evaluations": 96})
    hunt = _told_hunt(spec)
    best = min((e for e in hunt.evals if e["feasible"]), key=lambda e: e["objectives"][0])
    ask = hunt.ask("exploit")
    sources = [d["source"] for d in ask.decisions]
    assert ask.meta["mode"] == "exploit" and ask.meta["sources"] == {"optimizer": 6, "exploit": 2, "recover": 0}
    assert sources == ["optimizer"] * 6 + ["exploit"] * 2
    dist = [float(np.linalg.norm(_u(spec, c) - best["u"])) for c in ask.candidates]
    near = [d for d, s in zip(dist, sources) if s == "exploit"]
    assert max(near) < np.median([d for d, s in zip(dist, sources) if s == "optimizer"])
    assert all(hunt.evals[d["exploit"]["center_eval"]]["hash"] == best["hash"] for d in ask.decisions if d["source"] == "exploit")
    # told: the optimizer counts every candidate, and its best is the exploit point that won
    opt = hunt.backend.optimizer
    told, not_asked = opt.num_tell, opt._num_tell_not_asked
    winner = sources.index("exploit")
    outs = [Outcome("ok", {"f": -100.0 if i == winner else 50.0, "g": -1.0}) for i in range(len(sources))]
    hunt.tell(ask.ask_id, outs)
    assert opt.num_tell == told + 8 and opt._num_tell_not_asked == not_asked + 2
    assert np.allclose(opt.current_bests["minimum"].parameter.value, _u(spec, ask.candidates[winner]))
    # the step halves while the incumbent stays, and resets once it moves
    a2 = hunt.ask("exploit")
    hunt.tell(a2.ask_id, [Outcome("ok", {"f": 60.0, "g": -1.0})] * len(a2.candidates))
    a3 = hunt.ask("exploit")
    assert ask.meta["exploit"]["halvings"] == 0 and a2.meta["exploit"]["halvings"] == 0  # winner became the incumbent
    assert a3.meta["exploit"]["halvings"] == 1
    assert a3.meta["exploit"]["sigma"] < ask.meta["exploit"]["sigma"]


def test_recover_candidates_are_spread_away_from_the_history_and_predicted_feasible():
    assert Hunt.start(_spec()).recover_share == 0.0  # opt-in: it cost on the benchmark
    spec = _spec(budget={"evaluations": 96}, optimizer={"name": "ngopt", "population": 8,
                                                        "options": {"recover_share": 0.25}})
    hunt = _told_hunt(spec)
    history = np.array([e["u"] for e in hunt.evals])

    def min_dist(ask, source):
        return [float(np.min(np.linalg.norm(history - _u(spec, c), axis=1)))
                for c, d in zip(ask.candidates, ask.decisions) if d["source"] == source]

    explore = Hunt.loads(hunt.dumps()).ask("explore")
    recover = hunt.ask("recover")
    assert recover.meta["sources"] == {"optimizer": 6, "exploit": 0, "recover": 2}
    assert min(min_dist(recover, "recover")) > np.median(min_dist(explore, "optimizer"))
    assert all(d["recover"]["min_distance"] > 0 for d in recover.decisions if d["source"] == "recover")
    assert hunt.ask("recover").candidates != recover.candidates  # seeded per ask
    # with the prefilter active, recover keeps to points it predicts feasible
    tight = _spec(budget={"evaluations": 96}, constraints=[{"metric": "g", "max": -3.0}],
                  optimizer={"name": "ngopt", "population": 8,
                             "options": {"prefilter_min_data": 16, "recover_share": 0.25}})
    ask = _told_hunt(tight).ask("recover")
    assert ask.meta["prefilter"]["active"] and ask.meta["recover"]["pool_predicted_infeasible"] > 0
    decisions = [d for d in ask.decisions if d["source"] == "recover"]
    assert len(decisions) == 2
    assert all(d["prefilter"]["p_feasible"] >= d["prefilter"]["threshold"] for d in decisions)


@pytest.mark.parametrize("name", ["ngopt", "cma", "twopointsde", "random", "nsga2"])
def test_every_optimizer_takes_injected_points_and_stays_within_bounds(name):
    spec = _spec(optimizer={"name": name, "population": 8, "options": {"recover_share": 0.25}},
                 budget={"evaluations": 48})
    hunt, log = _drive_modes(spec, ["explore", "exploit", "recover"], in_flight=1)
    asks = [e for e in log if e[0] == "ask"]
    assert {a[6]["mode"] for a in asks} == {"explore", "exploit", "recover"}
    assert sum(a[6]["sources"]["exploit"] for a in asks) > 0 and sum(a[6]["sources"]["recover"] for a in asks) > 0
    for c in (c for a in asks for c in a[4]):
        assert all(b.low <= c[n] <= b.high for n, b in spec.space.items())
    assert hunt.summary()["evaluations_told"] == 48
    assert getattr(hunt.backend, "suggestions_not_told", 0) == 0


def test_resume_with_mixed_modes_reproduces_the_uninterrupted_run():
    spec = _spec(
        fidelities=[{"name": "low", "settings": {"bias": 0.4}}, {"name": "high"}],
        budget={"evaluations": 72},
        optimizer={"name": "ngopt", "population": 8, "options": {"prefilter_min_data": 16, "recover_share": 0.25}},
    )
    modes = ["explore", "exploit", "recover", "exploit", "exploit"]
    _, full = _drive_modes(spec, modes)
    assert {e[6]["mode"] for e in full if e[0] == "ask" and e[2] == "search"} == {"explore", "exploit", "recover"}
    assert any(e[2] == "certification" for e in full if e[0] == "ask")
    for kill_at in [(2, 5), (7, 9, 11)]:
        assert _drive_modes(spec, modes, kill_at=kill_at)[1] == full


def test_a_checkpoint_without_mode_state_loads_and_asks_as_before():
    from huntflow.engine.optimize import checkpoint

    spec = _spec(budget={"evaluations": 96})
    hunt = _told_hunt(spec, asks=2)
    pending = hunt.ask()
    raw = checkpoint.loads(hunt.dumps())
    for key in ("exploit_share", "recover_share", "exploit_anchor", "exploit_k"):
        del raw["state"][key]
    for e in raw["state"]["evals"]:
        del e["source"]
    for p in raw["state"]["pending_asks"].values():
        del p.__dict__["sources"]
    old = Hunt.loads(checkpoint.dumps(raw))
    new = Hunt.loads(hunt.dumps())
    for h in (old, new):
        h.tell(pending.ask_id, [_outcome(spec, c, 0) for c in pending.candidates])
    assert old.ask().candidates == new.ask().candidates
    assert old.ask("exploit").candidates == new.ask("exploit").candidates
    assert (old.exploit_share, old.recover_share) == (0.25, 0.0)  # the defaults for 3-D, one objective


def test_default_shares_follow_the_benchmark():
    assert default_shares(3, 1) == (0.25, 0.0)
    assert default_shares(20, 1) == (0.0, 0.0)  # exploit cost from 20-D up
    assert default_shares(2, 2) == (0.0, 0.0)  # and with several objectives
    spec = _spec(optimizer={"name": "ngopt", "population": 8, "options": {"exploit_share": 0.5, "recover_share": 0.1}})
    assert (Hunt.start(spec).exploit_share, Hunt.start(spec).recover_share) == (0.5, 0.1)


@pytest.mark.parametrize("option", ["exploit_share", "recover_share"])
@pytest.mark.parametrize("value", [-0.1, 1.5, "lots", True, float("nan")])
def test_bad_share_options_are_rejected_by_name(option, value):
    with pytest.raises(ValueError, match=f"optimizer.options.{option}"):
        Hunt.start(_spec(optimizer={"name": "random", "population": 8, "options": {option: value}}))
