"""Chaos on real `huntflow tick` processes: kills, a pause past the lease, a crowd, an outage.

The scenarios live in ``benchmarks/chaos.py`` (its ``main`` is the long run recorded in
RELIABILITY.md); these are small versions, the larger ones marked slow.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("prefect_harness")

_spec = importlib.util.spec_from_file_location("chaos", Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py")
chaos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chaos)


def _env() -> dict[str, str]:
    from prefect.settings import get_current_settings

    return {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}


@pytest.fixture
def rig(db, database_url):
    return chaos.Rig(database_url, _env())


def _assert_clean(out):
    health = out["health"]
    assert out["identical"], out
    assert health["status"] == "completed"
    assert health["failed_generations"] == 0 and health["running_rows"] == 0
    assert health["max_attempt"] == 1  # no attempt was spent on a dead orchestrator


def test_killed_ticks_leave_the_campaign_free_at_once_and_its_results_unchanged(rig, database_url):
    """One SIGKILL, a spare tick waiting beside the killed one takes over and finishes (two
    process start-ups in all, in parallel: the slow tests kill more)."""
    ref = chaos.reference(database_url)
    out = chaos.kills(rig, ref, n=1, seed=1, spares=1)
    _assert_clean(out)
    assert out["kills"] == 1 and out["resumed_s"]["n"] == 1 and out["orphans"] == []
    # the lease is 900 s here: only the dead session's released lock can free it this fast
    assert out["lease_free_s"]["max"] < 15


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_tick_paused_past_its_lease_is_taken_over_and_writes_nothing_after(rig, database_url):
    ref = chaos.reference(database_url)
    out = chaos.pause(rig, ref, lease_seconds=2.0)
    _assert_clean(out)
    assert out["b_exit"] == 0
    if out["stopped_in_generation"]:  # the takeover re-ran it at the same attempt, the interruption counted
        assert (out["generation_final"]["attempt"], out["generation_final"]["interruptions"]) == (1, 1)
    # the row it was in when stopped, and every later one of that tick, ended without writing
    stale = out["stale_tick_after_resume"]
    assert all(status == "skipped" and "lease lost" in why for _, status, why in stale), stale


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_kills_including_several_inside_generations(rig, database_url):
    """12 kills of ticks working a function model whose generations take ~1-2 s
    (``chaos_model.slow_sphere``): kills land inside running generations, which are re-run at
    the same attempt; no worker process outlives its tick."""
    ref = chaos.reference(database_url, "chaos-reference-slow", **chaos.SLOW)
    out = chaos.kills(rig, ref, n=12, seed=2, overrides=chaos.SLOW)
    _assert_clean(out)
    assert out["kills"] == 12 and out["orphans"] == []
    assert out["kills_in_generation"] >= 1 and out["health"]["interruptions"] >= 1, out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_eight_concurrent_ticks_never_work_one_campaign_twice(rig, database_url):
    ref = chaos.reference(database_url)
    out = chaos.crowd(rig, ref, ticks=8, campaigns=3)
    assert out["identical"] and out["overlapping_ticks"] == 0, out
    assert all(h["status"] == "completed" and h["failed_generations"] == 0 for h in out["health"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_postgres_stopped_and_restarted_mid_tick(database_url, db):
    ref = chaos.reference(database_url)
    out = chaos.outage(_env(), ref, down_seconds=3.0)
    _assert_clean(out)
    assert out["lease_free_after_restart_s"] is not None and out["lease_free_after_restart_s"] < 15


@pytest.mark.slow
def test_a_killed_tick_leaves_no_prefect_api_behind(database_url, db, tmp_path):
    """The ephemeral Prefect API a tick starts goes down with it, even on SIGKILL."""
    import signal
    import subprocess
    import time

    import psutil

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), SUPABASE_DB_URL=database_url)
    proc = subprocess.Popen([chaos.HUNTFLOW, "tick"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, servers = time.monotonic() + 180, []
        while not servers and time.monotonic() < deadline and proc.poll() is None:
            servers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                       if "uvicorn" in " ".join(c.cmdline())]
            time.sleep(0.1)
        assert servers, "the tick never started its ephemeral API"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(servers, timeout=20)
        assert not alive, f"orphaned: {[p.pid for p in alive]}"
    finally:
        proc.kill()
