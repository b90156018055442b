"""The evaluation index answers what the full scans of ``Hunt.evals`` it replaced answered, at
every step of hunts with failures, rejections, constraints, a fidelity ladder (promotions and a
certification) and several objectives; it is derived state, left out of checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.optimize import Hunt, Outcome, checkpoint, dedup, evalindex, report, steer, telling
from huntflow.engine.optimize import prefilter as pf
from huntflow.engine.spec import parse_spec


def _spec(**over):
    base = {
        "slug": "index-test",
        "model": {"name": "constrained_sphere"},
        "space": {"x0": {"low": -2.0, "high": 2.0}, "x1": {"low": -2.0, "high": 2.0},
                  "x2": {"low": 0, "high": 3, "type": "int"}},  # an integer: dedup sees repeats
        "objectives": [{"metric": "f"}],
        "constraints": [{"metric": "g", "max": 0.0}],
        "budget": {"evaluations": 160},
        "optimizer": {"name": "ngopt", "population": 8, "options": {"feasibility_first": True}},
        "seed": 7,
    }
    base.update(over)
    return parse_spec(base)


def _outcome(cand, fidelity):
    """A deterministic fake simulator: failures, review rejections, a constraint, two objectives."""
    x = np.array([cand["x0"], cand["x1"], float(cand["x2"])])
    if x[2] == 2:
        return Outcome("failed", {}, "blowup")
    f = float(np.sum((x[:2] - 0.5) ** 2) + 0.1 * x[2] + 0.01 * fidelity)
    metrics = {"f": f, "f1": f, "f2": float(np.sum((x[:2] + 0.5) ** 2)), "g": float(x[0] + x[1] - 1.0)}
    if x[1] > 0.8:
        return Outcome("rejected", metrics, "spot_check")
    return Outcome("ok", metrics)


BATCH = [[0.25, 3.0], [4.0, -1.0]]  # a batch's own objectives, as the tell hands them to mo_context


def _scans(hunt) -> dict:
    """What the index answers, as the full scans of ``hunt.evals`` answered it."""
    evals = hunt.evals
    rungs = sorted({e["fidelity"] for e in evals} | {0})
    out: dict = {"failed": sum(e["status"] == "failed" for e in evals),
                 "rejected": sum(e["status"] == "rejected" for e in evals),
                 "certified": [i for i, e in enumerate(evals) if e["kind"] == "certification"],
                 "promoted": [i for i, e in enumerate(evals) if e["kind"] == "promotion"],
                 "active": pf.is_active(np.array([e["feasible"] for e in evals], dtype=bool), hunt.prefilter),
                 "points": (np.array([e["u"] for e in evals], dtype=float).tolist(), [e["feasible"] for e in evals])}
    for f in rungs:
        feasible = [i for i, e in enumerate(evals) if e["fidelity"] == f and e["feasible"]]
        front, seen = [], set()
        if feasible:
            pts = np.array([evals[i]["objectives"] for i in feasible], dtype=float)
            for i, keep in zip(feasible, pf_mask(pts)):
                if keep and evals[i]["hash"] not in seen:
                    seen.add(evals[i]["hash"])
                    front.append(i)
        ok = [i for i, e in enumerate(evals) if e["fidelity"] == f and e["status"] == "ok"]
        if hunt.n_obj > 1 and front:
            incumbents = front
        elif not ok:
            incumbents = []
        elif feasible:
            incumbents = [min(feasible, key=lambda i: (evals[i]["objectives"][0], i))]
        else:
            incumbents = [min(ok, key=lambda i: (sum(max(0.0, g) for g in evals[i]["constraints"]), i))]
        mo = None
        if hunt.n_obj > 1:  # the tell's front and normalization box, as telling.mo_context scanned them
            prior = [e for e in evals if e["fidelity"] == f and e["status"] == "ok"]
            feas = np.array([e["objectives"] for e in prior if e["feasible"]], dtype=float).reshape(-1, 2)
            seen = np.array([e["objectives"] for e in prior] + BATCH, dtype=float).reshape(-1, 2)
            upper = np.maximum(seen.max(axis=0), report.reference(hunt))
            mo = [(feas[pf_mask(feas)] if feas.shape[0] else feas).tolist(), seen.min(axis=0).tolist(),
                  (upper + 1e-9 * np.maximum(1.0, np.abs(upper))).tolist()]
        out[f] = {"told": dedup.known(evals, [], f)[0], "feasible": feasible, "front": front, "mo": mo,
                  "incumbents": incumbents,
                  "feasibility_phase": hunt.feasibility_first and not any(
                      e["feasible"] for e in evals if e["kind"] == "search" and e["fidelity"] == f)}
    return out


def pf_mask(pts):
    from huntflow.engine.optimize.pareto import nondominated_mask

    return nondominated_mask(pts)


def _answers(hunt) -> dict:
    """The same, as the code that reads the index answers it now."""
    index = evalindex.of(hunt)
    summary = report.summarize(hunt)
    n = len(hunt.evals)
    out: dict = {"failed": summary["evaluations_failed"], "rejected": summary["evaluations_rejected"],
                 "certified": [v["eval"] for v in summary["certified"]],
                 "promoted": [v["eval"] for v in summary["promoted"]],
                 "active": bool(hunt.prefilter.enabled and n >= hunt.prefilter.min_data
                                and 0 < index.feasible_count < n),
                 "points": tuple(a.tolist() for a in index.points_and_labels())}
    for f in sorted({e["fidelity"] for e in hunt.evals} | {0}):
        mo = None
        if hunt.n_obj > 1:
            got = telling.mo_context(hunt, f, BATCH)
            mo = [got["front"].tolist(), got["ideal"].tolist(), got["upper"].tolist()]
        out[f] = {"told": index.told.get(f, {}), "feasible": index.feasible.get(f, []), "mo": mo,
                  "front": report.front_indices(hunt, f), "incumbents": steer.incumbents(hunt, f),
                  "feasibility_phase": telling.in_feasibility_phase(hunt, f)}
    return out


def _drive(spec):
    """Run ``spec`` to its end, comparing after every tell; every third step the hunt is reloaded
    from its checkpoint (the index is rebuilt from the loaded evaluations). Returns the hunt."""
    hunt = Hunt.start(spec)
    steps = 0
    while not hunt.is_finished():
        ask = hunt.ask("exploit" if steps % 4 == 3 else "explore")
        if ask is None:
            break
        hunt.tell(ask.ask_id, [_outcome(c, ask.fidelity) for c in ask.candidates])
        assert _answers(hunt) == _scans(hunt), f"step {steps}"
        steps += 1
        if steps % 3 == 0:
            state = checkpoint.loads(hunt.dumps())["state"]
            assert evalindex.ATTRIBUTE not in state  # derived: never stored
            hunt = Hunt.loads(hunt.dumps())
    return hunt


@pytest.mark.parametrize("over", [
    {},  # one objective, a constraint, failures and rejections, the feasibility phase
    {"fidelities": [{"name": "low", "settings": {"bias": 0.4}}, {"name": "mid", "settings": {"bias": 0.2}},
                    {"name": "high"}]},  # a ladder: promotions, a certification
    {"model": {"name": "zdt1"}, "objectives": [{"metric": "f1"}, {"metric": "f2"}], "constraints": [],
     "reference_point": [20.0, 20.0], "optimizer": {"name": "nsga2", "population": 8}},  # two objectives
], ids=["one-objective", "ladder", "two-objectives"])
def test_the_index_answers_what_the_full_scans_answered(over):
    hunt = _drive(_spec(**over))
    answers = _scans(hunt)
    assert answers["failed"] and answers["rejected"] and len(hunt.evals) >= 100  # the hunt hit every case
    assert any(answers[f]["feasible"] for f in answers if isinstance(f, int))
    if "fidelities" in over:
        assert answers["certified"] or answers["promoted"]


def test_an_index_built_on_another_list_starts_again():
    hunt = _drive(_spec(budget={"evaluations": 48}))
    index = evalindex.of(hunt)
    shorter = hunt.evals[:8]
    again = index.update(shorter)
    assert again.seen == 8 and sum(len(v) for v in again.feasible.values()) == sum(e["feasible"] for e in shorter)


def test_points_of_another_length_leave_the_prefilter_to_the_evaluations():
    def row(u, feasible):
        return {"fidelity": 0, "status": "ok", "hash": str(len(u)) + str(feasible), "kind": "search",
                "feasible": feasible, "objectives": [1.0], "constraints": [], "u": np.asarray(u, dtype=float)}

    index = evalindex.EvalIndex().update([row([0.1, 0.2], True), row([0.3, 0.4], False)])
    points, labels = index.points_and_labels()
    assert points.tolist() == [[0.1, 0.2], [0.3, 0.4]] and labels.tolist() == [True, False]
    index.update([row([0.1, 0.2], True), row([0.3, 0.4], False), row([0.5, 0.6, 0.7], True)])
    assert index.points_and_labels() is None and index.feasible_count == 2  # the rest still counts
