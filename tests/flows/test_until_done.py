"""`tick --until-done` waits saying for what, stops for people, and fails on poisoned campaigns."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from huntflow.flows import until_done as ud
from huntflow.store import campaigns, settings


def _blocked(**kw):
    row = {"slug": "c", "lease_owner": None, "lease_left": None, "gates_pending": 0, "kits_out": 0, "slurm": 0,
           "pool": 0, "planned": 0, "failure_streak": 0, "last_error": None}
    return {**row, **kw}


def test_a_lease_held_elsewhere_is_waited_out_without_ticking():
    v = ud.decide([_blocked(lease_owner="tick:x", lease_left=7.5)], poll=2.0)
    assert (v.action, v.tick_after, v.seconds) == ("sleep", False, 2.0)
    assert "lease held by another tick" in v.message and "tick:x" in v.message
    assert ud.decide([_blocked(lease_owner="tick:x", lease_left=0.3)], poll=2.0).seconds == pytest.approx(0.4)


def test_queued_jobs_are_polled_and_people_stop_the_loop():
    v = ud.decide([_blocked(slurm=2), _blocked(pool=1)], poll=1.0)
    assert v.action == "sleep" and v.tick_after and "2 slurm job(s)" in v.message and "1 pool run(s)" in v.message
    v = ud.decide([_blocked(gates_pending=1), _blocked(kits_out=2)], poll=1.0)
    assert (v.action, v.exit_code) == ("stop", ud.EXIT_WAITING_FOR_PEOPLE)
    assert "1 pending gate(s)" in v.message and "2 kit(s) out" in v.message
    v = ud.decide([_blocked(failure_streak=1, last_error="evolve: boom")], poll=1.0)
    assert v.action == "sleep" and "evolve: boom" in v.message


def test_finished_fails_only_for_campaigns_this_run_worked():
    rows = [{"slug": "a", "status": "completed", "completion_reason": "budget_spent"},
            {"slug": "b", "status": "failed", "completion_reason": "poisoned: x"}]
    assert ud.finished(rows, {"a"}).exit_code == 0
    v = ud.finished(rows, {"a", "b"})
    assert v.exit_code == ud.EXIT_FAILED and "campaign b failed: poisoned: x" in v.message
    assert ud.finished(rows + [{"slug": "c", "status": "active", "completion_reason": None}], {"a"}) is None


@pytest.mark.usefixtures("prefect_harness")
def test_until_done_exits_non_zero_once_a_poisoned_campaign_is_failed(db, make_spec):
    from huntflow.flows.cli import app

    cid = campaigns.insert_campaign(db, make_spec())
    settings.set_setting(db, "failure_streak_limit", 2)
    db.execute("update hunt.campaigns set spec = spec - 'objectives' where campaign_id = %s", (cid,))  # cannot run
    result = CliRunner().invoke(app, ["tick", "--until-done", "--max-ticks", "10", "--poll", "0.05", "--json"])
    assert result.exit_code == ud.EXIT_FAILED, result.output
    out = json.loads(result.stdout)  # stdout is the JSON alone (messages go to stderr)
    assert out["ticks"] == 2 and out["stopped"]["exit_code"] == ud.EXIT_FAILED
    assert "campaign sphere-3d failed: poisoned: dispatch failed 2 ticks in a row" in out["stopped"]["message"]
    assert [(c["slug"], c["status"]) for c in out["campaigns"]] == [("sphere-3d", "failed")]
    row = campaigns.get_campaign(db, cid)
    assert row["status"] == "failed" and row["last_error"].startswith("dispatch:")
    ticks = db.execute("select count(distinct tick_id) as n from hunt.stage_runs where stage = 'dispatch'").fetchone()
    assert ticks["n"] == 2  # and then it took no more tick slots
