"""A tick that lost its lease writes nothing; interrupted runs keep their attempts; poison ends."""

from __future__ import annotations

import uuid

from huntflow.store import campaigns, generations, settings
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, poison
from huntflow.tasks._stage import TickContext, run_stage
from huntflow.tasks.execute import execute_generation


def _ctx(guarded: bool = False) -> TickContext:
    tick = uuid.uuid4()
    return TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline", guarded=guarded)


def test_a_stage_whose_lease_was_taken_stops_and_writes_nothing(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    late = _ctx(guarded=True)
    campaigns.claim_cohort(db, late.owner, 4, 30)
    db.execute("update hunt.campaigns set lease_owner = 'tick:newer' where campaign_id = %s", (cid,))
    out = run_stage(Stage.EVOLVE, late, cid, evolve.run)
    assert "tick:newer" in out["lease_lost"]
    assert db.execute("select count(*) as n from hunt.generations").fetchone()["n"] == 0
    (row,) = db.execute("select * from hunt.stage_runs where tick_id = %s", (late.tick_id,)).fetchall()
    assert row["status"] == "skipped" and "lease lost" in row["summary"]["reason"]
    assert campaigns.get_campaign(db, cid)["current_stage"] != "evolve"


def _planned(db, make_spec, **spec):
    cid = campaigns.insert_campaign(db, make_spec(**spec))
    run_stage(Stage.EVOLVE, _ctx(), cid, evolve.run)
    (gen,) = generations.by_status(db, cid, [GS.PLANNED])
    return cid, gen


def test_orchestrator_deaths_do_not_spend_attempts_until_the_free_ones_are_used(db, make_spec):
    cid, gen = _planned(db, make_spec, max_attempts=2)
    gid = gen["generation_id"]
    for k in range(generations.FREE_INTERRUPTIONS):
        db.execute("update hunt.generations set status = 'running', attempt = attempt + 1,"
                   " dispatch_ref = 'inline:dead' where generation_id = %s", (gid,))
        assert generations.requeue_interrupted(db, gid, [GS.RUNNING], "interrupted") == GS.PLANNED
        row = generations.get(db, gid)
        assert (row["attempt"], row["interruptions"], row["dispatch_ref"]) == (0, k + 1, None)
    # a batch that kills its process every time must still end: now each death is an attempt
    for expected in (GS.PLANNED, GS.FAILED):
        db.execute("update hunt.generations set status = 'running', attempt = attempt + 1,"
                   " dispatch_ref = 'inline:dead' where generation_id = %s", (gid,))
        assert generations.requeue_interrupted(db, gid, [GS.RUNNING], "interrupted") == expected
    assert {e["status"] for e in generations.evaluations(db, gid)} == {"failed"}


def test_a_taken_over_inline_run_writes_nothing(db, make_spec):
    cid, gen = _planned(db, make_spec)
    gid = gen["generation_id"]
    db.execute("update hunt.generations set status = 'dispatched', attempt = 1, dispatch_ref = 'inline:new'"
               " where generation_id = %s", (gid,))
    out = execute_generation(gid, dispatch_ref="inline:old")  # the tick that lost the lease resumes
    assert out["status"] == "noop"
    row = generations.get(db, gid)
    assert (row["status"], row["dispatch_ref"], row["started_at"]) == ("dispatched", "inline:new", None)
    assert execute_generation(gid, dispatch_ref="inline:new")["status"] == "succeeded"


def test_dispatch_requeues_a_dead_ticks_inline_run_at_the_same_attempt(db, make_spec):
    cid, gen = _planned(db, make_spec)
    gid = gen["generation_id"]
    db.execute("update hunt.generations set status = 'running', attempt = 1, dispatch_ref = 'inline:dead'"
               " where generation_id = %s", (gid,))
    ctx = _ctx()
    out = run_stage(Stage.DISPATCH, ctx, cid, dispatch.run)
    assert out["recovered"] == [{"generation_id": str(gid), "now": "planned"}]
    row = generations.get(db, gid)
    assert (row["status"], row["attempt"], row["interruptions"], row["dispatch_ref"]) == (
        "succeeded", 1, 1, f"inline:{ctx.tick_id}")


def test_a_campaign_failing_n_ticks_in_a_row_is_failed_and_a_clean_tick_resets_the_count(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    settings.set_setting(db, "failure_streak_limit", 3)
    campaigns.claim_cohort(db, "tick:a", 4, 30)  # accounting writes under the tick's lease
    boom = RuntimeError("optimizer exploded")
    assert poison.account("tick:a", cid, "evolve", boom) == {"streak": 1}
    assert poison.account("tick:a", cid, None, None) is None  # a clean tick
    assert campaigns.get_campaign(db, cid)["failure_streak"] == 0
    for n in (1, 2):
        assert poison.account("tick:a", cid, "evolve", boom) == {"streak": n}
    out = poison.account("tick:a", cid, "evolve", boom)
    row = campaigns.get_campaign(db, cid)
    assert row["status"] == "failed" and out == {"failed": row["completion_reason"]}
    assert row["completion_reason"].startswith("poisoned: evolve failed 3 ticks in a row")
    assert "optimizer exploded" in row["last_error"]
    assert campaigns.claim_cohort(db, "tick:b", 4, 30) == []  # no tick slot any more


def test_outages_and_lost_leases_do_not_count_as_poison(db, make_spec):
    import psycopg

    from huntflow.store.leases import LeaseLost

    cid = campaigns.insert_campaign(db, make_spec())
    settings.set_setting(db, "failure_streak_limit", 1)
    campaigns.claim_cohort(db, "tick:a", 4, 30)
    assert poison.account("tick:a", cid, "parse", psycopg.OperationalError("server closed the connection")) is None
    assert poison.account("tick:a", cid, "parse", LeaseLost("lease lost")) is None
    assert campaigns.get_campaign(db, cid)["status"] == "active"


def test_a_campaign_whose_generations_all_fail_is_failed(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    settings.set_setting(db, "failure_streak_limit", 2)
    campaigns.claim_cohort(db, "tick:a", 4, 30)
    for ask in range(2):
        gid = db.execute(
            "insert into hunt.generations (campaign_id, generation_index, ask_id, kind, fidelity, fidelity_name,"
            " seed, operator, max_attempts, status, error) values (%s, %s, %s, 'search', 0, 'default', 1, 'inline',"
            " 1, 'failed', 'evaluation failed: ValueError: bad rung') returning generation_id",
            (cid, ask, ask)).fetchone()["generation_id"]
        assert gid
        out = poison.account("tick:a", cid, None, None)
    assert out and "last 2 generations all failed their attempts: evaluation failed" in out["failed"]
    assert campaigns.get_campaign(db, cid)["status"] == "failed"


def test_a_guarded_stage_hands_its_connection_back_untied_whatever_its_outcome(db, make_spec):
    """run_stage ties its pooled connection to the lease in the statement that opens its row and
    unties it in the one that closes it: after success, failure or a lost lease the connection
    goes back to the pool with no owner set (the next borrower's writes are not guarded by it)."""
    import pytest

    from huntflow.store.connection import session

    cid = campaigns.insert_campaign(db, make_spec())
    ctx = _ctx(guarded=True)
    campaigns.claim_cohort(db, ctx.owner, 4, 30)
    seen = []

    def peek(conn, campaign, _ctx):
        seen.append(conn.execute("select current_setting('huntflow.lease_owner', true) as o").fetchone()["o"])
        return {"ok": True}

    def broken(conn, campaign, _ctx):
        peek(conn, campaign, _ctx)
        raise RuntimeError("boom")

    def owners_in_pool() -> set:
        with session() as a, session() as b:  # the pool lends its idle connections first
            return {c.execute("select current_setting('huntflow.lease_owner', true) as o").fetchone()["o"] or ""
                    for c in (a, b)}

    assert run_stage(Stage.LEARN, ctx, cid, peek) == {"ok": True}
    assert owners_in_pool() == {""}
    with pytest.raises(RuntimeError):
        run_stage(Stage.PARSE, ctx, cid, broken)
    assert owners_in_pool() == {""}
    db.execute("update hunt.campaigns set lease_owner = 'tick:newer' where campaign_id = %s", (cid,))
    assert "tick:newer" in run_stage(Stage.REVIEW, ctx, cid, peek)["lease_lost"]
    assert owners_in_pool() == {""}
    assert seen == [ctx.owner] * 2  # the first two stages ran tied to the lease; the third was refused first
    rows = {r["stage"]: r["status"] for r in
            db.execute("select stage::text, status::text from hunt.stage_runs where tick_id = %s", (ctx.tick_id,))}
    assert rows == {"learn": "succeeded", "parse": "failed", "review": "skipped"}


def test_a_chained_ticks_stage_rows_close_with_the_next_opening_and_a_lost_lease_still_stops_it(db, make_spec):
    """In a chained tick a succeeded stage's row is closed by the campaign's next opening (same
    summary, finished before the next started); if the lease is lost in between, that opening is
    refused, the left row is closed ``skipped`` with the reason and the next stage ends lease lost.
    end_campaign closes what is still left and hands the connection back untied."""
    from huntflow.store.connection import session
    from huntflow.tasks._stage import end_campaign

    cid = campaigns.insert_campaign(db, make_spec())
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline", guarded=True, chained=True)
    campaigns.claim_cohort(db, ctx.owner, 4, 30)

    def rows():
        return {r["stage"]: r for r in db.execute(
            "select stage::text, status::text, summary, started_at, finished_at from hunt.stage_runs"
            " where tick_id = %s", (tick,)).fetchall()}

    assert run_stage(Stage.DISPATCH, ctx, cid, lambda c, row, x: {"n": 1}) == {"n": 1}
    assert rows()["dispatch"]["status"] == "running"  # left for the next opening
    assert run_stage(Stage.PARSE, ctx, cid, lambda c, row, x: {"n": 2}) == {"n": 2}
    got = rows()
    assert got["dispatch"]["status"] == "succeeded" and got["dispatch"]["summary"] == {"n": 1}
    assert got["dispatch"]["finished_at"] <= got["parse"]["started_at"]
    db.execute("update hunt.campaigns set lease_owner = 'tick:newer' where campaign_id = %s", (cid,))
    assert "tick:newer" in run_stage(Stage.REVIEW, ctx, cid, lambda c, row, x: {"n": 3})["lease_lost"]
    got = rows()
    assert got["parse"]["status"] == "skipped" and "tick:newer" in got["parse"]["summary"]["reason"]
    assert got["review"]["status"] == "skipped"
    db.execute("update hunt.campaigns set lease_owner = %s where campaign_id = %s", (ctx.owner, cid))
    assert run_stage(Stage.EVOLVE, ctx, cid, lambda c, row, x: {"n": 4}) == {"n": 4}
    end_campaign(ctx, cid)
    assert rows()["evolve"]["status"] == "succeeded" and rows()["evolve"]["summary"] == {"n": 4}
    with session() as a, session() as b:  # nothing handed back tied
        assert {c.execute("select current_setting('huntflow.lease_owner', true) as o").fetchone()["o"] or ""
                for c in (a, b)} == {""}
