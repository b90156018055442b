"""The Prefect UI as the hunt's control room, on the Prefect harness: the hunt-campaign flows,
readable run names, the campaign's artifacts (updated in place) and its events."""

from __future__ import annotations

import json

import pytest

from huntflow.store import campaigns

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = {"slug": "room-sphere", "model": {"name": "sphere"},
        "space": {"x0": {"low": -1.0, "high": 1.0}, "x1": {"low": -1.0, "high": 1.0}},
        "objectives": [{"metric": "f", "goal": "minimize"}], "budget": {"evaluations": 16},
        "optimizer": {"name": "ngopt", "population": 8}, "seed": 1}


def test_add_flow_validates_like_the_cli_and_stores_nothing_when_invalid(db):
    from huntflow.engine.spec import parse_spec
    from huntflow.errors import SpecError
    from huntflow.flows.campaign import hunt_campaign_add

    bad = {**SPEC, "space": {"x0": {"low": 1.0, "high": -1.0}}, "budget": {"evaluations": 0}}
    state = hunt_campaign_add(spec=bad, return_state=True)
    assert state.is_failed()
    with pytest.raises(SpecError) as cli_error:
        parse_spec(bad)
    assert str(cli_error.value) in state.message  # the same field-naming message as `campaign add`
    assert "space.x0" in state.message and "budget.evaluations" in state.message
    assert db.execute("select count(*) as n from hunt.campaigns").fetchone()["n"] == 0

    out = hunt_campaign_add(spec=SPEC)
    assert out["slug"] == "room-sphere" and out["first_tick_triggered"] is False  # no tick deployment here
    assert campaigns.get_campaign(db, "room-sphere")["status"] == "active"


def test_pause_resume_cancel_flows_say_what_happens(db, make_spec):
    from huntflow.flows.campaign import hunt_campaign_cancel, hunt_campaign_pause, hunt_campaign_resume

    campaigns.insert_campaign(db, make_spec(slug="room-ctl"))
    assert hunt_campaign_pause("room-ctl")["status"] == "paused"
    assert hunt_campaign_resume("room-ctl")["status"] == "active"
    out = hunt_campaign_cancel("room-ctl")
    assert out["status"] == "cancelled" and out["message"].startswith("cancelled room-ctl")
    assert hunt_campaign_pause("room-ctl", return_state=True).is_failed()  # terminal: refused


def test_ticks_name_runs_publish_artifacts_in_place_and_emit_events(db, make_spec, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId,
                                                FlowRunFilterName)

    from huntflow.flows import events
    from huntflow.flows.tick import hunt_tick

    monkeypatch.setenv("HUNTFLOW_PLOT_SECONDS", "0")
    cid = campaigns.insert_campaign(db, make_spec(slug="room-tick", budget={"evaluations": 16}))
    for _ in range(2):
        out = hunt_tick([str(cid)])
        assert out["campaigns"][str(cid)]["artifacts"] is True
    with get_client(sync_client=True) as client:
        md = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-room-tick"])))
        prog = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-room-tick-progress"])))
        batch = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-room-tick-batch"])))
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["tick: room-tick"])))
        # this test's task runs (the harness's API holds the whole suite's, read back in id order)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in runs])))
    assert len(md) == 1 and len(prog) == 1  # updated in place, one row each
    row = campaigns.progress(db, "room-tick")[0]
    from huntflow.store import generations

    # budget used as the report counts it (the campaign's evaluations, not review's verification runs)
    used = sum(1 for e in generations.campaign_evaluations(db, cid) if e["status"] != "pending")
    assert prog[0].data == pytest.approx(round(100 * used / 16, 1)) and used > 0
    text = md[0].data
    assert f"**{used}/16** evaluations" in text and "## Best so far" in text
    assert f"**{row['best_objective']:.6g}** `f` at default (**certified**)" in text
    assert "| `f` |" in text and "![best vs evaluation](data:image/png;base64," in text
    assert len(batch) >= 1 and "room-tick/gen-" in batch[0].description
    assert len(runs) == 2
    assert {"dispatch · room-tick", "evolve · room-tick", "learn · room-tick"} <= {t.name for t in tasks}

    # events from two snapshots of the real rows: completion with its best, named campaign
    before = events.snapshot(db, cid)
    db.execute("update hunt.campaigns set status = 'completed', completion_reason = 'budget_spent', mode = 'recover'"
               " where campaign_id = %s", (cid,))
    after = events.snapshot(db, cid)
    got = {e: (payload, resource) for e, payload, resource in events.changes(before, after)}
    assert set(got) == {"huntflow.campaign.completed"}  # a finished campaign does not 'stagnate'
    assert got["huntflow.campaign.completed"][0]["reason"] == "budget_spent"
    assert got["huntflow.campaign.completed"][0]["best_objective"] == pytest.approx(row["best_objective"])
    assert events.emit("huntflow.campaign.completed", "room-tick", {"reason": "budget_spent"})


def test_batch_tables_of_back_to_back_ticks_share_a_version_and_keep_every_generation(db, make_spec, monkeypatch):
    """A fast hunt's batch table is written at most every HUNTFLOW_PROGRESS_SECONDS: the
    generations finished meanwhile go in the next version, a row each, none lost."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from huntflow.flows import artifacts
    from huntflow.flows.tick import run_tick

    monkeypatch.setenv("HUNTFLOW_PROGRESS_SECONDS", "3600")  # after the first, all wait for the flush
    cid = campaigns.insert_campaign(db, make_spec(slug="room-batches", budget={"evaluations": 64}))

    @flow(name="hunt-tick")
    def loop() -> None:
        for _ in range(4):  # the first asks, the next three each run a generation
            run_tick([str(cid)])
        assert artifacts.flush(timeout=60)

    loop()
    told = db.execute("select count(*) as n from hunt.generations where campaign_id = %s and kind = 'search'"
                      " and status <> 'planned'", (cid,)).fetchone()["n"]
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-room-batches-batch"])))
    rows = [r for v in versions for r in (json.loads(v.data) if isinstance(v.data, str) else v.data)]
    assert told == 3 and 1 <= len(versions) <= 2  # the first at once, the rest together
    assert sorted(r["generation"] for r in rows) == [f"room-batches/gen-{i} (default)" for i in range(3)]
    assert all(r["candidates"] and r["ok"] == r["candidates"] and "best f" in r for r in rows)


def test_the_progress_artifact_moves_every_tick_while_the_dashboard_waits_its_turn(db, make_spec, monkeypatch):
    """The dashboard is rebuilt at most every HUNTFLOW_PLOT_SECONDS; the budget bar is not held back."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from huntflow.flows.tick import hunt_tick
    from huntflow.store import generations

    monkeypatch.setenv("HUNTFLOW_PLOT_SECONDS", "3600")
    cid = campaigns.insert_campaign(db, make_spec(slug="room-bar", budget={"evaluations": 32}))

    def artifacts():
        with get_client(sync_client=True) as client:
            return [client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
                    for key in ("campaign-room-bar", "campaign-room-bar-progress")]

    def used():
        return sum(1 for e in generations.campaign_evaluations(db, cid) if e["status"] != "pending")

    hunt_tick([str(cid)])  # plans the first generation, publishes both artifacts
    first = used()
    hunt_tick([str(cid)])  # runs and tells it
    md, prog = artifacts()
    assert len(md) == 1 and len(prog) == 1
    assert first == 0 < used() < 32  # the second tick spent budget, the hunt goes on
    assert prog[0].data == pytest.approx(round(100 * used() / 32, 1))  # this tick's budget used
    assert f"**{first}/32** evaluations" in md[0].data  # the dashboard of the first tick, not rebuilt


def test_a_slurm_generation_failed_for_good_by_generation_run_emits_its_event(db, make_spec, monkeypatch):
    """No tick sees a batch job fail its last attempt: ``huntflow generation run`` reports it."""
    import json as _json
    import uuid

    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from huntflow.config import get_settings
    from huntflow.flows.cli import app
    from huntflow.tasks._stage import TickContext
    from huntflow.tasks.evolve import run as evolve_run

    cid = campaigns.insert_campaign(db, make_spec(slug="room-slurm", budget={"evaluations": 8}))
    evolve_run(db, campaigns.get_campaign(db, cid), TickContext(tick_id=uuid.uuid4(), owner="t", operator="slurm"))
    [g] = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    db.execute("update hunt.generations set attempt = max_attempts where generation_id = %s", (g["generation_id"],))
    blocker = get_settings().artifacts_dir / "room-slurm"  # the job cannot write its artifact: a real failure
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")
    worker = EventsWorker.instance(AssertingEventsClient)  # Prefect's own recording client
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    try:
        ran = CliRunner().invoke(app, ["generation", "run", str(g["generation_id"])])
        worker.drain()
    finally:
        blocker.unlink()
    assert ran.exit_code == 1 and "reported huntflow.campaign.generation.failed" in ran.output, ran.output
    assert db.execute("select status from hunt.generations where generation_id = %s",
                      (g["generation_id"],)).fetchone()["status"] == "failed"
    [event] = [e for c in AssertingEventsClient.all for e in c.events
               if e.event == "huntflow.campaign.generation.failed"]
    assert event.resource.name == f"room-slurm/gen-{g['generation_index']} ({g['fidelity_name']})"
    assert event.related[0].id == "huntflow.campaign.room-slurm" and event.related[0].role == "campaign"
    assert _json.loads(event.model_dump_json())["payload"]["generation_id"] == str(g["generation_id"])


def test_dashboard_refreshes_are_paced_by_what_all_campaigns_rebuilds_cost_together(db, make_spec, monkeypatch):
    """With many campaigns a per-campaign pace would let rebuilds fill a tick that outlasts the
    period: the pace is COST_FACTOR times all active campaigns' last rebuilds together."""
    from huntflow.flows.artifacts import publish_campaign, refresh_seconds

    monkeypatch.setenv("HUNTFLOW_PLOT_SECONDS", "0.001")
    a = campaigns.insert_campaign(db, make_spec(slug="room-pace-a"))
    b = campaigns.insert_campaign(db, make_spec(slug="room-pace-b", seed=9))
    assert publish_campaign(a)["plots"] is True
    one = refresh_seconds()
    assert publish_campaign(b)["plots"] is True
    two = refresh_seconds()
    assert 0.001 < one < two  # b's rebuild counts against a's turn too
    assert publish_campaign(b)["plots"] is False  # b's turn has not come again
    db.execute("update hunt.campaigns set status = 'completed', completion_reason = 'budget_spent'"
               " where campaign_id = %s", (a,))
    assert publish_campaign(a)["plots"] is True  # finished: always its final dashboard
    assert refresh_seconds() < two  # and its cost no longer paces the others


def test_a_fresh_process_paces_dashboard_rebuilds_like_the_one_that_built_it(db, make_spec, monkeypatch,
                                                                             database_url):
    """Scheduled ticks are fresh processes: the pace (time and cost of the last rebuild) lives in
    hunt.dashboard_builds, so another process holds off a rebuild an earlier one just paid for."""
    import json as _json
    import os
    import subprocess
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    from huntflow.flows.artifacts import COST_FACTOR, publish_campaign, refresh_seconds

    monkeypatch.setenv("HUNTFLOW_PLOT_SECONDS", "0.5")
    cid = campaigns.insert_campaign(db, make_spec(slug="room-fresh"))
    assert publish_campaign(cid)["plots"] is True  # this process rebuilds and records it
    row = db.execute("select build_seconds, extract(epoch from now() - built_at) as ago from hunt.dashboard_builds"
                     " where campaign_id = %s", (cid,)).fetchone()
    assert row["build_seconds"] > 0 and row["ago"] < 60
    # a history whose rebuild costs 10 s is rebuilt at most every COST_FACTOR x 10 s
    db.execute("update hunt.dashboard_builds set build_seconds = 10 where campaign_id = %s", (cid,))
    assert refresh_seconds() == pytest.approx(COST_FACTOR * 10)
    time.sleep(0.6)  # past HUNTFLOW_PLOT_SECONDS: only the cost holds the next rebuild off now

    def fresh_process() -> dict:
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "SUPABASE_DB_URL": database_url}
        code = ("import json, sys; from huntflow.flows.artifacts import publish_campaign;"
                " print(json.dumps(publish_campaign(sys.argv[1]), default=str))")
        out = subprocess.run([sys.executable, "-c", code, str(cid)], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return _json.loads(out.stdout.strip().splitlines()[-1])

    got = fresh_process()
    assert got["plots"] is False and got["fresh"] is True  # paced: the progress bar only
    db.execute("update hunt.dashboard_builds set built_at = now() - interval '1 hour' where campaign_id = %s", (cid,))
    assert publish_campaign(cid)["plots"] is True  # its turn came (by the row): rebuilt, the new cost recorded
    assert db.execute("select build_seconds from hunt.dashboard_builds where campaign_id = %s",
                      (cid,)).fetchone()["build_seconds"] < 10
