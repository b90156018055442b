"""End to end on a real `prefect server`, process work pools, workers and `prefect deploy`.

The operators' path from prefect.yaml: two process pools (cpu for ticks, gpu for generations),
`prefect deploy --all`, one worker per pool (on gpu the warm `huntflow worker`, which runs the
generations and their campaigns' next ticks in one process; `HUNTFLOW_E2E_GPU_WORKER=process`
runs Prefect's process worker there instead), then a researcher's path: `prefect deployment run
'hunt-campaign/add' --params '{"spec": ...}'` (an invalid spec fails its run naming the field
and stores nothing; a valid one triggers its first tick). Pool generations chain the next tick
themselves, so the campaign must run to completion with no further push; its completion event
triggers the `hunt-report/report` deployment; a scheduled tick that starts while another holds
the tick deployment's slot is dropped (CANCEL_NEW), not queued. Runs carry readable names, and the campaign's
artifacts are checked in the Prefect UI itself, rendered by headless Chromium (skipped, saying
so, where Chromium is not installed); the screenshot is saved under the test's temporary
directory. Everything started here is stopped here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
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


def _api(env: dict, path: str, body: dict | None = None):
    """A call to the server's REST API (POST when ``body`` is given). A 503 (the server's SQLite
    was busy; nothing was written) is retried with backoff, as Prefect's own client does."""
    url = env["PREFECT_API_URL"] + path
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(6):
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                return json.loads(body) if body else None  # 204: no content
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == 5:
                raise
            time.sleep(2 ** attempt)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--window-size=1200,1300", "--virtual-time-budget=20000"]


def _chromium(tmp_path: Path, url: str, *what: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"  # a fresh profile each time
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *what, url],
                          capture_output=True, text=True, timeout=120)


def _wait(pred, timeout: float, what: str, every: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _take_slot(env: dict, limit: str) -> str | None:
    """A lease on one slot of the concurrency limit ``limit`` (its id), or None while it is full."""
    try:
        return _api(env, "/v2/concurrency_limits/increment-with-lease",
                    {"names": [limit], "slots": 1, "lease_duration": 300})["lease_id"]
    except urllib.error.HTTPError as e:
        if e.code == 423:  # every slot is taken
            return None
        raise


def _settled(env: dict, run_id: str) -> dict:
    """The final state of flow run ``run_id`` (waits up to 5 minutes)."""
    def final():
        state = _api(env, f"/flow_runs/{run_id}")["state"]
        return state if state["type"] in ("COMPLETED", "CANCELLED", "FAILED", "CRASHED") else None

    return _wait(final, 300, f"flow run {run_id} to settle")


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

    def start(name: str, *args: str, program: str = "prefect") -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        p = subprocess.Popen([str(BIN / program), *args], env=env, cwd=REPO, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    def cli(*args: str) -> str:
        r = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=600)
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

        _wait(healthy, 300, "prefect server health")  # minutes on a loaded machine
        cli("work-pool", "create", "cpu", "--type", "process",
            "--base-job-template", str(REPO / "deployments/cpu-process-pool.json"))
        cli("work-pool", "create", "gpu", "--type", "process",
            "--base-job-template", str(REPO / "deployments/gpu-process-pool.json"))
        cli("deploy", "--all")
        start("worker-cpu", "worker", "start", "--pool", "cpu", "--limit", "2")
        if os.environ.get("HUNTFLOW_E2E_GPU_WORKER") == "process":  # Prefect's process worker: a process per run
            start("worker-gpu", "worker", "start", "--pool", "gpu", "--limit", "2")
        else:  # the warm worker: generations (and their campaigns' ticks) in one long-lived process
            start("worker-gpu", "worker", "--pool", "gpu", "--poll", "0.5", program="huntflow")
        yield {"env": env, "cli": cli, "logs": logs}
    finally:
        if os.environ.get("HUNTFLOW_E2E_KEEP_LOGS"):  # a copy of the server's and workers' logs
            shutil.copytree(logs, os.environ["HUNTFLOW_E2E_KEEP_LOGS"], dirs_exist_ok=True)
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


SPEC = {"slug": "e2e-sphere", "model": {"name": "sphere"},
        "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
        "objectives": [{"metric": "f", "goal": "minimize"}], "budget": {"evaluations": 8},
        "optimizer": {"name": "ngopt", "population": 8, "options": {"max_in_flight": 1}}, "seed": 3}


@pytest.mark.timeout(1800)  # generous for a loaded machine; ~3.5 min on an idle one
def test_deployment_run_drives_a_pool_campaign_to_completion(db, prefect_stack, tmp_path):
    env, cli = prefect_stack["env"], prefect_stack["cli"]
    # an invalid spec: its run fails naming the field, nothing is stored
    bad = {**SPEC, "slug": "e2e-bad", "budget": {"evaluations": 0}}
    bad_run = cli("deployment", "run", "hunt-campaign/add", "--params", json.dumps({"spec": bad}))
    # the real one: stored and started by the add flow, which triggers the first tick
    cli("deployment", "run", "hunt-campaign/add", "--params", json.dumps({"spec": SPEC}))
    cid = _wait(lambda: next((r["campaign_id"] for r in db.execute(
        "select campaign_id from hunt.campaigns where slug = 'e2e-sphere'")), None), 180, "the add flow to store it")

    def done():
        return campaigns.get_campaign(db, cid)["status"] != "active"

    try:
        _wait(done, 900, "the campaign to complete", every=2.0)  # ~2 min on an idle machine
    except AssertionError:
        tails = {p.name: p.read_text()[-3000:] for p in prefect_stack["logs"].iterdir()}
        raise AssertionError(f"campaign did not complete; logs:\n{tails}") from None
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    gens = db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()
    assert gens and all(g["operator"] == "pool" for g in gens)  # review's verification batches too
    search = [g for g in gens if g["kind"] != "verification"]
    checks = [g for g in gens if g["kind"] == "verification"]
    assert search and all(g["status"] == "told" for g in search)
    assert all(g["status"] == "reviewed" for g in checks)  # run and parsed, never told to the optimizer
    assert all(len(g["dispatch_ref"]) == 36 for g in gens)  # a Prefect flow-run id
    evals = generations.campaign_evaluations(db, cid)
    assert all(e["status"] == "succeeded" and e["provenance"]["jax_backend"] for e in evals)
    ticks = db.execute("select tick_id, count(*) filter (where pass = 1) as n, count(*) filter (where pass = 2"
                       " and stage not in ('review', 'dispatch')) as odd from hunt.stage_runs where campaign_id = %s"
                       " group by tick_id", (cid,)).fetchall()  # pass 2: the promotion pass (review, dispatch)
    assert len(ticks) >= len(search) + 1 and all(t["n"] == 6 and t["odd"] == 0 for t in ticks)
    assert db.execute("select count(*) as n from hunt.campaigns where slug = 'e2e-bad'").fetchone()["n"] == 0
    bad_id = bad_run.split("UUID:")[1].split()[0]
    failed = _api(env, f"/flow_runs/{bad_id}")
    assert failed["state"]["type"] == "FAILED" and "budget.evaluations" in failed["state"]["message"], failed["state"]

    # the completion event triggered the report deployment (prefect.yaml's trigger)
    def reported():
        return _api(env, "/artifacts/filter", {"artifacts": {"key": {"any_": ["report-e2e-sphere"]}}})

    try:
        _wait(reported, 180, "the report run the completion event triggers", every=2.0)
    except AssertionError:
        tails = {p.name: p.read_text()[-3000:] for p in prefect_stack["logs"].iterdir()}
        raise AssertionError(f"no report artifact; logs:\n{tails}") from None
    report_dir = Path(env["HUNTFLOW_DATA_DIR"]) / "reports" / "e2e-sphere"
    assert "e2e-sphere" in (report_dir / "report.md").read_text()
    assert (report_dir / "report.json").exists() and (report_dir / "evaluations.csv").exists()

    # names a person can read; the schedule drops an overlapping tick instead of queueing it
    names = {r["name"] for r in _api(env, "/flow_runs/filter", {"limit": 200})}
    assert "tick: e2e-sphere" in names and "add e2e-sphere" in names, names
    assert {f"e2e-sphere/gen-{g['generation_index']} (default)" for g in gens} <= names, names
    tick = _api(env, "/deployments/name/hunt-tick/every-5-minutes")  # as the server stores it
    assert tick["global_concurrency_limit"]["limit"] == 1
    assert tick["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    # and as the server enforces it: a tick that starts while another holds the deployment's slot is
    # dropped, not queued. The test holds the slot the way a running tick does (a lease on the
    # deployment's limit), so the overlap does not depend on how long a real tick happens to run
    # (two ticks created together overlap only if the worker takes the second before the first ends)
    held = _wait(lambda: _take_slot(env, tick["global_concurrency_limit"]["name"]), 300,
                 "the tick deployment's slot (a tick still running holds it)")
    dropped = _settled(env, _api(env, f"/deployments/{tick['id']}/create_flow_run", {})["id"])
    assert dropped["type"] == "CANCELLED" and "concurrency limit" in dropped["message"], dropped
    _api(env, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": held})
    after = _settled(env, _api(env, f"/deployments/{tick['id']}/create_flow_run", {})["id"])
    assert after["type"] == "COMPLETED", after  # the slot came back: nothing was left queued or held

    # the control room, as the UI renders it in a real browser
    [dash] = _api(env, "/artifacts/filter", {"artifacts": {"key": {"any_": ["campaign-e2e-sphere"]}}})
    [prog] = _api(env, "/artifacts/filter", {"artifacts": {"key": {"any_": ["campaign-e2e-sphere-progress"]}}})
    assert prog["data"] == 100.0
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the UI was not checked in a browser (.ci/run installs it)")
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    page = _chromium(tmp_path, f"{ui}/artifacts/artifact/{dash['id']}", "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    dom = page.stdout
    assert "Best so far" in dom and f"{row['best_objective']:.6g}" in dom, dom[-3000:]
    assert "8/8" in dom and "(100 %)" in dom and "data:image/png;base64," in dom
    bar = _chromium(tmp_path, f"{ui}/artifacts/artifact/{prog['id']}", "--dump-dom")
    assert "100%" in bar.stdout
    shot = tmp_path / "campaign-artifact.png"
    taken = _chromium(tmp_path, f"{ui}/artifacts/artifact/{dash['id']}", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    if os.environ.get("HUNTFLOW_SCREENSHOT_TO"):  # how docs/control-room.png was taken
        shutil.copy(shot, os.environ["HUNTFLOW_SCREENSHOT_TO"])
