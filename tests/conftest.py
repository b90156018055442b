"""Shared fixtures: one real embedded Postgres and one Prefect test harness per session.

The database is a pgserver (PostgreSQL 16) in a temporary directory, deleted at the end; its
URL is exported as ``SUPABASE_DB_URL`` so every code path (CLI, tasks, subprocesses) uses it.
Set ``SUPABASE_DB_URL`` yourself to run the suite against another Postgres instead. Each test
that uses ``db`` starts from empty ``hunt`` tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Everything the suite writes (embedded database, artifacts, JAX compile cache, Prefect's home)
# goes under one temporary directory, removed at the end of the session.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="huntflow-test-"))
os.environ["HUNTFLOW_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HUNTFLOW_STAGE_RETRIES", "1")

_TABLES = "hunt.gates, hunt.findings, hunt.trajectories, hunt.stage_runs, hunt.evaluations, hunt.generations, hunt.campaigns"


def pytest_sessionfinish(session, exitstatus):
    """Remove the session dir even when no test ran (all deselected: data_dir never set up)."""
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def data_dir():
    """The session's data dir (``HUNTFLOW_DATA_DIR``); deleted with everything in it at the end."""
    path = Path(os.environ["HUNTFLOW_DATA_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(data_dir):
    """The session's Postgres URL (an embedded server unless SUPABASE_DB_URL is set)."""
    given = os.environ.get("SUPABASE_DB_URL")
    if given:
        yield given
        return
    import pgserver

    server = pgserver.get_server(data_dir / "pgdata", cleanup_mode="delete")
    url = server.get_uri()
    os.environ["SUPABASE_DB_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("SUPABASE_DB_URL", None)
        server.cleanup()


@pytest.fixture
def db(database_url):
    """A migrated connection to empty hunt tables (settings reset to defaults)."""
    from huntflow.store.connection import connect

    conn = connect(database_url)
    conn.execute(f"truncate {_TABLES} cascade")
    conn.execute("update hunt.settings set value = '4'::jsonb where key = 'max_concurrent_campaigns'")
    conn.execute("update hunt.settings set value = '900'::jsonb where key = 'lease_seconds'")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    from huntflow.flows.tick import no_heartbeats

    with prefect_test_harness(server_startup_timeout=180), no_heartbeats():
        yield


@pytest.fixture
def make_spec():
    """Build a validated spec from keyword overrides of a small sphere campaign."""
    from huntflow.engine.spec import parse_spec

    def make(**overrides):
        base = {
            "slug": "sphere-3d",
            "model": {"name": "sphere"},
            "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
            "objectives": [{"metric": "f", "goal": "minimize"}],
            "budget": {"evaluations": 48},
            "optimizer": {"name": "ngopt", "population": 8},
            "seed": 3,
        }
        base.update(overrides)
        return parse_spec(base)

    return make
