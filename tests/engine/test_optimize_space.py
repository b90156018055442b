"""Every optimizer on integer, categorical, continuous and fixed parameters: it finds the known
optimum, resumes exactly from any checkpoint, never spends budget twice on one point, and the
prefilter learns from categorical choices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize.ladder import param_hash
from huntflow.engine.spec import parse_spec
from huntflow.errors import SpecError

KINDS = ["euler", "rk4", "leapfrog", "verlet"]
BACKENDS = ["ngopt", "cma", "twopointsde", "random", "nsga2"]


def _spec(name, budget=96, space=None, options=None, **over):
    base = {
        "slug": "mixed-t",
        "model": {"name": "mixed"},
        "space": space or {"x": {"low": -1.0, "high": 1.0}, "n": {"type": "int", "low": 0, "high": 8},
                           "kind": {"choices": KINDS}},
        "objectives": [{"metric": "f"}],
        "budget": {"evaluations": budget},
        "optimizer": {"name": name, "population": 8, "options": options or {}},
        "seed": 11,
    }
    base.update(over)
    return parse_spec(base)


def _f(c):
    """The ``mixed`` benchmark in plain Python (the JAX model gets the choice index)."""
    ci = KINDS.index(c["kind"]) if isinstance(c["kind"], str) else int(c["kind"])
    return (c["x"] - 0.3) ** 2 + 0.1 * (c["n"] - 3) ** 2 + 0.5 * min(abs(ci - 1), 2)


def _run(spec, modes=("explore",), roundtrip=False, outcome=None):
    """Drive a hunt to the end; returns (hunt, asks as JSON, notes)."""
    hunt = Hunt.start(spec)
    asks, notes, i = [], [], 0
    while (a := hunt.ask(modes[i % len(modes)])) is not None:
        i += 1
        asks.append(json.dumps([a.candidates, a.decisions], sort_keys=True, default=str))
        if roundtrip:
            hunt = Hunt.loads(hunt.dumps())
        outs = [outcome(c) if outcome else Outcome("ok", {"f": _f(c), "g": c["n"] - 10 * c["x"] - 2}) for c in a.candidates]
        notes += hunt.tell(a.ask_id, outs)
        if roundtrip:
            hunt = Hunt.loads(hunt.dumps())
    return hunt, asks, notes


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_finds_the_mixed_optimum_with_typed_values(name):
    hunt, asks, notes = _run(_spec(name, budget=64 if name == "ngopt" else 96), modes=("explore", "exploit"))
    evals = [json.loads(a)[0] for a in asks]
    for c in [c for batch in evals for c in batch]:
        assert type(c["n"]) is int and 0 <= c["n"] <= 8 and c["kind"] in KINDS and type(c["x"]) is float
    best = hunt.summary()["best_params"]
    assert best["n"] == 3 and best["kind"] == "rk4", best
    assert abs(best["x"] - 0.3) < 0.15, best
    assert len({n["param_hash"] for n in notes}) == len(notes)  # no point evaluated twice


@pytest.mark.parametrize("name", BACKENDS)
def test_mixed_hunts_are_deterministic_and_resume_exactly_from_every_checkpoint(name):
    spec = _spec(name, budget=40, options={"recover_share": 0.25})
    modes = ("explore", "exploit", "recover")
    _, straight, _ = _run(spec, modes)
    _, again, _ = _run(spec, modes)
    _, resumed, _ = _run(spec, modes, roundtrip=True)
    assert straight == again == resumed


def test_a_small_discrete_space_is_evaluated_once_per_point_and_then_the_search_ends():
    space = {"x": {"value": 0.3}, "n": {"type": "int", "low": 0, "high": 3}, "kind": {"choices": ["euler", "rk4"]}}
    for name in ("cma", "nsga2", "random"):
        hunt, asks, notes = _run(_spec(name, budget=48, space=space), modes=("explore", "exploit"))
        points = [tuple(c.values()) for a in asks for c in json.loads(a)[0]]
        assert sorted(set(points)) == sorted(points) and len(points) == 8  # 4 x 2 points, each once
        s = hunt.summary()
        assert hunt.is_finished() and s["space_exhausted"] == [0] and s["evaluations_told"] == 8
        assert s["duplicates"]["told"] > 0  # the optimizer was told the stored results of its repeats
        assert s["best_params"] == {"x": 0.3, "n": 3, "kind": "rk4"}


def test_points_in_flight_are_not_asked_again_by_the_next_batch():
    spec = _spec("cma", budget=64, space={"n": {"type": "int", "low": 0, "high": 5}, "kind": {"choices": KINDS},
                                         "x": {"value": 0.0}}, optimizer={"name": "cma", "population": 6})
    hunt = Hunt.start(spec)
    first, second = hunt.ask(), hunt.ask()  # two batches in flight, none told
    h1 = {param_hash(list(c.values()), spec.param_names) for c in first.candidates}
    h2 = {param_hash(list(c.values()), spec.param_names) for c in second.candidates}
    assert len(h1) == 6 and len(h2) == 6 and not h1 & h2


def test_a_repeated_point_costs_no_budget_and_its_stored_result_is_what_the_optimizer_hears():
    spec = _spec("random", budget=30, space={"n": {"type": "int", "low": 0, "high": 2}, "kind": {"choices": KINDS[:2]},
                                           "x": {"value": 0.0}})
    hunt = Hunt.start(spec)
    told = []
    real_tell = hunt.backend.tell
    hunt.backend.tell = lambda token, loss, **kw: (told.append(loss), real_tell(token, loss, **kw))
    evaluated = []
    while (a := hunt.ask()) is not None:
        evaluated += a.candidates
        hunt.tell(a.ask_id, [Outcome("ok", {"f": _f(c), "g": 0.0}) for c in a.candidates])
    assert len(evaluated) == 6 and hunt.asked == 6  # 3 x 2 points; the budget of 30 is not spent on repeats
    losses = {round(_f(c), 12) for c in evaluated}
    assert told and {round(v, 12) for v in told} <= losses


def test_the_prefilter_learns_that_a_choice_fails_and_screens_it_out():
    def outcome(c):
        if c["kind"] == "verlet":
            return Outcome("failed", {}, "blowup")
        return Outcome("ok", {"f": _f(c), "g": c["n"] - 10 * c["x"] - 2})

    opts = {"prefilter_min_data": 16, "prefilter_threshold": 0.2, "exploit_share": 0.0}
    hunt, asks, _ = _run(_spec("random", budget=96, options=opts), outcome=outcome)
    screened = [json.loads(a)[1] for a in asks]
    active = [d for batch in screened for d in batch if d["prefilter"]["active"]]
    assert active, "the prefilter never became active"
    late = [c for a in asks[3:] for c in json.loads(a)[0]]
    early = [c for a in asks[:2] for c in json.loads(a)[0]]
    share = lambda cs: sum(c["kind"] == "verlet" for c in cs) / len(cs)  # noqa: E731
    assert share(early) > 0.1 and share(late) < share(early) / 2
    assert hunt.prefilter_rejected > 0


def test_fixed_values_reach_the_candidates_and_are_not_searched():
    spec = _spec("cma", budget=16, space={"x": {"low": -1, "high": 1}, "n": {"value": 3}, "kind": {"choices": KINDS}})
    hunt = Hunt.start(spec)
    assert hunt.space.dim == 2 and hunt.space.searched == ("x", "kind")
    a = hunt.ask()
    assert all(c["n"] == 3 and list(c) == ["x", "n", "kind"] for c in a.candidates)


def test_the_duplicates_option_drops_instead_of_telling_and_refuses_other_values():
    space = {"x": {"value": 0.3}, "n": {"type": "int", "low": 0, "high": 3}, "kind": {"choices": ["euler", "rk4"]}}
    hunt, asks, _ = _run(_spec("nsga2", budget=24, space=space, options={"duplicates": "drop"}))
    assert hunt.duplicates["told"] == 0 and hunt.duplicates["dropped"] > 0
    assert len({tuple(c.values()) for a in asks for c in json.loads(a)[0]}) == hunt.asked
    with pytest.raises(SpecError) as info:  # refused at campaign add, naming the field
        _spec("cma", options={"duplicates": "ignore"})
    assert ("optimizer.options.duplicates", "must be 'tell' or 'drop', got 'ignore'") in info.value.errors
