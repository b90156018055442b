"""End to end on a real `prefect server`, process work pools, workers and `prefect deploy`.

The operators' path from prefect.yaml: two process pools (cpu for ticks, gpu for generations),
`prefect deploy --all`, one worker per pool, then `prefect deployment run
'hunt-tick/every-5-minutes'` once. Pool generations chain the next tick themselves, so the
campaign must run to completion with no further push; then the `hunt-report/report`
deployment writes its report. Everything started here is stopped here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from huntflow.store import campaigns, generations

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, what: str, every: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def prefect_stack(tmp_path, database_url):
    """A prefect server, the two pools and their workers; yields the client environment."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "SUPABASE_DB_URL": database_url,
        "HUNTFLOW_DATA_DIR": str(tmp_path / "data"),
        "HUNTFLOW_CHECKOUT": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        p = subprocess.Popen([str(BIN / "prefect"), *args], env=env, cwd=REPO, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    def cli(*args: str) -> str:
        r = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, f"prefect {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    try:
        start("server", "server", "start", "--host", "127.0.0.1", "--port", str(port))

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait(healthy, 120, "prefect server health")
        cli("work-pool", "create", "cpu", "--type", "process",
            "--base-job-template", str(REPO / "deployments/cpu-process-pool.json"))
        cli("work-pool", "create", "gpu", "--type", "process",
            "--base-job-template", str(REPO / "deployments/gpu-process-pool.json"))
        cli("deploy", "--all")
        start("worker-cpu", "worker", "start", "--pool", "cpu", "--limit", "2")
        start("worker-gpu", "worker", "start", "--pool", "gpu", "--limit", "2")
        yield {"env": env, "cli": cli, "logs": logs}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_deployment_run_drives_a_pool_campaign_to_completion(db, make_spec, prefect_stack):
    spec = make_spec(slug="e2e-sphere", budget={"evaluations": 8},
                     optimizer={"name": "ngopt", "population": 8, "options": {"max_in_flight": 1}})
    cid = campaigns.insert_campaign(db, spec)
    prefect_stack["cli"]("deployment", "run", "hunt-tick/every-5-minutes")

    def done():
        return campaigns.get_campaign(db, cid)["status"] != "active"

    try:
        _wait(done, 420, "the campaign to complete", every=2.0)
    except AssertionError:
        tails = {p.name: p.read_text()[-3000:] for p in prefect_stack["logs"].iterdir()}
        raise AssertionError(f"campaign did not complete; logs:\n{tails}") from None
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    gens = db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()
    assert gens and all(g["operator"] == "pool" and g["status"] == "told" for g in gens)
    assert all(len(g["dispatch_ref"]) == 36 for g in gens)  # a Prefect flow-run id
    evals = generations.campaign_evaluations(db, cid)
    assert all(e["status"] == "succeeded" and e["provenance"]["jax_backend"] for e in evals)
    ticks = db.execute("select tick_id, count(*) as n from hunt.stage_runs where campaign_id = %s"
                       " group by tick_id", (cid,)).fetchall()
    assert len(ticks) >= len(gens) + 1 and all(t["n"] == 6 for t in ticks)

    # the report deployment on the cpu pool writes the report where the operator's data lives
    out = prefect_stack["cli"]("deployment", "run", "hunt-report/report", "--param", "slug=e2e-sphere",
                               "--watch", "--watch-interval", "1", "--watch-timeout", "180")
    assert "Completed" in out, out
    report_dir = Path(prefect_stack["env"]["HUNTFLOW_DATA_DIR"]) / "reports" / "e2e-sphere"
    assert "e2e-sphere" in (report_dir / "report.md").read_text()
    assert (report_dir / "report.json").exists() and (report_dir / "evaluations.csv").exists()
