"""A planted database password never shows: not in CLI output, logs, rows, files under the data
dir, nor in Prefect's flow/task-run states and logs, across a whole run with failures (a tampered
checkpoint failing evolve, an unreachable and a malformed URL, a refused kit import)."""

from __future__ import annotations

import json
import logging
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
    return [r.model_dump_json() for r in [*flows, *tasks, *logs]]


def test_a_planted_password_appears_nowhere(password_url, db, prefect_harness, tmp_path, caplog, capfd):
    from huntflow.flows.tick import hunt_tick
    from huntflow.store.connection import connect

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

    conn = connect(password_url)
    tables = [r["table_name"] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'hunt'")]
    rows = [json.dumps(r, default=str) for t in tables
            for r in conn.execute(f'select row_to_json(x)::text as j from hunt."{t}" x')]
    assert rows  # there is something to look at
    files = []
    from huntflow.config import get_settings

    for path in get_settings().data_dir.rglob("*"):
        if path.is_file() and "pgdata" not in path.parts and path.stat().st_size < 50 * 2**20:
            files.append(path.read_bytes().decode("latin-1"))
    out, err = capfd.readouterr()
    haystacks = {"cli": outputs, "logs": [caplog.text, out, err], "rows": rows, "files": files,
                 "prefect": _prefect_texts()}
    leaks = {where: sum(PW in h for h in texts) for where, texts in haystacks.items()}
    assert leaks == dict.fromkeys(haystacks, 0)
