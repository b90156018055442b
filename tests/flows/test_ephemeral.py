"""The ephemeral Prefect API huntflow starts itself (flows/ephemeral.py) and ``huntflow demo``."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import types

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from huntflow.flows.cli import app


def test_the_server_is_started_with_prefects_own_command(monkeypatch):
    """huntflow spawns the server before importing ``prefect.server``; the command and its
    environment must stay the ones ``SubprocessASGIServer`` would run (a Prefect upgrade
    that changes them fails here)."""
    from prefect.server.api import server as srv

    from huntflow.flows.ephemeral import uvicorn_command

    seen = {}
    monkeypatch.setattr(srv, "subprocess", types.SimpleNamespace(Popen=lambda args, env: seen.update(args=args, env=env)))
    port = 18765
    try:
        srv.SubprocessASGIServer(port=port)._run_uvicorn_command()
    finally:
        srv.SubprocessASGIServer._instances.pop(port, None)
    args, env = uvicorn_command(port)
    assert seen["args"] == args
    assert seen["env"] == env


CHILD = """
import os, signal, sys, psutil
from prefect import flow
from huntflow.flows.ephemeral import server_pid, start_guarded, start_soon

start_soon()  # spawned here, awaited in a thread (as the demo does)
watchdog = start_guarded()  # waits for that start

@flow
def hello():
    return 41 + 1

assert hello() == 42
assert "prefect.server.api.server" not in sys.modules  # the client used the URL, not Prefect's singleton
assert "PREFECT_API_URL" not in os.environ  # children don't inherit a server that ends with us
servers = [c.pid for c in psutil.Process().children() if "uvicorn" in " ".join(c.cmdline())]
print(servers, server_pid(), watchdog, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_flow_runs_on_the_started_api_and_a_killed_process_leaves_none_behind(tmp_path):
    """One server (Prefect's client uses the one huntflow spawned, without importing
    ``prefect.server``), on a fresh home seeded from the schema dump, its output in its log file
    rather than on the command's terminal, and its watchdog ends it when the process is
    SIGKILLed (a fast variant of test_chaos's killed tick)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
               PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    servers, adopted, watchdog = proc.stdout.strip().splitlines()[-1].rsplit(" ", 2)
    servers = json.loads(servers)
    assert servers == [int(adopted)]  # no second server: the flow ran on the adopted one
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in servers + [int(watchdog)] if psutil.pid_exists(p)],
                                    timeout=30)
    assert not alive, f"orphaned: {[p.pid for p in alive]}"
    assert (tmp_path / "prefect" / "ephemeral-api.log").is_file()
    assert (tmp_path / "prefect" / "prefect.db").is_file()
    assert "prefect.server" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.usefixtures("prefect_harness")
def test_demo_runs_its_campaign_to_a_verdict(db, tmp_path):
    """``huntflow demo`` on a small spec: the warm-up, the ticks, the table and the verdict."""
    spec = {"slug": "demo-small", "title": "a small demo", "model": {"name": "rosenbrock"},
            "space": {"x0": {"low": -2, "high": 2}, "x1": {"low": -2, "high": 2}},
            "objectives": [{"metric": "f"}], "budget": {"evaluations": 64},
            "optimizer": {"name": "ngopt", "population": 32}, "seed": 7}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    try:
        wide = CliRunner().invoke(app, ["demo", "--spec", str(path), "--tolerance", "1e9"])
        tight = CliRunner().invoke(app, ["demo", "--spec", str(path), "--tolerance", "0", "--json"])
    finally:
        gc.unfreeze()  # the demo freezes the heap before its process exits; this one goes on
    assert wide.exit_code == 0, wide.output
    assert "demo-small after" in wide.output and "best objective" in wide.output and "within" in wide.output
    out = json.loads(tight.stdout.strip().splitlines()[-1])
    assert tight.exit_code == 1  # a gap above the tolerance fails the demo
    assert out["campaigns"][0]["slug"] == "demo-small-2" and out["campaigns"][0]["status"] == "completed"
    assert out["gap"] > 0 and out["known_optimum"] == 0.0
