"""The tick end to end on the real stack: embedded Postgres, Prefect harness, JAX, nevergrad."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from huntflow.store import campaigns, generations, stage_runs
from huntflow.store.states import STAGES

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _tick():
    from huntflow.flows.tick import hunt_tick

    return hunt_tick()


def _tick_until_finished(db, cid, max_ticks: int) -> dict:
    """Tick until the campaign leaves 'active' (or max_ticks); returns its row."""
    for _ in range(max_ticks):
        _tick()
        row = campaigns.get_campaign(db, cid)
        if row["status"] != "active":
            return row
    return row


def test_every_tick_writes_six_stage_rows_per_campaign(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    other = campaigns.insert_campaign(db, make_spec(slug="second-one", seed=4))
    for _ in range(3):
        out = _tick()
        rows = stage_runs.for_tick(db, uuid.UUID(out["tick_id"]))
        for c in (cid, other):
            mine = [r for r in rows if r["campaign_id"] == c]
            assert sorted(r["stage"] for r in mine) == sorted(s.value for s in STAGES)
            assert {r["status"] for r in mine} == {"succeeded"}
            assert all(r["finished_at"] >= r["started_at"] for r in mine)
    # leases are released at the end of every tick
    assert all(r["lease_owner"] is None for r in db.execute("select lease_owner from hunt.campaigns"))


def test_campaign_reaches_completed_within_budget(db, make_spec, tmp_path):
    spec = make_spec(budget={"evaluations": 40}, optimizer={"name": "ngopt", "population": 8})
    cid = campaigns.insert_campaign(db, spec)
    row = _tick_until_finished(db, cid, 15)
    assert row["status"] == "completed", row["completion_reason"]
    assert row["completion_reason"] == "budget_spent"
    evals = generations.campaign_evaluations(db, cid)
    assert len(evals) <= 40 + 20  # search budget plus at most the certification re-runs
    assert all(e["status"] != "pending" for e in evals)
    best = min(e["objective"] for e in evals if e["feasible"])
    assert row["best_objective"] == pytest.approx(best)
    for e in evals:
        p = e["provenance"]
        assert {"engine_version", "git_commit", "jax_version", "jax_backend", "seed", "fidelity"} <= set(p)
        assert e["wall_seconds"] is not None

    # the summary command reports the same campaign: KPIs, a CSV row per evaluation, plots
    from typer.testing import CliRunner

    from huntflow.flows.cli import app

    out_dir = tmp_path / "summary"
    result = CliRunner().invoke(app, ["summary", spec.slug, "--out", str(out_dir), "--json"])
    assert result.exit_code == 0, result.output
    kpis = json.loads(result.stdout)
    assert kpis["best_objective"] == pytest.approx(best)
    assert kpis["evaluations"] == len(evals)
    curve = [v for v in kpis["best_vs_evaluation"] if v is not None]
    assert curve == sorted(curve, reverse=True) and curve[-1] == pytest.approx(best)
    assert sum(r["evaluations"] for r in kpis["feasibility"]) == len(evals)
    with open(kpis["csv"]) as fh:
        assert len(fh.readlines()) == len(evals) + 1
    assert {os.path.basename(p) for p in kpis["plots"]} >= {"best_vs_evaluation.png", "feasibility_by_fidelity.png"}
    assert all(os.path.getsize(p) > 1000 for p in kpis["plots"])


def test_target_met_completes_early(db, make_spec):
    spec = make_spec(objectives=[{"metric": "f", "goal": "minimize", "target": 1.5}],
                     budget={"evaluations": 400})
    cid = campaigns.insert_campaign(db, spec)
    row = _tick_until_finished(db, cid, 20)
    assert (row["status"], row["completion_reason"]) == ("completed", "target_met")
    assert row["best_objective"] <= 1.5
    assert len(generations.campaign_evaluations(db, cid)) < 400


KILL_AFTER_EVOLVE = textwrap.dedent("""
    import os, signal, sys, uuid
    from huntflow.store.connection import session
    from huntflow.store.states import Stage
    from huntflow.tasks._stage import TickContext, run_stage
    from huntflow.tasks import evolve
    cid = uuid.UUID(sys.argv[1])
    tick = uuid.uuid4()
    run_stage(Stage.EVOLVE, TickContext(tick_id=tick, owner=f"tick:{tick}"), cid, evolve.run)
    os.kill(os.getpid(), signal.SIGKILL)   # die after evolve's commit, before dispatch
""")


def test_tick_killed_after_evolve_commit_loses_no_candidate(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    env = {**os.environ, "SUPABASE_DB_URL": database_url}
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_EVOLVE, str(cid)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (planned,) = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    assert planned["status"] == "planned"
    before = [(e["candidate_index"], e["params"]) for e in generations.evaluations(db, planned["generation_id"])]

    _tick()
    gens = db.execute("select * from hunt.generations where campaign_id = %s and kind <> 'verification'"
                      " order by ask_id", (cid,)).fetchall()
    assert gens[0]["generation_id"] == planned["generation_id"]
    assert gens[0]["status"] == "told" and gens[0]["attempt"] == 1
    after = [(e["candidate_index"], e["params"]) for e in generations.evaluations(db, planned["generation_id"])]
    assert after == before
    assert [g["ask_id"] for g in gens] == list(range(len(gens)))


def test_status_json_agrees_with_sql_view(db, make_spec):
    from typer.testing import CliRunner

    from huntflow.flows.cli import app

    campaigns.insert_campaign(db, make_spec())
    campaigns.insert_campaign(db, make_spec(slug="other-one"))
    _tick()
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    shown = {r["slug"]: r for r in json.loads(result.stdout)}
    sql = {r["slug"]: r for r in db.execute("select * from hunt.campaign_progress").fetchall()}
    assert shown.keys() == sql.keys() == {"sphere-3d", "other-one"}
    for slug, row in sql.items():
        for key in ("status", "stage", "generations", "evaluations", "best_objective"):
            assert shown[slug][key] == row[key], (slug, key)
        assert shown[slug]["generations"] >= 1


def test_stages_in_worker_threads_are_bounded_by_the_heartbeat_not_prefects_timeout(db, make_spec, monkeypatch):
    """Two campaigns advance side by side in threads: Prefect's thread timeout (which cannot
    interrupt a blocking call) is off for their stages, and each stage runs under the tick
    heartbeat's limit instead."""
    import logging

    from huntflow.store import leases

    monkeypatch.setenv("HUNTFLOW_TICK_CONCURRENCY", "2")
    ids = [campaigns.insert_campaign(db, make_spec()), campaigns.insert_campaign(db, make_spec(slug="side-by-side", seed=5))]
    limited: list[tuple[str, float]] = []
    real = leases.Heartbeat.limit

    def spy(self, campaign_id, seconds, what):
        limited.append((what, seconds))
        return real(self, campaign_id, seconds, what)

    monkeypatch.setattr(leases.Heartbeat, "limit", spy)
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    catch = Catch(logging.WARNING)
    logging.getLogger("prefect.task_runs").addHandler(catch)
    try:
        out = _tick()
    finally:
        logging.getLogger("prefect.task_runs").removeHandler(catch)
    assert not [m for m in seen if "worker thread" in m]
    assert sorted(out["campaigns"]) == sorted(str(c) for c in ids)
    assert {w for w, _ in limited} == {"dispatch", "parse", "review", "evolve", "learn"}
    assert len(limited) == 10 and all(s > 0 for _, s in limited)
    rows = stage_runs.for_tick(db, uuid.UUID(out["tick_id"]))
    assert {r["status"] for r in rows} == {"succeeded"} and len(rows) == 12
