"""Leases: heartbeats renew them, a dead owner's lease is free at once, a lost one refuses writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psycopg
import pytest

from huntflow.store import campaigns, leases, stage_runs
from huntflow.store.connection import connect
from huntflow.store.states import Stage, StageRunStatus

HOLD = textwrap.dedent("""
    import sys, time, uuid
    from huntflow.store import campaigns, leases
    from huntflow.store.connection import connect
    url, owner = sys.argv[1], sys.argv[2]
    with leases.Heartbeat(url, owner, lease_seconds=600) as beat:
        conn = connect(url)
        rows = campaigns.claim_cohort(conn, owner, 4, beat.lease_seconds, session_pid=beat.pid)
        beat.hold([r["campaign_id"] for r in rows])
        print(len(rows), flush=True)
        time.sleep(600)
""")


def test_a_killed_owners_lease_is_claimable_at_once(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    proc = subprocess.Popen([sys.executable, "-c", HOLD, database_url, "tick:doomed"], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "SUPABASE_DB_URL": database_url})
    try:
        assert proc.stdout.readline().strip() == "1"
        # alive: its lease (600 s) keeps everyone else out
        assert campaigns.claim_cohort(db, "tick:other", 4, 30) == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        t0 = time.monotonic()
        while not (rows := campaigns.claim_cohort(db, "tick:other", 4, 30)) and time.monotonic() - t0 < 20:
            time.sleep(0.05)  # the server notices the closed socket within milliseconds
    finally:
        proc.kill()
        proc.wait()
    assert [r["campaign_id"] for r in rows] == [cid]
    row = campaigns.get_campaign(db, cid)
    assert row["lease_owner"] == "tick:other" and row["lease_pid"] is None


def test_the_heartbeat_renews_a_short_lease_and_notices_when_it_is_taken(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    with leases.Heartbeat(database_url, "tick:live", lease_seconds=1.0) as beat:
        assert campaigns.claim_cohort(db, "tick:live", 4, beat.lease_seconds, session_pid=beat.pid)
        beat.hold([cid])
        time.sleep(2.5)  # longer than the lease: only the heartbeat keeps it
        assert beat.beats >= 2
        assert campaigns.claim_cohort(db, "tick:thief", 4, 30) == []
        db.execute("update hunt.campaigns set lease_owner = 'tick:thief' where campaign_id = %s", (cid,))
        beat.beat()
        assert beat.lost(cid)
    assert campaigns.get_campaign(db, cid)["lease_owner"] == "tick:thief"


def test_a_guarded_connection_cannot_write_a_campaign_it_does_not_lease(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    assert campaigns.claim_cohort(db, "tick:holder", 4, 30)
    conn = connect(database_url)
    try:
        leases.guard(conn, "tick:late")
        with pytest.raises(psycopg.Error) as caught:
            campaigns.set_stage(conn, cid, Stage.EVOLVE)
        lost = leases.lease_lost(caught.value)
        assert isinstance(lost, leases.LeaseLost) and "tick:holder" in str(lost)
        with pytest.raises(psycopg.Error):  # rows of the campaign too, not only the campaign row
            conn.execute("insert into hunt.findings (campaign_id, severity, kind, message)"
                         " values (%s, 'low', 'forged', 'written after the lease was lost')", (cid,))
        leases.guard(conn, "tick:holder")
        campaigns.set_stage(conn, cid, Stage.EVOLVE)  # the holder may
        leases.guard(conn, None)
        campaigns.set_stage(conn, cid, Stage.LEARN)  # and unguarded connections (CLI, Studio) may
    finally:
        conn.close()
    assert campaigns.get_campaign(db, cid)["current_stage"] == "learn"


def test_orphaned_stage_rows_are_closed_as_crashed(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    dead, live, me = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    campaigns.claim_cohort(db, f"tick:{live}", 4, 30)
    stage_runs.start(db, dead, cid, Stage.EVOLVE, 1)   # a tick that died mid-stage
    stage_runs.start(db, live, cid, Stage.PARSE, 1)    # the live lease holder's open row
    reaped = stage_runs.reap_orphans(db, me)
    assert [(r["tick_id"], r["stage"]) for r in reaped] == [(dead, "evolve")]
    rows = {r["tick_id"]: r for r in db.execute("select * from hunt.stage_runs").fetchall()}
    assert rows[dead]["status"] == StageRunStatus.CRASHED.value and rows[dead]["finished_at"] is not None
    assert str(dead) in rows[dead]["error"] and f"tick:{live}" in rows[dead]["error"]
    assert rows[live]["status"] == "running"


def test_a_stage_past_its_limit_loses_the_lease_and_its_next_write_is_refused(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    with leases.Heartbeat(database_url, "tick:slow", lease_seconds=600) as beat:
        assert campaigns.claim_cohort(db, "tick:slow", 4, beat.lease_seconds, session_pid=beat.pid)
        beat.hold([cid])
        conn = connect(database_url)
        try:
            with leases.guarded(conn, beat.owner):
                with beat.limit(cid, 60, "evolve"):
                    beat.beat()  # within its limit: renewed, still held
                    assert not beat.lost(cid) and campaigns.get_campaign(db, cid)["lease_owner"] == "tick:slow"
                    campaigns.set_stage(conn, cid, Stage.EVOLVE)
                with beat.limit(cid, 0, "evolve"):  # a stage that is over its limit at the next beat
                    beat.beat()
                    assert beat.lost(cid) and "evolve" in beat.overdue[cid]
                    with pytest.raises(psycopg.Error) as caught:
                        campaigns.set_stage(conn, cid, Stage.LEARN)
                    assert leases.lease_lost(caught.value) is not None
        finally:
            conn.close()
    row = campaigns.get_campaign(db, cid)
    assert row["lease_owner"] is None and row["current_stage"] == "evolve"
    assert [r["campaign_id"] for r in campaigns.claim_cohort(db, "tick:next", 4, 30)] == [cid]  # free at once


def test_a_heartbeat_session_is_reused_and_an_earlier_owners_lease_stays_free(db, make_spec, database_url):
    cid = campaigns.insert_campaign(db, make_spec())
    leases.close_spares()
    with leases.Heartbeat(database_url, "tick:first", lease_seconds=600) as first:
        assert campaigns.claim_cohort(db, "tick:first", 4, first.lease_seconds, session_pid=first.pid)
        first.hold([cid])
    # the tick ended without releasing its lease: its session gave the lock up, so it is free at once
    assert not db.execute("select hunt.lease_session_alive(%s) as alive", (first.pid,)).fetchone()["alive"]
    with leases.Heartbeat(database_url, "tick:second", lease_seconds=600) as second:
        assert second.pid == first.pid  # the same session, taken again in one round trip
        assert db.execute("select hunt.lease_session_alive(%s) as alive", (second.pid,)).fetchone()["alive"]
        row = campaigns.get_campaign(db, cid)  # the earlier owner's lease does not look alive again
        assert row["lease_owner"] is None and row["lease_pid"] is None
        assert [r["campaign_id"] for r in campaigns.claim_cohort(db, "tick:second", 4, 30, session_pid=second.pid)] == [cid]
    leases.close_spares()
    assert not db.execute("select hunt.lease_session_alive(%s) as alive", (second.pid,)).fetchone()["alive"]
