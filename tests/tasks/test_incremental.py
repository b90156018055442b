"""Tick cost does not grow with history: learn and evolve read one summary row per generation,
checkpoints are bounded and not rewritten when nothing changed, yet every number is what the
whole history gives."""

from __future__ import annotations

import uuid

import pytest

from huntflow.engine.summary import best_of
from huntflow.store import campaigns, folds, generations, summaries, trajectories
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, fold, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]


def _tick(cid) -> dict:
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
    return {stage: run_stage(stage, ctx, cid, logic) for stage, logic in STAGES}


def test_trajectory_and_best_from_summaries_match_the_whole_history(db, make_spec, prefect_harness):
    _check_against_history(db, make_spec(slug="incremental", budget={"evaluations": 32},
                                         optimizer={"name": "random", "population": 8},
                                         objectives=[{"metric": "f", "goal": "minimize", "target": 0.05}]))


@pytest.mark.slow
def test_trajectory_and_best_match_the_whole_history_across_fidelities(db, make_spec, prefect_harness):
    """Top fidelity first: the best and the trajectory with a promotion ladder (slow: a certification
    batch and review's spot checks at two rungs)."""
    _check_against_history(db, make_spec(slug="incremental-ladder", budget={"evaluations": 32},
                                         optimizer={"name": "random", "population": 8},
                                         fidelities=[{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}],
                                         objectives=[{"metric": "f", "goal": "minimize", "target": 0.05}]))


def _check_against_history(db, spec) -> None:
    cid = campaigns.insert_campaign(db, spec)
    for _ in range(30):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        _tick(cid)
    assert campaigns.get_campaign(db, cid)["status"] == "completed"
    targets = learn.objective_targets(spec)

    evals = generations.campaign_evaluations(db, cid)
    rows = trajectories.for_campaign(db, cid)
    ask_of = {e["generation_id"]: e["ask_id"] for e in evals}
    assert len(rows) >= 2
    for r in rows:  # inline: nothing else was in flight when each row was recorded
        upto = [e for e in evals if e["ask_id"] <= ask_of[r["generation_id"]] and e["status"] != "pending"]
        best = best_of(spec, upto)
        assert r["best_objective"] == (None if best is None else best["objective"])
        assert r["evaluations_used"] == len(upto)
        mine = [e for e in evals if e["generation_id"] == r["generation_id"]]
        assert r["feasible_fraction"] == sum(1 for e in mine if e["feasible"]) / len(mine)
    best = best_of(spec, evals)
    row = campaigns.get_campaign(db, cid)
    assert (row["best_evaluation_id"], row["best_objective"]) == (best["evaluation_id"], best["objective"])
    # the stored fold is the full replay's state at its ask id, and continuing from it gives the
    # mode the whole evaluation history gives
    stored_fold = folds.get(db, cid)["state"]
    every = summaries.for_campaign(db, cid, targets)
    told_ids = {g["ask_id"] for g in every if g["status"] == "told"}
    budget = row["evaluations_budget"]
    upto = [g for g in every if g["ask_id"] <= stored_fold["ask_id"]]
    assert fold.replay(spec, None, upto, {a for a in told_ids if a <= stored_fold["ask_id"]}, budget,
                       lambda g: True)[1] == stored_fold
    tail = [g for g in every if g["ask_id"] > stored_fold["ask_id"]]
    assert fold.replay(spec, stored_fold, tail, told_ids, budget, lambda g: True)[0] \
        == learn.mode_of_generations(spec, every, told_ids, budget) == learn.current_mode(spec, evals, told_ids, budget)
    # every told generation has its summary row, with the numbers its evaluations give
    gens = {g["generation_id"]: g for g in summaries.for_campaign(db, cid, learn.objective_targets(spec))}
    stored = db.execute("select * from hunt.generation_summaries where campaign_id = %s", (cid,)).fetchall()
    assert {s["generation_id"] for s in stored} == {g for g, v in gens.items() if v["status"] == "told"}
    for s in stored:
        mine = [e for e in evals if e["generation_id"] == s["generation_id"]]
        ok = [e["objective"] for e in mine if e["status"] == "succeeded" and e["feasible"] and e["objective"] is not None]
        assert (s["evaluations"], s["used"], s["best_min"]) == (len(mine), sum(e["status"] != "pending" for e in mine),
                                                                 min(ok) if ok else None)
        assert s["target_hits"] == sum(
            1 for e in mine if e["status"] == "succeeded" and e["feasible"] and e["metrics"]
            and all(e["metrics"].get(m) is not None and e["metrics"][m] <= t for m, _, t in targets))


def test_checkpoints_are_bounded_and_not_rewritten_when_nothing_changed(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec(slug="bounded", budget={"evaluations": 48},
                                                  optimizer={"name": "random", "population": 8}))
    for _ in range(5):
        _tick(cid)
    kept = db.execute("select generation_index from hunt.generations where campaign_id = %s"
                      " and optimizer_checkpoint is not null order by generation_index", (cid,)).fetchall()
    asks = db.execute("select generation_index from hunt.generations where campaign_id = %s"
                      " and kind <> 'verification' order by generation_index", (cid,)).fetchall()
    assert len(asks) > generations.CHECKPOINTS_KEPT
    assert kept == asks[-generations.CHECKPOINTS_KEPT:]  # the newest asks' copies, no older one
    # an evolve with nothing reviewed and no room to ask writes nothing
    seq = campaigns.get_campaign(db, cid)["optimizer_seq"]
    tick = uuid.uuid4()
    out = run_stage(Stage.EVOLVE, TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline"), cid, evolve.run)
    assert out["told"] == 0 and out["planned"] == 0
    assert campaigns.get_campaign(db, cid)["optimizer_seq"] == seq


def test_copy_writes_evaluation_rows_in_one_statement(db, make_spec):
    from psycopg.types.json import Jsonb

    cid = campaigns.insert_campaign(db, make_spec(slug="copied"))
    gid = db.execute(
        "insert into hunt.generations (campaign_id, generation_index, ask_id, fidelity, fidelity_name, seed)"
        " values (%s, 0, 0, 0, 'exact', 1) returning generation_id", (cid,)).fetchone()["generation_id"]
    with db.transaction():
        n = generations.copy_evaluations(db, ((gid, cid, i, Jsonb({"x0": i / 10}), f"h{i}", 0, Jsonb({"source": "t"}))
                                              for i in range(500)))
    rows = generations.evaluations(db, gid)
    assert n == len(rows) == 500
    assert rows[7]["params"] == {"x0": 0.7} and rows[7]["status"] == "pending" and rows[7]["decision"] == {"source": "t"}
