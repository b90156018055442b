"""The embedded database: pinned by `db start`, dead handles pruned, half-initialised dirs rebuilt."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from huntflow.store import embedded


def _env(data_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SUPABASE_DB_URL"}
    env["HUNTFLOW_DATA_DIR"] = str(data_dir)
    return env


HUNTFLOW = str(Path(sys.executable).with_name("huntflow"))


def _huntflow(data_dir, *args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([HUNTFLOW, *args], env=_env(data_dir),
                          capture_output=True, text=True, timeout=timeout)


def test_dead_processes_are_pruned_from_the_handle_list(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / embedded.HANDLES).write_text(json.dumps([os.getpid(), dead.pid]))
    assert embedded.live_handles(pgdata) == [os.getpid()]
    assert json.loads((pgdata / embedded.HANDLES).read_text()) == [os.getpid()]


def test_a_half_initialised_dir_is_set_aside_and_a_pinned_server_outlives_commands(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")   # what a kill during initdb leaves
    (pgdata / "global").mkdir()
    assert embedded.state(pgdata) == "incomplete"
    try:
        started = _huntflow(tmp_path, "db", "start", "--json")
        assert started.returncode == 0, started.stderr
        assert "half-initialised" in started.stderr and "moved it to" in started.stderr
        info = json.loads(started.stdout.strip().splitlines()[-1])
        assert info["running"] and info["pinned"] and info["state"] == "ready"
        (aside,) = tmp_path.glob("pgdata.incomplete-*")
        assert (aside / "PG_VERSION").exists()  # set aside, never deleted

        # a client session (psql, Studio) stays connected while huntflow commands come and go
        with psycopg.connect(info["url"], autocommit=True) as client:
            assert _huntflow(tmp_path, "status", "--json").returncode == 0
            assert client.execute("select count(*) as n from hunt.campaigns").fetchone()[0] == 0
        url = _huntflow(tmp_path, "db", "url")
        assert url.returncode == 0 and url.stdout.strip() == info["url"]

        stopped = _huntflow(tmp_path, "db", "stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout.strip().splitlines()[-1])["running"] is False
        gone = _huntflow(tmp_path, "db", "url")
        assert gone.returncode == 1 and "not running" in gone.stderr and "Traceback" not in gone.stderr
    finally:
        embedded.stop(pgdata, force=True)


@pytest.mark.slow
def test_kills_during_the_first_start_never_break_the_data_dir(tmp_path):
    """SIGKILL `huntflow status` at random moments of its first start (initdb, server start,
    migrations); the next command always works."""
    rng = random.Random(7)
    try:
        for round_ in range(4):
            data = tmp_path / f"round-{round_}"
            data.mkdir()
            proc = subprocess.Popen([HUNTFLOW, "status"], env=_env(data),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5, 4.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = _huntflow(data, "status", "--json")
            assert after.returncode == 0, after.stderr
            assert json.loads(after.stdout.strip().splitlines()[-1]) == []
            embedded.stop(data / "pgdata", force=True)
    finally:
        for data in tmp_path.glob("round-*"):
            embedded.stop(data / "pgdata", force=True)
