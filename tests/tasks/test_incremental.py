"""Tick cost does not grow with history: learn and evolve read one summary row per generation,
checkpoints are bounded and not rewritten when nothing changed, yet every number is what the
whole history gives."""

from __future__ import annotations

import uuid

import pytest

from huntflow.engine.optimize import journal
from huntflow.engine.summary import best_of
from huntflow.store import campaigns, evolve_commit, folds, generations, summaries, trajectories
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


def _counted(db, cid) -> dict:
    """``count`` and ``stagnant`` of learn's state, counted from the trajectory rows."""
    rows = trajectories.for_campaign(db, cid)
    improved = [i for i, r in enumerate(rows) if r["improvement"] is not None and r["improvement"] > learn.IMPROVEMENT_TOL]
    return {"count": len(rows), "stagnant": len(rows) - 1 - (improved[-1] if improved else -1)}


def test_learn_counts_again_when_the_trajectory_changed_behind_its_back(db, make_spec):
    """learn's kept counts (``hunt.learn_states``) are trusted only while their row is the
    latest: rows removed (or written) by anything else make the next read count them."""
    spec = make_spec(slug="kept-counts", budget={"evaluations": 64}, optimizer={"name": "random", "population": 8})
    cid = campaigns.insert_campaign(db, spec)
    for _ in range(4):
        _tick(cid)
    state = trajectories.latest_state(db, cid, learn.IMPROVEMENT_TOL)
    assert state["kept"] and state["count"] >= 3
    db.execute("delete from hunt.trajectories where generation_id = %s", (state["generation_id"],))
    again = trajectories.latest_state(db, cid, learn.IMPROVEMENT_TOL)
    assert not again["kept"]
    assert {k: again[k] for k in ("count", "stagnant")} == _counted(db, cid)
    assert again["count"] == state["count"] - 1
    _tick(cid)  # learn records the missing row again and keeps the counts
    after = trajectories.latest_state(db, cid, learn.IMPROVEMENT_TOL)
    assert after["kept"] and {k: after[k] for k in ("count", "stagnant")} == _counted(db, cid)


def test_advance_state_follows_the_counting_rule():
    rows = [{"generation_index": i, "generation_id": i, "improvement": imp}
            for i, imp in enumerate([None, 0.5, 0.0, None, 1e-12, 0.2, 0.0, 0.0])]
    start = {"count": 0, "stagnant": 0, "generation_index": None}
    assert trajectories.advance_state(start, rows, 1e-9) == {"count": 8, "stagnant": 2, "generation_id": 7}
    assert trajectories.advance_state(start, rows[:1], 1e-9) == {"count": 1, "stagnant": 1, "generation_id": 0}
    # a row that would not be the latest: only counting gives the answer
    assert trajectories.advance_state({"count": 3, "stagnant": 1, "generation_index": 5}, rows[4:], 1e-9) is None
    assert trajectories.advance_state(start, [], 1e-9) is None


def _check_against_history(db, spec) -> None:
    cid = campaigns.insert_campaign(db, spec)
    kept = 0
    for _ in range(30):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        _tick(cid)
        state = trajectories.latest_state(db, cid, learn.IMPROVEMENT_TOL)
        assert {k: state[k] for k in ("count", "stagnant")} == _counted(db, cid)  # learn's kept counts
        kept += state["kept"]
    assert kept >= 2  # after its first rows learn no longer counts them
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
    assert len(asks) > evolve_commit.CHECKPOINTS_KEPT
    # copies go with full checkpoints only (the commits between journal what they did), the
    # newest CHECKPOINTS_KEPT of them stay; the campaign's journal is shorter than the period
    assert 1 <= len(kept) <= evolve_commit.CHECKPOINTS_KEPT and set(map(str, kept)) <= set(map(str, asks))
    row = db.execute("select optimizer_state is not null as has, jsonb_array_length(optimizer_journal) as n"
                     " from hunt.campaigns where campaign_id = %s", (cid,)).fetchone()
    assert row["has"] and 0 < row["n"] < journal.COMMITS_PER_CHECKPOINT_LIVE  # this process kept the hunt live
    # an evolve with nothing reviewed and no room to ask writes nothing
    seq = campaigns.get_campaign(db, cid)["optimizer_seq"]
    tick = uuid.uuid4()
    out = run_stage(Stage.EVOLVE, TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline"), cid, evolve.run)
    assert out["told"] == 0 and out["planned"] == 0
    assert campaigns.get_campaign(db, cid)["optimizer_seq"] == seq


def test_a_live_hunt_checkpoints_in_full_less_often_than_one_loaded_each_time(db, make_spec, monkeypatch):
    """Where evolve's process keeps the hunt live, a full checkpoint comes every
    COMMITS_PER_CHECKPOINT_LIVE commits; where it loads the hunt each time, every
    COMMITS_PER_CHECKPOINT. The journal's length after each commit shows which one each wrote."""
    monkeypatch.setattr(journal, "COMMITS_PER_CHECKPOINT", 2)
    monkeypatch.setattr(journal, "COMMITS_PER_CHECKPOINT_LIVE", 4)
    spec = {"budget": {"evaluations": 64}, "optimizer": {"name": "random", "population": 8}, "seed": 5}
    live = campaigns.insert_campaign(db, make_spec(slug="journal-kept-live", **spec))
    cold = campaigns.insert_campaign(db, make_spec(slug="journal-loaded", **spec))
    lengths: dict = {live: [], cold: []}
    for _ in range(6):
        for cid in (live, cold):
            if cid == cold:
                evolve._LIVE.pop(cid, None)  # its evolve always starts from the stored state
            out = _tick(cid)[Stage.EVOLVE]
            n = db.execute("select jsonb_array_length(optimizer_journal) as n from hunt.campaigns"
                           " where campaign_id = %s", (cid,)).fetchone()["n"]
            assert out["journal_entries"] == n and (out["checkpoint_bytes"] is not None) == (n == 0)
            lengths[cid].append(n)
    assert lengths[live] == [0, 1, 2, 3, 0, 1]  # the first commit, then one in four
    assert lengths[cold] == [0, 1, 0, 1, 0, 1]  # one in two
    # and the same hunt either way
    told = "select ask_id, candidate_index, params, objective from hunt.evaluations e join hunt.generations g" \
           " using (generation_id) where g.campaign_id = %s and g.kind <> 'verification' order by 1, 2"
    assert [tuple(r.values()) for r in db.execute(told, (live,))] == [tuple(r.values()) for r in db.execute(told, (cold,))]


def test_a_reloaded_optimizer_replays_its_journal_and_asks_what_the_live_one_asks(db, make_spec, monkeypatch):
    """A process without the live optimizer (another tick process, after a crash) loads the last
    full checkpoint and replays the journal since: same candidates, same keys, same told values."""
    monkeypatch.setattr(journal, "COMMITS_PER_CHECKPOINT", 3)  # both kinds of commit within a few ticks
    spec = {"budget": {"evaluations": 56}, "optimizer": {"name": "ngopt", "population": 8}, "seed": 3}
    a = campaigns.insert_campaign(db, make_spec(slug="journal-live", **spec))
    b = campaigns.insert_campaign(db, make_spec(slug="journal-reloaded", **spec))
    entries = set()
    for _ in range(8):
        _tick(a)
        evolve._LIVE.pop(b, None)  # b's evolve always starts from the stored state
        _tick(b)
        entries.add(db.execute("select jsonb_array_length(optimizer_journal) as n from hunt.campaigns"
                               " where campaign_id = %s", (b,)).fetchone()["n"])
    assert entries >= {0, 1, 2}  # full checkpoints and journal commits both happened

    def told(cid):
        return [(e["ask_id"], e["candidate_index"], e["params"], e["status"], e["objective"], e["alm_loss"])
                for e in generations.campaign_evaluations(db, cid)]

    assert len(told(a)) >= 48 and told(a) == told(b)
    seeds = "select ask_id, seed from hunt.generations where campaign_id = %s order by ask_id"
    assert [tuple(r.values()) for r in db.execute(seeds, (a,))] == [tuple(r.values()) for r in db.execute(seeds, (b,))]


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


def test_inline_max_in_flight_runs_that_many_generations_per_tick_and_resumes_exactly(db, make_spec):
    """Inline with max_in_flight 3: a tick dispatches, parses, reviews and tells three
    generations and asks three; a twin whose optimizer is reloaded every tick asks the same."""
    spec = {"budget": {"evaluations": 64}, "optimizer": {"name": "ngopt", "population": 4,
                                                         "options": {"max_in_flight": 3}}, "seed": 4}
    a = campaigns.insert_campaign(db, make_spec(slug="inflight-live", **spec))
    b = campaigns.insert_campaign(db, make_spec(slug="inflight-reloaded", **spec))
    per_tick = []
    for _ in range(3):
        out = _tick(a)
        per_tick.append(len(out[Stage.DISPATCH]["launched"]))
        evolve._LIVE.pop(b, None)
        _tick(b)
    assert per_tick == [0, 3, 3]  # the first tick asks three, each later one runs three

    def told(cid):
        return [(e["ask_id"], e["candidate_index"], e["params"], e["status"], e["objective"])
                for e in generations.campaign_evaluations(db, cid)]

    assert len(told(a)) == 36 and told(a) == told(b)
