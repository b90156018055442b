"""The promotion pass: a promotion or certification that evolve plans is verified by review and
launched by dispatch in the tick that asked it (both run a second time after evolve, each a task
run with a ``hunt.stage_runs`` row of its own, ``pass`` 2), in the loop of ``tick --until-done``
and in one-shot ticks, and what is asked and found is what ticks without the pass ask and find."""

from __future__ import annotations

import uuid

import pytest

from huntflow.store import campaigns, generations, verifications
from huntflow.store.states import STAGES, Stage
from huntflow.tasks import dispatch, evolve, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

pytestmark = pytest.mark.usefixtures("prefect_harness")

# the fine rung is the coarse one's halved step: the certification is its parents' check (review
# clears it at once); LONGER's is not (its parents' verification batches run before its launch)
LADDER = {"model": {"name": "euler_decay"},
          "space": {"rate": {"low": 0.0, "high": 1.0}, "shift": {"low": -1.0, "high": 1.0}},
          "fidelities": [{"name": "coarse", "settings": {"dt": 0.5, "steps": 5}},
                         {"name": "fine", "settings": {"dt": 0.25, "steps": 10}}],
          "budget": {"evaluations": 27},
          "optimizer": {"name": "random", "population": 8, "options": {"max_in_flight": 2}}, "seed": 5}
LONGER = {**LADDER, "fidelities": [LADDER["fidelities"][0], {"name": "fine", "settings": {"dt": 0.25, "steps": 12}}],
          "space": {"rate": {"low": 0.0, "high": 6.0}, "shift": {"low": -1.0, "high": 1.0}}, "budget": {"evaluations": 32}}
WITHOUT_PASS = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
                (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]


def _without_pass(db, cid) -> None:
    """The campaign to its end by one-shot ticks of the five stages without the promotion pass
    (no Prefect): the order before it, for the same rows."""
    for _ in range(80):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            return
        tick = uuid.uuid4()
        ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
        for stage, logic in WITHOUT_PASS:
            run_stage(stage, ctx, cid, logic)
    raise AssertionError("campaign did not finish")


def _evaluations(db, cid):
    return [(e["ask_id"], e["candidate_index"], e["kind"], e["fidelity"], e["params"], e["metrics"], e["status"],
             e["objective"]) for e in generations.campaign_evaluations(db, cid)]


def _ticks(db, cid) -> list[dict[tuple[str, int], dict]]:
    """The campaign's stage rows, tick by tick in order, keyed by (stage, pass)."""
    rows = db.execute("select tick_id, stage::text as stage, pass, status::text as status, summary, started_at,"
                      " finished_at from hunt.stage_runs where campaign_id = %s order by started_at, stage_run_id",
                      (cid,)).fetchall()
    by: dict[uuid.UUID, dict[tuple[str, int], dict]] = {}
    for r in rows:
        assert (r["stage"], r["pass"]) not in by.setdefault(r["tick_id"], {})
        by[r["tick_id"]][(r["stage"], r["pass"])] = r
    return list(by.values())


def _consistent(ticks) -> None:
    """Each tick: the six stages once in pass 1; pass 2 only review and dispatch, between evolve
    and learn, in that order; every row closed ``succeeded``; a dispatch pass only after a
    review that cleared a promotion."""
    for t in ticks:
        assert {k for k in t if k[1] == 1} == {(s.value, 1) for s in STAGES}, sorted(t)
        assert {k for k in t if k[1] != 1} <= {("review", 2), ("dispatch", 2)}, sorted(t)
        assert all(r["status"] == "succeeded" and r["finished_at"] >= r["started_at"] for r in t.values())
        order = [k for k in [("evolve", 1), ("review", 2), ("dispatch", 2), ("learn", 1)] if k in t]
        for a, b in zip(order, order[1:]):
            assert t[a]["finished_at"] <= t[b]["started_at"], (a, b)
        if ("dispatch", 2) in t:
            reviews = [t[k]["summary"] for k in (("review", 1), ("review", 2)) if k in t]
            assert any(not p.get("waiting") for s in reviews for p in s.get("promotions") or [])


def _asked_in(ticks, gid) -> int:
    (i,) = [i for i, t in enumerate(ticks)
            if str(gid) in [p["generation_id"] for p in t[("evolve", 1)]["summary"].get("planned") or []]]
    return i


def _launched(t) -> list[str]:
    return [g["generation_id"] for g in (t.get(("dispatch", 2)) or {"summary": {}})["summary"].get("launched", [])]


def _certification(db, cid):
    (cert,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                         (cid,)).fetchall()
    return cert


def test_a_certification_the_loop_asks_starts_in_the_tick_that_asked_it(db, make_spec):
    """The loop of ``tick --until-done``: the tick whose evolve asks the certification verifies
    it (review's pass: the ladder is its check, nothing to re-run first) and queues it on the
    executor (dispatch's pass) before learn; the rows say so, stay one per stage and pass, and the
    campaign's evaluations are those of one-shot ticks without the pass."""
    from huntflow.flows.cli.run import run_ticks

    cid = campaigns.insert_campaign(db, make_spec(slug="pass-loop", **LADDER))
    ref = campaigns.insert_campaign(db, make_spec(slug="pass-ref", **LADDER))
    run_ticks("pass-loop", True, 200, show_progress=False)
    _without_pass(db, ref)
    assert campaigns.get_campaign(db, cid)["status"] == "completed"
    assert _evaluations(db, cid) == _evaluations(db, ref)
    ticks = _ticks(db, cid)
    _consistent(ticks)
    cert = _certification(db, cid)
    t = ticks[_asked_in(ticks, cert["generation_id"])]
    (promo,) = t[("review", 2)]["summary"]["promotions"]
    assert promo["generation_id"] == str(cert["generation_id"]) and not promo.get("waiting")
    assert _launched(t) == [str(cert["generation_id"])]
    assert t[("dispatch", 2)]["summary"]["launched"][0]["queued"]  # on the loop's executor
    assert t[("evolve", 1)]["finished_at"] <= cert["dispatched_at"] <= t[("learn", 1)]["started_at"]
    assert generations.get(db, cert["generation_id"])["meta"]["review"]["ladder"] == ["half_dt"]
    # only where a promotion waited: every other tick is the five stages once
    assert sum(("review", 2) in t for t in ticks) == 1


def test_a_promotion_whose_parents_need_batches_queues_them_at_once_and_launches_once_they_clear(db, make_spec):
    """A rung that does not refine the step (a longer horizon): the tick that asks the
    certification queues its parents' verification batches (review's pass, ahead of the
    executor's queue) and launches nothing; the next tick's review clears it once they are back,
    and that same tick's dispatch pass launches it (before: the tick after that)."""
    from huntflow.flows.cli.run import run_ticks

    cid = campaigns.insert_campaign(db, make_spec(slug="pass-longer", **LONGER))
    ref = campaigns.insert_campaign(db, make_spec(slug="pass-longer-ref", **LONGER))
    run_ticks("pass-longer", True, 200, show_progress=False)
    _without_pass(db, ref)
    assert _evaluations(db, cid) == _evaluations(db, ref)
    ticks = _ticks(db, cid)
    _consistent(ticks)
    cert = _certification(db, cid)
    i = _asked_in(ticks, cert["generation_id"])
    (promo,) = ticks[i][("review", 2)]["summary"]["promotions"]
    assert promo["waiting"] and promo["verification"] and ("dispatch", 2) not in ticks[i]
    batches = verifications.of_promotion(db, cert["generation_id"])
    assert batches and all(ticks[i][("evolve", 1)]["finished_at"] <= b["created_at"]
                           <= ticks[i][("learn", 1)]["started_at"] for b in batches)
    (j,) = [j for j, t in enumerate(ticks) if str(cert["generation_id"]) in _launched(t)]
    assert j > i and any(p["generation_id"] == str(cert["generation_id"]) and not p.get("waiting")
                         for p in ticks[j][("review", 1)]["summary"].get("promotions") or [])
    assert ticks[j][("evolve", 1)]["finished_at"] <= cert["dispatched_at"] <= ticks[j][("learn", 1)]["started_at"]


def test_one_shot_ticks_run_the_certification_in_the_tick_that_asked_it(db, make_spec):
    """The scheduled ``hunt-tick`` flow (one-shot ticks, inline): the tick whose evolve asks the
    certification runs it in its dispatch pass; the next tick parses it; the same rows result."""
    from huntflow.flows.tick import hunt_tick

    cid = campaigns.insert_campaign(db, make_spec(slug="pass-oneshot", **LADDER))
    ref = campaigns.insert_campaign(db, make_spec(slug="pass-oneshot-ref", **LADDER))
    for _ in range(40):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        hunt_tick([str(cid)])
    _without_pass(db, ref)
    assert _evaluations(db, cid) == _evaluations(db, ref)
    ticks = _ticks(db, cid)
    _consistent(ticks)
    cert = _certification(db, cid)
    i = _asked_in(ticks, cert["generation_id"])
    (ran,) = ticks[i][("dispatch", 2)]["summary"]["launched"]
    assert ran["generation_id"] == str(cert["generation_id"]) and ran["result"]["status"] == "succeeded"
    assert ticks[i + 1][("parse", 1)]["summary"]
    assert generations.get(db, cert["generation_id"])["status"] == "told"
