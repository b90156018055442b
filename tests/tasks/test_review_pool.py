"""Review's verification batches on the pool operator, without workers: dispatch launches them
with ``run_deployment`` on the test harness's Prefect API like any pool generation, and the test
does what the pool's worker does (run the ``hunt-generation`` flow for each scheduled run)."""

from __future__ import annotations

import uuid

import pytest

from huntflow.engine.summary import best_of
from huntflow.flows.generation import hunt_generation
from huntflow.store import campaigns, findings, generations
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

pytestmark = pytest.mark.usefixtures("prefect_harness")
STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]
DECAY = {"model": {"name": "euler_decay"},
         "space": {"rate": {"low": 0.0, "high": 6.0}, "shift": {"low": -1.0, "high": 1.0}},
         "fidelities": [{"name": "coarse", "settings": {"dt": 0.5, "steps": 5}}],
         "budget": {"evaluations": 16}, "optimizer": {"name": "random", "population": 8}}


@pytest.fixture
def generation_deployment():
    """``hunt-generation/gpu`` registered on the harness's API (no work pool, no worker)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("hunt-generation")
        client.create_deployment(flow_id=flow_id, name="gpu", entrypoint="huntflow/flows/generation.py:hunt_generation")
        yield client


def _tick(cid) -> None:
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="pool")
    for stage, logic in STAGES:
        run_stage(stage, ctx, cid, logic)


def _work_the_pool(db, cid) -> int:
    """The pool worker's part: run every dispatched pool generation's flow (in this process)."""
    gens = generations.by_status(db, cid, [GS.DISPATCHED])
    for g in gens:
        assert g["operator"] == "pool" and uuid.UUID(g["dispatch_ref"])  # a flow run id, not an inline run
        hunt_generation(generation_id=str(g["generation_id"]))
    return len(gens)


def test_verification_batches_run_on_the_pool_and_the_artefact_is_rejected(db, make_spec, generation_deployment):
    cid = campaigns.insert_campaign(db, make_spec(slug="decay-pool", **DECAY))
    waited = False
    for _ in range(30):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        _tick(cid)
        rows = db.execute("select kind, status from hunt.generations where campaign_id = %s", (cid,)).fetchall()
        # a checked generation waits, parsed, while its verification batch is on the pool
        waited |= any(r["kind"] == "search" and r["status"] == "parsed" for r in rows) and any(
            r["kind"] == "verification" and r["status"] in ("planned", "dispatched") for r in rows)
        _work_the_pool(db, cid)
    row = campaigns.get_campaign(db, cid)
    assert row["status"] == "completed", row
    gens = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    checks = [g for g in gens if g["kind"] == "verification"]
    assert checks and waited
    assert all(g["operator"] == "pool" and g["status"] == "reviewed" and uuid.UUID(g["dispatch_ref"]) for g in checks)
    found = findings.for_campaign(db, cid)
    high = [f for f in found if f["severity"] == "high" and "half_dt" in f["message"]]
    assert high  # the Euler artefact (rate·dt > 1) looked best and did not survive the pool's re-run
    evals = generations.campaign_evaluations(db, cid)
    best = best_of(campaigns.spec_of(row), evals)
    assert best["metrics"]["f"] > -0.1 and best["evaluation_id"] not in {f["evaluation_id"] for f in high}
