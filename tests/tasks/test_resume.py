"""A campaign interrupted anywhere ends with exactly the evaluations of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

from huntflow.store import campaigns, generations, summaries
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]


def _tick(cid, stop_after: Stage | None = None) -> None:
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
    for stage, logic in STAGES:
        run_stage(stage, ctx, cid, logic)
        if stage is stop_after:
            return


def _run_to_end(db, cid, interrupt=None, limit: int = 40) -> None:
    for i in range(limit):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            return
        if interrupt:
            interrupt(i)
        _tick(cid)
    raise AssertionError("campaign did not finish")


def _fingerprint(db, cid):
    return [
        (e["ask_id"], e["candidate_index"], e["kind"], e["fidelity"], e["params"], e["metrics"], e["status"],
         e["objective"], e["feasible"], e["alm_loss"])
        for e in generations.campaign_evaluations(db, cid)
    ]


KILL = textwrap.dedent("""
    import os, signal, sys, uuid
    from huntflow.store.states import Stage
    from huntflow.tasks._stage import TickContext, run_stage
    from huntflow.tasks import dispatch, parse, review, evolve
    cid = uuid.UUID(sys.argv[1]); stop = sys.argv[2]
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
    for stage, logic in [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run),
                         (Stage.REVIEW, review.run), (Stage.EVOLVE, evolve.run)]:
        run_stage(stage, ctx, cid, logic)
        if stage.value == stop:
            os.kill(os.getpid(), signal.SIGKILL)
""")


def test_interrupted_campaign_matches_the_uninterrupted_one(db, make_spec, database_url):
    spec = {"budget": {"evaluations": 40}, "optimizer": {"name": "ngopt", "population": 8},
            "fidelities": [{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}],
            "constraints": [], "seed": 21}
    a = campaigns.insert_campaign(db, make_spec(slug="uninterrupted", **spec))
    b = campaigns.insert_campaign(db, make_spec(slug="interrupted", **spec))
    _run_to_end(db, a)

    env = {**os.environ, "SUPABASE_DB_URL": database_url}

    def interrupt(i: int) -> None:
        if i == 1:  # killed right after evolve's commit
            proc = subprocess.run([sys.executable, "-c", KILL, str(b), "evolve"], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == -signal.SIGKILL, proc.stderr
        elif i == 3:  # killed after parse, before review
            proc = subprocess.run([sys.executable, "-c", KILL, str(b), "parse"], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == -signal.SIGKILL, proc.stderr
        elif i == 4:  # a tick that died during the inline generation
            db.execute("update hunt.generations set status = 'running', attempt = attempt + 1,"
                       " dispatch_ref = 'inline:dead' where campaign_id = %s and status = 'planned'", (b,))

    _run_to_end(db, b, interrupt)
    ra, rb = campaigns.get_campaign(db, a), campaigns.get_campaign(db, b)
    assert (ra["status"], ra["completion_reason"]) == (rb["status"], rb["completion_reason"]) == ("completed", "budget_spent")
    fa, fb = _fingerprint(db, a), _fingerprint(db, b)
    assert len(fa) >= 40 and fa == fb
    assert {e[2] for e in fa} >= {"search", "certification"}
    assert ra["best_objective"] == rb["best_objective"]
    _assert_modes_replay(db, a)


def _assert_modes_replay(db, cid) -> None:
    """The mode evolve steers with (learn.current_mode) replays the trajectory learn recorded."""
    spec = campaigns.spec_of(campaigns.get_campaign(db, cid))
    rows = db.execute(
        "select t.mode, g.ask_id from hunt.trajectories t join hunt.generations g using (generation_id)"
        " where t.campaign_id = %s order by g.ask_id", (cid,)).fetchall()
    evals = generations.campaign_evaluations(db, cid)
    budget = campaigns.get_campaign(db, cid)["evaluations_budget"]
    replayed = [learn.current_mode(spec, evals, {r["ask_id"] for r in rows[: k + 1]}, budget).value
                for k in range(len(rows))]
    assert replayed == [r["mode"] for r in rows]
    assert len(set(replayed)) >= 2, replayed  # the campaign went through more than one mode
    # the same sweep over one summary row per generation (what evolve runs) agrees
    gens = summaries.for_campaign(db, cid, learn.objective_targets(spec))
    assert [learn.mode_of_generations(spec, gens, {r["ask_id"] for r in rows[: k + 1]}, budget).value
            for k in range(len(rows))] == replayed


def test_extending_a_completed_campaign_resumes_the_search(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec(budget={"evaluations": 16}))
    _run_to_end(db, cid)
    before = len(generations.campaign_evaluations(db, cid))
    campaigns.extend_budget(db, cid, 16)
    _run_to_end(db, cid)
    row = campaigns.get_campaign(db, cid)
    after = generations.campaign_evaluations(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    assert len(after) == before + 16
    assert len({e["param_hash"] for e in after}) > len({e["param_hash"] for e in after[:before]})

