"""A planted database password never shows: not in CLI output, logs, rows, files under the data
dir, nor in Prefect's flow/task-run states and logs, across a whole run with failures (a tampered
checkpoint failing evolve, an unreachable and a malformed URL, a refused kit import) — and, in
the slow variant, across pool generations run by a served ``hunt-generation/gpu`` deployment in
another process (one of them failing in that process), whose output is searched too."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import pytest
from typer.testing import CliRunner

from huntflow.flows.cli import app

PW = f"Pl4nted-{uuid.uuid4().hex[:10]}"
runner = CliRunner()


@pytest.fixture
def password_url(database_url, db, monkeypatch):
    """The session database reached through a URL that carries a password (keyword form)."""
    from psycopg.conninfo import make_conninfo

    db.execute(f"alter role current_user password '{PW}'")  # pgserver trusts local users; the URL still carries it
    url = make_conninfo(database_url, password=PW)
    assert PW in url
    monkeypatch.setenv("SUPABASE_DB_URL", url)
    yield url
    db.execute("alter role current_user password null")


def _prefect_texts() -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flows = client.read_flow_runs(limit=200)
        tasks = client.read_task_runs(limit=200)
        logs = client.read_logs(limit=200)
        deployments = client.read_deployments(limit=200)
    return [r.model_dump_json() for r in [*flows, *tasks, *logs, *deployments]]


def _stored_texts(url: str) -> tuple[list[str], list[str]]:
    """Every row of every ``hunt`` table as JSON, and every file under the data dir (pgdata aside)."""
    from huntflow.config import get_settings
    from huntflow.store.connection import connect

    with connect(url) as conn:
        tables = [r["table_name"] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'hunt'")]
        rows = [json.dumps(r, default=str) for t in tables
                for r in conn.execute(f'select row_to_json(x)::text as j from hunt."{t}" x')]
    files = [path.read_bytes().decode("latin-1") for path in get_settings().data_dir.rglob("*")
             if path.is_file() and "pgdata" not in path.parts and path.stat().st_size < 50 * 2**20]
    return rows, files


def test_a_planted_password_appears_nowhere(password_url, db, prefect_harness, tmp_path, caplog, capfd):
    from huntflow.flows.tick import hunt_tick

    caplog.set_level(logging.DEBUG)
    spec = tmp_path / "spec.yaml"
    spec.write_text("slug: secret-run\nmodel: {name: sphere}\nspace: {x0: {low: -1, high: 1}, x1: {low: -1, high: 1}}\n"
                    "objectives: [{metric: f}]\nbudget: {evaluations: 24}\noptimizer: {name: cma, population: 8}\n")
    outputs = [runner.invoke(app, ["campaign", "add", str(spec)]).output]
    hunt_tick()
    hunt_tick()
    # a tampered checkpoint: evolve fails (a stage failure stored in rows and in Prefect's state)
    db.execute("update hunt.campaigns set optimizer_state = %s where slug = 'secret-run'", (b"HFZ1 tampered",))
    hunt_tick()
    errors = [r["error"] for r in db.execute("select error from hunt.stage_runs where error is not null")]
    assert any("unauthenticated" in (e or "") for e in errors)  # the failure happened and was recorded
    for bad in (f"postgresql://postgres:{PW}@127.0.0.1:1/postgres", f"host=127.0.0.1 port=1 password={PW}",
                f"postgresql://:{PW}@127.0.0.1:1/x?password={PW}", f"host=h password={PW} bogus"):
        result = runner.invoke(app, ["status"], env={"SUPABASE_DB_URL": bad})
        assert result.exit_code in (1, 2), result.output
        outputs.append(result.output + str(result.exception or ""))
    outputs.append(runner.invoke(app, ["kit", "import", str(tmp_path)]).output)
    outputs.append(runner.invoke(app, ["status"]).output)

    rows, files = _stored_texts(password_url)
    assert rows  # there is something to look at
    out, err = capfd.readouterr()
    haystacks = {"cli": outputs, "logs": [caplog.text, out, err], "rows": rows, "files": files,
                 "prefect": _prefect_texts()}
    leaks = {where: sum(PW in h for h in texts) for where, texts in haystacks.items()}
    assert leaks == dict.fromkeys(haystacks, 0)


SERVE = "from huntflow.flows.generation import hunt_generation; hunt_generation.serve(name='gpu')"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_planted_password_appears_nowhere_after_served_pool_generations(password_url, db, prefect_harness,
                                                                          make_spec, monkeypatch, tmp_path, capfd):
    """Pool generations run by another process serving ``hunt-generation/gpu`` (it holds the
    password in its environment), then two runs that fail there (an unknown generation, a
    malformed id). The served process' output (debug logging), Prefect's runs, logs and
    deployments, the rows and the data dir are searched."""
    from prefect.settings import get_current_settings

    from huntflow.flows.tick import hunt_tick
    from huntflow.store import campaigns

    monkeypatch.setenv("HUNTFLOW_OPERATOR", "pool")
    monkeypatch.setenv("HUNTFLOW_CHAIN_TICKS", "false")
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "SUPABASE_DB_URL": password_url,
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_LEVEL": "DEBUG"}
    log = tmp_path / "served.log"
    with open(log, "w") as out:
        served = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        def served_up() -> bool:
            assert served.poll() is None, log.read_text(errors="replace")[-2000:]
            with get_client(sync_client=True) as client:
                return "gpu" in [d.name for d in client.read_deployments(limit=50)]

        deadline = time.monotonic() + 600
        while not served_up():  # the served process registers its deployment, then polls for runs
            assert time.monotonic() < deadline, "hunt-generation/gpu was never served"
            time.sleep(1.0)
        cid = campaigns.insert_campaign(db, make_spec(slug="secret-pool", budget={"evaluations": 16}))
        deadline = time.monotonic() + 1500
        while campaigns.get_campaign(db, cid)["status"] == "active" and time.monotonic() < deadline:
            hunt_tick([str(cid)])
            time.sleep(1.0)
        row = campaigns.get_campaign(db, cid)
        assert row["status"] == "completed", row
        pool = db.execute("select count(*) as n from hunt.generations where campaign_id = %s and operator = 'pool'"
                          " and status in ('parsed', 'reviewed', 'told')", (cid,)).fetchone()["n"]
        assert pool >= 2
        # runs that fail in the served process: a generation that does not exist, an id that is no UUID
        bad = [run_deployment("hunt-generation/gpu", parameters={"generation_id": g}, timeout=600, as_subflow=False)
               for g in (str(uuid.uuid4()), "not-a-uuid")]
        assert [r.state.type.value for r in bad] == ["FAILED", "FAILED"], [r.state for r in bad]
    finally:
        served.terminate()
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, 9)
            served.wait()
    served_out = log.read_text(errors="replace")
    assert "hunt-generation" in served_out or "secret-pool" in served_out, served_out[-2000:]
    prefect = _prefect_texts()
    rows, files = _stored_texts(password_url)
    out, err = capfd.readouterr()
    haystacks = {"served": [served_out], "logs": [out, err], "rows": rows, "files": files, "prefect": prefect}
    leaks = {where: sum(PW in h for h in texts) for where, texts in haystacks.items()}
    assert leaks == dict.fromkeys(haystacks, 0)
