"""Stage logic on the real database, one stage at a time (no flow needed)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from huntflow.engine import artifacts
from huntflow.store import campaigns, findings, generations
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, parse, review
from huntflow.tasks._stage import TickContext, run_stage


def _ctx() -> TickContext:
    tick = uuid.uuid4()
    return TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")


def _stage(stage, logic, cid, ctx=None):
    return run_stage(stage, ctx or _ctx(), cid, logic)


def _plan_and_run(db, cid):
    """evolve (plan) then dispatch (execute inline); returns the generation row."""
    _stage(Stage.EVOLVE, evolve.run, cid)
    _stage(Stage.DISPATCH, dispatch.run, cid)
    (gen,) = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    return gen


def test_corrupt_result_document_is_recomputed_from_the_artifact(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    gen = _plan_and_run(db, cid)
    assert gen["status"] == "succeeded"
    art = artifacts.read_generation(gen["artifact_path"])
    db.execute("update hunt.generations set result_document = '{\"format\": \"garbage\"}' where generation_id = %s",
               (gen["generation_id"],))
    out = _stage(Stage.PARSE, parse.run, cid)
    assert out["parsed"][0]["tier"] == 2 and "format" in out["parsed"][0]["problem"]
    rows = generations.evaluations(db, gen["generation_id"])
    assert [r["status"] for r in rows] == ["succeeded"] * len(rows)
    np.testing.assert_allclose([r["metrics"]["f"] for r in rows], art.metrics["f"])
    assert all(r["provenance"]["parse_tier"] == 2 for r in rows)


def test_missing_document_and_artifact_sends_the_generation_back(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec(max_attempts=2))
    gen = _plan_and_run(db, cid)
    db.execute("update hunt.generations set result_document = null, artifact_path = '/nonexistent.h5'"
               " where generation_id = %s", (gen["generation_id"],))
    out = _stage(Stage.PARSE, parse.run, cid)
    assert out["parsed"][0]["outcome"] == "planned"
    again = generations.get(db, gen["generation_id"])
    assert again["status"] == "planned" and "0/8 candidates parsed" in again["error"]
    # the next dispatch runs the very same generation again, attempt 2
    _stage(Stage.DISPATCH, dispatch.run, cid)
    assert generations.get(db, gen["generation_id"])["attempt"] == 2
    assert _stage(Stage.PARSE, parse.run, cid)["parsed"][0]["outcome"] == "parsed"


def test_review_rejects_out_of_bounds_metrics_and_records_findings(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec(review={"metric_abs_max": 0.05}))
    gen = _plan_and_run(db, cid)
    _stage(Stage.PARSE, parse.run, cid)
    out = _stage(Stage.REVIEW, review.run, cid)
    rows = generations.evaluations(db, gen["generation_id"])
    big = [r for r in rows if abs(r["metrics"]["f"]) > 0.05]
    assert big, "the sphere batch should contain values above 0.05"
    assert out["reviewed"][0]["rejected"] == len(big)
    assert {r["evaluation_id"] for r in rows if r["status"] == "rejected"} == {r["evaluation_id"] for r in big}
    found = findings.for_campaign(db, cid)
    assert {f["kind"] for f in found} == {"metric_out_of_bounds"}
    assert all(f["severity"] == "high" for f in found)
    # the optimizer is told: rejected evaluations are infeasible
    _stage(Stage.EVOLVE, evolve.run, cid)
    told = generations.evaluations(db, gen["generation_id"])
    assert all(r["feasible"] is False for r in told if r["status"] == "rejected")


def test_review_spot_check_catches_a_claim_the_engine_cannot_reproduce(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    gen = _plan_and_run(db, cid)
    _stage(Stage.PARSE, parse.run, cid)
    rows = generations.evaluations(db, gen["generation_id"])
    liar = min(rows, key=lambda r: r["metrics"]["f"])
    db.execute("update hunt.evaluations set metrics = jsonb_set(metrics, '{f}', '-1.0') where evaluation_id = %s",
               (liar["evaluation_id"],))
    _stage(Stage.REVIEW, review.run, cid)
    found = findings.for_campaign(db, cid)
    assert [(f["kind"], f["evaluation_id"]) for f in found] == [("verification", liar["evaluation_id"])]
    assert found[0]["severity"] == "high" and "repeat" in found[0]["message"] and "-1.0" in found[0]["message"]
    assert generations.get(db, gen["generation_id"])["status"] == "reviewed"
    assert {r["evaluation_id"] for r in generations.evaluations(db, gen["generation_id"])
            if r["status"] == "rejected"} == {liar["evaluation_id"]}


def test_inline_generation_left_running_by_a_dead_tick_is_run_again(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    _stage(Stage.EVOLVE, evolve.run, cid)
    (gen,) = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    db.execute("update hunt.generations set status = 'running', attempt = 1, dispatch_ref = 'inline:dead-tick'"
               " where generation_id = %s", (gen["generation_id"],))
    out = _stage(Stage.DISPATCH, dispatch.run, cid)
    assert out["recovered"][0]["now"] == "planned"
    again = generations.get(db, gen["generation_id"])
    # the orchestrator died, not the work: the attempt is given back, the interruption counted
    assert (again["status"], again["attempt"], again["interruptions"]) == ("succeeded", 1, 1)


def test_evolve_is_deterministic_for_a_seed(db, make_spec):
    params = []
    for slug in ("det-one", "det-two"):
        cid = campaigns.insert_campaign(db, make_spec(slug=slug, seed=5))
        _stage(Stage.EVOLVE, evolve.run, cid)
        (gen,) = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
        params.append([e["params"] for e in generations.evaluations(db, gen["generation_id"])])
    assert params[0] == params[1]


def test_a_failing_stage_records_the_error_and_reraises(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    ctx = _ctx()

    def broken(conn, campaign, ctx):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage(Stage.PARSE, ctx, cid, broken)
    (row,) = db.execute("select * from hunt.stage_runs where tick_id = %s", (ctx.tick_id,)).fetchall()
    assert row["status"] == "failed" and "boom" in row["error"] and row["finished_at"] is not None


def test_spot_check_does_not_reject_an_honest_simulator(db, make_spec):
    """CGL's float32 PDE residual differs between batch shapes; the re-run must use the same one."""
    spec = make_spec(
        slug="honest-cgl", model={"name": "cgl", "fixed": {"sigma": 0.0, "L": 40.0}},
        space={"alpha": {"low": -0.6, "high": 0.6}, "beta": {"low": -0.6, "high": 0.6},
               "kappa": {"low": 0.3, "high": 0.6}, "ell": {"low": 1.8, "high": 2.6}},
        objectives=[{"metric": "log_prime_sse"}], constraints=[{"metric": "h_norm", "max": 0.05}],
        fidelities=[{"name": "fine", "settings": {"grid": 64, "steps": 400, "dt": 0.025}}],
        optimizer={"name": "ngopt", "population": 8},
        review={"spot_check_top": 1},
    )
    cid = campaigns.insert_campaign(db, spec)
    gen = _plan_and_run(db, cid)
    _stage(Stage.PARSE, parse.run, cid)
    out = _stage(Stage.REVIEW, review.run, cid)
    assert out["reviewed"][0]["spot_checked"] == 1
    assert findings.for_campaign(db, cid) == []
    assert all(r["status"] == "succeeded" for r in generations.evaluations(db, gen["generation_id"]))
