"""Overlap: inline generations on the loop's executor compute while the ticks go on, and change
nothing of what is asked and found; the loop's lease protects them while it lives and a dead
loop's are requeued by the next tick of anyone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from huntflow.store import campaigns, generations, leases
from huntflow.store.connection import session
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import discover, dispatch, evolve, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage
from huntflow.tasks.execute import begin_generation, execute_generation
from huntflow.tasks.inline import Executor

STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]
SPEC = {"budget": {"evaluations": 32}, "optimizer": {"name": "ngopt", "population": 4, "options": {"max_in_flight": 2}},
        "fidelities": [{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}], "seed": 8}


def _tick(cid, owner: str | None = None) -> dict:
    """One tick's stages (no Prefect): a one-shot tick, or a tick of the loop ``owner``."""
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=owner or f"tick:{tick}", operator="inline")
    return {stage: run_stage(stage, ctx, cid, logic) for stage, logic in STAGES}


def _evaluations(db, cid):
    return [(e["ask_id"], e["candidate_index"], e["kind"], e["fidelity"], e["params"], e["metrics"], e["status"],
             e["objective"])
            for e in generations.campaign_evaluations(db, cid)]


def _run(db, cid, owner=None, limit=80, stop_after=None, seen=None) -> int:
    for i in range(limit):
        if campaigns.get_campaign(db, cid)["status"] != "active" or (stop_after is not None and i == stop_after):
            return i
        out = _tick(cid, owner)
        if seen is not None:
            seen.append(out)
    raise AssertionError("campaign did not finish")


def _jittery(gid: str, ref: str):
    time.sleep(random.uniform(0, 0.05))  # generations come back at other moments than the ticks expect
    if random.random() < 0.5:
        return execute_generation(gid, dispatch_ref=ref)
    begun = begin_generation(gid, dispatch_ref=ref)  # recorded by the executor's second thread

    def record():
        time.sleep(random.uniform(0, 0.05))
        return begun()
    return record if callable(begun) else begun


def test_the_executor_path_asks_and_finds_what_the_synchronous_path_does_interrupted_or_not(db, make_spec):
    """Same spec and seed, max_in_flight 2 with a promotion ladder: ticks that run both
    generations synchronously, ticks of a loop whose executor runs them while the ticks go on
    (its generations back at random moments), and a loop stopped midway with generations on its
    executor (drained) and resumed by a fresh loop with a fresh optimizer, give the same rows."""
    sync = campaigns.insert_campaign(db, make_spec(slug="overlap-sync", **SPEC))
    loop = campaigns.insert_campaign(db, make_spec(slug="overlap-loop", **SPEC))
    resumed = campaigns.insert_campaign(db, make_spec(slug="overlap-resumed", **SPEC))
    _run(db, sync)
    owner = f"loop:{uuid.uuid4()}"
    seen: list[dict] = []
    with Executor(owner, runner=_jittery):
        _run(db, loop, owner, seen=seen)
    first = f"loop:{uuid.uuid4()}"
    with Executor(first, runner=_jittery) as ex:
        _run(db, resumed, first, stop_after=4)
        assert ex.busy(resumed) or ex.ran  # it stopped with work on the executor or just done
    assert not generations.by_status(db, resumed, [GS.DISPATCHED, GS.RUNNING])  # drained
    evolve._LIVE.pop(resumed, None)  # a fresh process: the optimizer from its checkpoint and journal
    with Executor(f"loop:{uuid.uuid4()}", runner=_jittery) as ex:
        _run(db, resumed, ex.owner)
    rows = _evaluations(db, sync)
    assert {r[2] for r in rows} >= {"search", "certification"} and len(rows) >= 28
    assert _evaluations(db, loop) == rows
    assert _evaluations(db, resumed) == rows
    # review's verification batches: the same ones (rows, seeds, results) on every path; the
    # loop's ran on its executor (its dispatch reference), the one-shot ticks' in review
    checks = {cid: db.execute("select g.seed, g.fidelity, g.dispatch_ref, e.candidate_index, e.params, e.metrics"
                              " from hunt.generations g join hunt.evaluations e using (generation_id)"
                              " where g.campaign_id = %s and g.kind = 'verification'"
                              " order by g.ask_id, e.candidate_index", (cid,)).fetchall()
              for cid in (sync, loop, resumed)}
    assert checks[sync] and all(r["dispatch_ref"].startswith("inline:") for r in checks[sync])
    assert {r["dispatch_ref"] for r in checks[loop]} == {f"inline:{owner.split(':', 1)[1]}"}

    # the executor hands review's batches back apart from the campaign's generations (no batch table)
    back = [x for out in seen for x in out[Stage.DISPATCH].get("finished", [])]
    checked = [g for out in seen for g in out[Stage.DISPATCH].get("verifications_finished", [])]
    verification_ids = {str(r["generation_id"]) for r in db.execute(
        "select generation_id from hunt.generations where campaign_id = %s and kind = 'verification'", (loop,))}
    assert checked and set(checked) <= verification_ids and not {x["generation_id"] for x in back} & verification_ids

    def same(rs):
        return [(r["seed"], r["fidelity"], r["candidate_index"], r["params"], r["metrics"]) for r in rs]
    assert same(checks[loop]) == same(checks[sync]) == same(checks[resumed])
    for cid in (sync, loop, resumed):
        assert campaigns.get_campaign(db, cid)["status"] == "completed"


LOOP = textwrap.dedent("""
    import sys, threading, time, uuid
    from huntflow.store import leases
    from huntflow.store.connection import database_url
    from huntflow.store.states import Stage
    from huntflow.tasks import discover, dispatch
    from huntflow.tasks._stage import TickContext, run_stage
    from huntflow.tasks.inline import Executor
    cid, owner = uuid.UUID(sys.argv[1]), sys.argv[2]
    with leases.Heartbeat(database_url(), owner) as beat, Executor(owner, runner=lambda g, r: time.sleep(600)):
        ctx = TickContext(tick_id=uuid.uuid4(), owner=owner, lease_seconds=beat.lease_seconds, guarded=True,
                          session_pid=beat.pid, operator="inline")
        assert discover.run(ctx, [cid]) == [cid]
        beat.hold([cid])
        threading.Thread(target=run_stage, args=(Stage.DISPATCH, ctx, cid, dispatch.run), daemon=True).start()
        time.sleep(600)  # killed before
""")


def _guarded_tick(cid, beat: leases.Heartbeat) -> dict:
    ctx = TickContext(tick_id=uuid.uuid4(), owner=beat.owner, lease_seconds=beat.lease_seconds, guarded=True,
                      session_pid=beat.pid, operator="inline")
    claimed = discover.run(ctx, [cid])
    if claimed != [cid]:
        return {}
    beat.hold(claimed)
    try:
        return {stage: run_stage(stage, ctx, cid, logic) for stage, logic in STAGES}
    finally:
        beat.release(cid)
        with session() as conn:
            campaigns.release_lease(conn, cid, beat.owner)


def test_a_live_loops_generations_are_left_alone_and_a_killed_loops_requeued_without_an_attempt(
        db, make_spec, database_url):
    """A loop (a real subprocess) holds the campaign's lease while its executor runs the
    generation: another tick cannot claim the campaign and the loop's own later tick leaves the
    generation alone. Killed with SIGKILL, its session's lock drops: the next tick claims at once,
    requeues the generation at the same attempt and finishes it; nothing is told twice."""
    cid = campaigns.insert_campaign(db, make_spec(slug="overlap-killed", budget={"evaluations": 16},
                                                  optimizer={"name": "random", "population": 8}))
    _tick(cid)  # evolve plans generation 0
    owner = f"loop:{uuid.uuid4()}"
    env = {**os.environ, "SUPABASE_DB_URL": database_url}
    proc = subprocess.Popen([sys.executable, "-c", LOOP, str(cid), owner], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not generations.by_status(db, cid, [GS.DISPATCHED]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.1)
        (gen,) = generations.by_status(db, cid, [GS.DISPATCHED])
        assert gen["dispatch_ref"] == f"inline:{owner.split(':')[1]}" and gen["attempt"] == 1
        with leases.Heartbeat(database_url, f"tick:{uuid.uuid4()}") as other:
            assert _guarded_tick(cid, other) == {}  # the live loop holds the lease: nothing claimed
        out = run_stage(Stage.DISPATCH, TickContext(tick_id=uuid.uuid4(), owner=owner, operator="inline"), cid,
                        dispatch.run)  # a later tick of the same loop (same owner)
        assert out["recovered"] == [] and generations.get(db, gen["generation_id"])["status"] == "dispatched"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with leases.Heartbeat(database_url, f"tick:{uuid.uuid4()}") as other:
        out = _guarded_tick(cid, other)  # claimable at once: the loop's session is gone
    assert out[Stage.DISPATCH]["recovered"] == [{"generation_id": str(gen["generation_id"]), "now": "planned"}]
    row = generations.get(db, gen["generation_id"])
    assert (row["status"], row["attempt"], row["interruptions"]) == ("told", 1, 1)
    _run(db, cid)
    evals = generations.campaign_evaluations(db, cid)
    assert len(evals) == 16 and len({(e["ask_id"], e["candidate_index"]) for e in evals}) == 16
    told = db.execute("select count(*) as n, count(distinct ask_id) as d from hunt.generations"
                      " where campaign_id = %s and status = 'told'", (cid,)).fetchone()
    assert told["n"] == told["d"] == 2


def test_the_loop_keeps_one_owner_drains_its_executor_and_releases_its_leases(db, make_spec, prefect_harness):
    """``tick --until-done``'s loop (one flow run): its ticks queue inline generations on the
    executor under one owner, and when it stops (here after three ticks, mid-campaign) nothing
    is left dispatched and no lease is held; the next loop finishes the campaign."""
    from huntflow.flows.cli.run import run_ticks

    cid = campaigns.insert_campaign(db, make_spec(slug="overlap-cli", budget={"evaluations": 24},
                                                  optimizer={"name": "random", "population": 4,
                                                             "options": {"max_in_flight": 2}}))
    ticks, _ = run_ticks("overlap-cli", True, 3, show_progress=False)
    assert ticks == 3
    assert not generations.by_status(db, cid, [GS.DISPATCHED, GS.RUNNING])
    row = campaigns.get_campaign(db, cid)
    assert (row["lease_owner"], row["lease_pid"]) == (None, None)
    rows = db.execute("select owner, summary from hunt.stage_runs where campaign_id = %s and stage = 'dispatch'",
                      (cid,)).fetchall()
    assert len({r["owner"] for r in rows}) == 1 and rows[0]["owner"].startswith("loop:")
    assert any(g.get("queued") for r in rows for g in r["summary"].get("launched", []))
    run_ticks("overlap-cli", True, 50, show_progress=False)
    assert campaigns.get_campaign(db, cid)["status"] == "completed"
    assert len(generations.campaign_evaluations(db, cid)) == 24


def test_the_executor_runs_in_order_says_when_one_is_done_and_drains_or_abandons_the_queue():
    """One slot, FIFO (``first``: ahead of the queued ones, never of the running one); wait()
    returns once one of the campaign's is back; a normal end runs what is queued, an
    interrupted one finishes only the running generation."""
    ran: list[str] = []

    def slow(gid: str, ref: str) -> dict:
        time.sleep(0.05)
        ran.append(gid)
        return {"generation_id": gid, "status": "succeeded"}

    a, b = uuid.uuid4(), uuid.uuid4()
    with Executor("loop:t1", runner=slow) as ex:
        for i in range(3):
            ex.submit(a, f"a{i}", "inline:t1")
        ex.submit(b, "b0", "inline:t1")
        assert ex.wait(a, timeout=30) and [r["generation_id"] for r in ex.finished(a)] == ["a0"]
    assert ran == ["a0", "a1", "a2", "b0"] and not ex.busy()
    ran.clear()
    gate = threading.Event()

    def held(gid: str, ref: str) -> dict:
        gate.wait(30)
        return slow(gid, ref)

    with Executor("loop:t0", runner=held) as ex:  # a verification batch goes ahead of the queued ones
        for i in range(3):
            ex.submit(a, f"a{i}", "inline:t0")
        ex.submit(a, "v0", "inline:t0", first=True)
        gate.set()
    assert ran[1:] == ["v0", "a1", "a2"] or ran == ["v0", "a0", "a1", "a2"]  # a0 may have started already
    ran.clear()
    with pytest.raises(KeyboardInterrupt):
        with Executor("loop:t2", runner=slow) as ex:
            for i in range(3):
                ex.submit(a, f"a{i}", "inline:t2")
            assert ex.wait(a, timeout=30)
            raise KeyboardInterrupt
    assert ran in (["a0"], ["a0", "a1"])  # the one running when interrupted finishes, the rest is left
    assert not ex.busy() and {r["status"] for r in ex.finished(a)} >= {"abandoned"}


def test_compile_ahead_knows_every_batch_shape_a_campaign_runs_and_compiles_them(db, make_spec):
    """campaign_shapes predicts the batch of every generation the plan runs (searches, the
    budget's remainder, the certification, review's verification batches); LoopWarmer compiles
    them all ahead (once per campaign), so no generation of the campaign compiles anything."""
    from huntflow.tasks.execute import batch_inputs
    from huntflow.tasks.warmup import LoopWarmer, campaign_shapes

    fidelities = [{"name": "rough", "settings": {"bias": 0.3141}}, {"name": "exact"}]  # shapes no other test compiled
    spec = make_spec(slug="ahead", **{**SPEC, "fidelities": fidelities, "budget": {"evaluations": 30}, "seed": 5})
    cid = campaigns.insert_campaign(db, spec)
    shapes = campaign_shapes(spec)
    warmer = LoopWarmer()
    warmer.see(cid)
    warmer.see(cid)  # once per campaign
    deadline = time.monotonic() + 120
    while len(warmer.compiled) < len(shapes):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    warmer.close()
    assert len(warmer.compiled) == len(shapes) and sum(c["seconds"] for c in warmer.compiled) > 0
    _run(db, cid)
    predicted = {(repr(sorted(m.get("fixed", {}).items())), repr(sorted(s.items())), n) for m, s, n in shapes}
    kinds, sizes = set(), set()
    for g in db.execute("select generation_id from hunt.generations where campaign_id = %s", (cid,)).fetchall():
        gen = generations.get(db, g["generation_id"])
        rows = generations.evaluations(db, g["generation_id"])
        model, settings, _ = batch_inputs(spec, gen, rows)
        shape = (repr(sorted(model.get("fixed", {}).items())), repr(sorted(settings.items())), len(rows))
        assert shape in predicted, (gen["kind"], shape, predicted)
        assert float(gen["result_document"]["compile_seconds"]) < 0.01, (gen["kind"], gen["result_document"])
        kinds.add(gen["kind"])
        sizes.add((gen["kind"], len(rows)))
    assert kinds >= {"search", "certification", "verification"}
    assert len({n for k, n in sizes if k == "search"}) == 2  # the population and the budget's remainder
