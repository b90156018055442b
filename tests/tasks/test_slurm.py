"""The slurm operator on a real Slurm: a single-node cluster (slurmctld + slurmd, Debian's
``slurm-wlm`` packages) started for this module in a temporary directory and stopped after it.

Generations are ``sbatch`` jobs that run ``huntflow generation run``; ticks run in this process
(Prefect harness) and collect them. Skipped where Slurm is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from huntflow.store import campaigns, generations
from huntflow.tasks import slurm
from huntflow.tasks.execute import execute_generation

DAEMONS = ("slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo")
pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.skipif(any(shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists() for d in DAEMONS),
                       reason="Slurm is not installed (apt-get install slurmctld slurmd slurm-client)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node Slurm cluster on loopback (auth/none: no munge); yields its ``SLURM_CONF``."""
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool", "log"):
        (root / d).mkdir()
    host = socket.gethostname().split(".")[0]
    user = getpass.getuser()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=huntflowtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/none",
        "CredType=cred/none",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "ReturnToService=2",
        "MinJobAge=600",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=2000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = []
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        for daemon in ("slurmctld", "slurmd"):
            out = open(root / "log" / f"{daemon}.out", "w")
            procs.append(subprocess.Popen([_exe(daemon), "-D", "-f", str(conf)], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([_exe("sinfo"), "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (root / "log").iterdir())
                raise AssertionError(f"the Slurm node never became idle: {r.stdout} {r.stderr}\n{logs}")
            time.sleep(0.5)
        yield {"conf": conf, "root": root}
    finally:
        subprocess.run([_exe("scancel"), "--user", user], env=env, capture_output=True)
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@pytest.fixture
def on_slurm(slurm_cluster, monkeypatch):
    monkeypatch.setenv("HUNTFLOW_OPERATOR", "slurm")
    monkeypatch.delenv("HUNTFLOW_SLURM_SBATCH_ARGS", raising=False)
    return slurm_cluster


def _tick(cid):
    from huntflow.flows.tick import hunt_tick

    return hunt_tick([str(cid)])["campaigns"].get(str(cid), {})


def _gens(db, cid, verification: bool = False):
    """The campaign's generations in ask order; review's verification batches only if asked."""
    rows = db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()
    return [g for g in rows if verification or g["kind"] != "verification"]


def _wait_state(jid: str, states: set[str], timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = slurm.job_state(jid)
        if state in states:
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {jid} never reached {states} (last {slurm.job_state(jid)})")


def test_a_campaign_runs_to_completion_as_sbatch_jobs(db, make_spec, on_slurm, database_url):
    spec = make_spec(slug="slurm-sphere", budget={"evaluations": 16},
                     optimizer={"name": "ngopt", "population": 8, "options": {"max_in_flight": 2}})
    cid = campaigns.insert_campaign(db, spec)
    end = time.monotonic() + 400
    while campaigns.get_campaign(db, cid)["status"] == "active":
        assert time.monotonic() < end, f"not done: {[(g['status'], g['dispatch_ref'], g['error']) for g in _gens(db, cid)]}"
        _tick(cid)
        time.sleep(0.5)
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    gens = _gens(db, cid, verification=True)  # review's verification batches ran as sbatch jobs too
    assert gens and all(g["operator"] == "slurm" for g in gens)
    assert {g["status"] for g in gens if g["kind"] != "verification"} == {"told"}
    assert {g["status"] for g in gens if g["kind"] == "verification"} == {"reviewed"}
    jobs = [slurm.job_id(g["dispatch_ref"]) for g in gens]
    assert all(jobs) and len(set(jobs)) == len(gens)
    assert {_wait_state(j, {"COMPLETED"}) for j in jobs} == {"COMPLETED"}
    evals = generations.campaign_evaluations(db, cid)
    assert len(evals) == 16 and all(e["status"] == "succeeded" and e["provenance"]["jax_backend"] for e in evals)
    for g in gens:
        script = slurm.script_path(g, spec.slug, g["attempt"])
        text = script.read_text()
        assert f"generation run {g['generation_id']} --attempt {g['attempt']}" in text
        assert database_url not in text and "SUPABASE_DB_URL" not in text  # no secret in the script
        assert "succeeded" in script.with_suffix(".out").read_text()  # the job's own output
        assert Path(g["artifact_path"]).is_file()


def test_a_cancelled_job_is_lost_at_once_and_a_queued_one_is_not(db, make_spec, on_slurm, monkeypatch):
    spec = make_spec(slug="slurm-lost", budget={"evaluations": 8}, optimizer={"name": "ngopt", "population": 8})
    cid = campaigns.insert_campaign(db, spec)
    monkeypatch.setenv("HUNTFLOW_SLURM_SBATCH_ARGS", "--begin=now+3600")  # queued for an hour
    _tick(cid)  # evolve plans the first generation
    _tick(cid)  # dispatch submits it
    [g] = _gens(db, cid)
    jid = slurm.job_id(g["dispatch_ref"])
    assert g["status"] == "dispatched" and g["attempt"] == 1 and jid
    assert _wait_state(jid, {"PENDING"}) == "PENDING"
    # even with a zero heartbeat timeout, a job waiting in the queue is not lost
    monkeypatch.setenv("HUNTFLOW_GENERATION_TIMEOUT_SECONDS", "0")
    out = _tick(cid)
    assert out["parse"]["lost"] == [] and _gens(db, cid)[0]["status"] == "dispatched"
    monkeypatch.delenv("HUNTFLOW_GENERATION_TIMEOUT_SECONDS")

    subprocess.run([_exe("scancel"), jid], check=True)
    _wait_state(jid, {"CANCELLED"})
    out = _tick(cid)  # parse: lost (CANCELLED) -> planned, at once (no heartbeat timeout)
    assert [(x["job_id"], x["job_state"], x["now"]) for x in out["parse"]["lost"]] == [(jid, "CANCELLED", "planned")]
    [g] = _gens(db, cid)
    assert g["status"] == "planned" and f"slurm job {jid} is CANCELLED" in g["error"]
    _tick(cid)  # dispatch submits attempt 2
    [g] = _gens(db, cid)
    assert g["attempt"] == 2 and slurm.job_id(g["dispatch_ref"]) not in (None, jid)
    # the first attempt's job, had it started late, would do nothing
    stale = execute_generation(g["generation_id"], attempt=1)
    assert stale["status"] == "noop" and stale["stale_attempt"] == 1

    # the second attempt is queued for an hour too; let it run now
    subprocess.run([_exe("scontrol"), "update", f"jobid={slurm.job_id(g['dispatch_ref'])}", "StartTime=now"], check=True)
    monkeypatch.delenv("HUNTFLOW_SLURM_SBATCH_ARGS")  # review's verification job runs at once
    end = time.monotonic() + 300
    while campaigns.get_campaign(db, cid)["status"] == "active":
        assert time.monotonic() < end, [(x["status"], x["dispatch_ref"]) for x in _gens(db, cid)]
        _tick(cid)
        time.sleep(0.5)
    [g] = _gens(db, cid)
    assert g["status"] == "told" and g["attempt"] == 2
    assert slurm.script_path(g, spec.slug, 1).is_file() and slurm.script_path(g, spec.slug, 2).is_file()


def test_a_job_sbatch_refuses_is_given_back_with_slurms_reason(db, make_spec, on_slurm, monkeypatch):
    spec = make_spec(slug="slurm-refused", budget={"evaluations": 8}, optimizer={"name": "ngopt", "population": 8})
    cid = campaigns.insert_campaign(db, spec)
    monkeypatch.setenv("HUNTFLOW_SLURM_SBATCH_ARGS", "--partition=no-such-partition")
    _tick(cid)
    out = _tick(cid)
    [refused] = out["dispatch"]["refused"]
    assert refused["now"] == "planned" and re.search(r"invalid partition", refused["error"], re.I)
    [g] = _gens(db, cid)
    assert g["status"] == "planned" and g["attempt"] == 1 and "sbatch exited" in g["error"]
    assert g["dispatch_ref"] is None
