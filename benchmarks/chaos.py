"""Chaos: kill, pause, crowd and cut off real ``huntflow tick`` processes; the results must not move.

Every scenario runs real ``huntflow tick`` subprocesses (the console script, inline operator)
against a real Postgres and Prefect API and compares the campaign's final evaluations — params,
metrics, status, objective, feasibility, ALM loss, per candidate in ask order — with an
uninterrupted run of the same spec and seed (:func:`reference`, the same stages in-process).

* :func:`kills` — SIGKILL the tick at random moments (half of them while an inline generation
  runs); records per kill the stage it hit, whether a generation was running, how long until
  the campaign's lease was free (``lease_free_s``: the database noticed the dead session) and
  until the next process worked it (``resumed_s``: includes that process' start-up).
* :func:`pause` — SIGSTOP a tick past its lease, let another tick take the campaign over,
  SIGCONT the first: it must write nothing more.
* :func:`crowd` — N concurrent ``tick --until-done`` processes over a few campaigns: no two ticks
  work one campaign at the same time (stage-row intervals per campaign never overlap).
* :func:`outage` — stop Postgres mid-tick and start it again (a server this module controls).

``python benchmarks/chaos.py --kills 50`` runs all four once and prints one JSON object as its
last line (``--quick``: 6 kills). The tests in ``tests/flows/test_chaos.py`` run small versions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HUNTFLOW = str(Path(sys.executable).with_name("huntflow"))

SPEC: dict[str, Any] = {
    "model": {"name": "sphere"},
    "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
    "objectives": [{"metric": "f", "goal": "minimize"}],
    "fidelities": [{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}],
    "budget": {"evaluations": 40},
    "optimizer": {"name": "ngopt", "population": 8},
    "seed": 21,
}


def _connect(url: str):
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def add(url: str, slug: str, **overrides: Any) -> uuid.UUID:
    from huntflow.engine.spec import parse_spec
    from huntflow.store import campaigns

    with _connect(url) as conn:
        return campaigns.insert_campaign(conn, parse_spec({**SPEC, **overrides, "slug": slug}))


def fingerprint(url: str, cid: uuid.UUID) -> list[tuple]:
    from huntflow.store import generations

    with _connect(url) as conn:
        return [(e["ask_id"], e["candidate_index"], e["kind"], e["fidelity"], json.dumps(e["params"], sort_keys=True),
                 json.dumps(e["metrics"], sort_keys=True), e["status"], e["objective"], e["feasible"], e["alm_loss"])
                for e in generations.campaign_evaluations(conn, cid)]


def reference(url: str, slug: str = "chaos-reference") -> list[tuple]:
    """The uninterrupted run: the five stages in this process, tick after tick."""
    from huntflow.store import campaigns
    from huntflow.store.states import Stage
    from huntflow.tasks import dispatch, evolve, learn, parse, review
    from huntflow.tasks._stage import TickContext, run_stage

    cid = add(url, slug)
    for _ in range(60):
        with _connect(url) as conn:
            if campaigns.get_campaign(conn, cid)["status"] != "active":
                return fingerprint(url, cid)
        tick = uuid.uuid4()
        ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
        for stage, logic in [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
                             (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]:
            run_stage(stage, ctx, cid, logic)
    raise RuntimeError("the reference campaign did not finish in 60 ticks")


class Rig:
    """The database URL and environment every tick subprocess of a scenario shares."""

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.env = {**(env or os.environ), "SUPABASE_DB_URL": url, "HUNTFLOW_OPERATOR": "inline",
                    "HUNTFLOW_CHAIN_TICKS": "false"}

    def tick(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([HUNTFLOW, "tick", *args], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        with _connect(self.url) as conn:
            return conn.execute(sql, params).fetchone()

    def lease(self, cid: uuid.UUID) -> dict[str, Any]:
        return self.one(
            "select status, lease_owner, current_stage, lease_expires_at > now() as unexpired,"
            " hunt.lease_session_alive(lease_pid) as alive from hunt.campaigns where campaign_id = %s", cid)

    def running_inline(self, cid: uuid.UUID, owner: str) -> bool:
        tick = owner.removeprefix("tick:")
        return self.one("select count(*) as n from hunt.generations where campaign_id = %s and status = 'running'"
                        " and dispatch_ref = %s", cid, f"inline:{tick}")["n"] > 0

    def wait(self, predicate, timeout: float, step: float = 0.02):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            got = predicate()
            if got:
                return got
            time.sleep(step)
        return None

    def finish(self, slug: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([HUNTFLOW, "tick", "--until-done", "-c", slug, "--poll", "0.5"], env=self.env,
                              capture_output=True, text=True, timeout=timeout)


def _health(url: str, cid: uuid.UUID) -> dict[str, Any]:
    with _connect(url) as conn:
        return conn.execute(
            "select (select count(*) from hunt.stage_runs where campaign_id = %(c)s and status = 'running') as running_rows,"
            " (select count(*) from hunt.stage_runs where campaign_id = %(c)s and status = 'crashed') as crashed_rows,"
            " (select count(*) from hunt.generations where campaign_id = %(c)s and status = 'failed') as failed_generations,"
            " (select coalesce(max(attempt), 0) from hunt.generations where campaign_id = %(c)s) as max_attempt,"
            " (select coalesce(sum(interruptions), 0)::int from hunt.generations where campaign_id = %(c)s) as interruptions,"
            " (select coalesce(max(interruptions), 0) from hunt.generations where campaign_id = %(c)s)"
            "   as max_interruptions_one_generation,"
            " (select status from hunt.campaigns where campaign_id = %(c)s) as status",
            {"c": cid}).fetchone()


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def kills(rig: Rig, ref: list[tuple], n: int, seed: int = 0, slug: str = "chaos-kills") -> dict[str, Any]:
    """SIGKILL ``n`` ticks at random moments, then let the campaigns finish. Campaigns of the
    same spec are worked one after another (a new one when the last completed) until ``n`` kills
    happened; each must end exactly as :func:`reference`."""
    rng = random.Random(seed)
    cids = [add(rig.url, f"{slug}-0")]
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    last_kill: float | None = None
    while len(records) < n:
        cid, current = cids[-1], f"{slug}-{len(cids) - 1}"
        proc = rig.tick("--until-done", "-c", current, "--poll", "0.5")
        claim = rig.wait(lambda: (lambda r: r if r["status"] != "active" or (
            r["lease_owner"] and r["lease_owner"] not in seen and r["alive"]) else None)(rig.lease(cid)), timeout=300)
        if claim is None or claim["status"] != "active":
            proc.wait(timeout=300)
            cids.append(add(rig.url, f"{slug}-{len(cids)}"))
            continue
        owner = claim["lease_owner"]
        seen.add(owner)
        resumed = None if last_kill is None else time.monotonic() - last_kill
        target = rng.choice(["generation", "anywhere"])
        if target == "generation":
            rig.wait(lambda: rig.running_inline(cid, owner), timeout=20, step=0.005)
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            time.sleep(rng.uniform(0.0, 1.5))
        state = rig.lease(cid)
        in_generation = rig.running_inline(cid, owner)
        _kill(proc)
        last_kill = time.monotonic()
        proc.wait(timeout=60)
        free = rig.wait(lambda: (lambda r: r["status"] != "active" or not r["lease_owner"] or not r["alive"]
                                 or not r["unexpired"])(rig.lease(cid)), timeout=120, step=0.005)
        records.append({"campaign": current, "stage": state["current_stage"], "in_generation": in_generation,
                        "lease_free_s": round(time.monotonic() - last_kill, 3) if free else None,
                        "resumed_s": None if resumed is None else round(resumed, 2)})
    exits = [rig.finish(f"{slug}-{i}").returncode for i in range(len(cids))]
    got = [fingerprint(rig.url, c) for c in cids]
    free = [r["lease_free_s"] for r in records if r["lease_free_s"] is not None]
    resumed = [r["resumed_s"] for r in records if r["resumed_s"] is not None]
    healths = [_health(rig.url, c) for c in cids]
    return {"kills": len(records), "kills_in_generation": sum(r["in_generation"] for r in records),
            "campaigns": len(cids), "identical": all(g == ref for g in got), "rows": sum(map(len, got)),
            "rows_differing": sum(a != b for g in got for a, b in zip(g, ref)), "finish_exits": exits,
            "health": _merge(healths), "lease_free_s": _stats(free), "resumed_s": _stats(resumed),
            "per_kill": records}


def _merge(healths: list[dict[str, Any]]) -> dict[str, Any]:
    """One health row for several campaigns: counts summed, maxima kept, the worst status."""
    out: dict[str, Any] = {}
    for h in healths:
        for k, v in h.items():
            if k == "status":
                out[k] = v if out.get(k, "completed") == "completed" else out[k]
            elif k.startswith("max"):
                out[k] = max(out.get(k, 0), v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def _stats(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"n": 0, "median": None, "max": None}
    xs = sorted(xs)
    return {"n": len(xs), "median": xs[len(xs) // 2], "max": xs[-1], "mean": round(sum(xs) / len(xs), 3)}


def pause(rig: Rig, ref: list[tuple], lease_seconds: float = 2.0, slug: str = "chaos-pause",
          tries: int = 3) -> dict[str, Any]:
    """SIGSTOP a tick past its lease (inside its inline generation when caught there within
    ``tries`` ticks, else wherever it is); another tick takes over; SIGCONT the first."""
    cid = add(rig.url, slug)
    with _connect(rig.url) as conn:
        old = conn.execute("select value from hunt.settings where key = 'lease_seconds'").fetchone()["value"]
        conn.execute("update hunt.settings set value = %s::jsonb where key = 'lease_seconds'", (json.dumps(lease_seconds),))
    try:
        a = rig.tick("--until-done", "-c", slug, "--poll", "0.5")
        seen: set[str] = set()
        in_generation, owner = False, None
        for k in range(tries):
            claim = rig.wait(lambda: (lambda r: r if r["lease_owner"] and r["alive"] and r["lease_owner"] not in seen
                                      else None)(rig.lease(cid)), timeout=300)
            owner = claim["lease_owner"]
            seen.add(owner)
            in_generation = bool(rig.wait(lambda: rig.running_inline(cid, owner), timeout=20, step=0.002))
            if in_generation or k == tries - 1:
                break
        _kill(a, signal.SIGSTOP)
        owner = rig.lease(cid)["lease_owner"] or owner
        tick_a = uuid.UUID(owner.removeprefix("tick:"))
        at_stop = rig.one(  # the row it is in, else past its last one
            "select coalesce(max(stage_run_id) filter (where status = 'running'), max(stage_run_id) + 1, 0) as id"
            " from hunt.stage_runs where tick_id = %s", tick_a)["id"]
        gen = rig.one("select generation_id from hunt.generations where campaign_id = %s and status = 'running'", cid)
        time.sleep(lease_seconds + 1.0)
        t0 = time.monotonic()
        b = subprocess.run([HUNTFLOW, "tick", "-c", slug], env=rig.env, capture_output=True, text=True, timeout=600)
        took_over = time.monotonic() - t0
        _kill(a, signal.SIGCONT)
        a_exit = a.wait(timeout=900)
        with _connect(rig.url) as conn:
            stale = [(r["stage"], r["status"], (r["summary"] or {}).get("reason", "")[:60]) for r in conn.execute(
                "select stage, status, summary from hunt.stage_runs where tick_id = %s and stage_run_id >= %s"
                " order by stage_run_id", (tick_a, at_stop)).fetchall()]
    finally:
        with _connect(rig.url) as conn:
            conn.execute("update hunt.settings set value = %s::jsonb where key = 'lease_seconds'", (json.dumps(old),))
    done = rig.finish(slug)
    got = fingerprint(rig.url, cid)
    final = gen and rig.one("select status, attempt, interruptions, dispatch_ref from hunt.generations"
                            " where generation_id = %s", gen["generation_id"])
    return {"identical": got == ref, "rows": len(got), "b_exit": b.returncode, "a_exit": a_exit,
            "stopped_in_generation": in_generation and gen is not None, "takeover_tick_s": round(took_over, 2),
            "generation_final": final, "stale_tick_after_resume": stale, "finish_exit": done.returncode,
            "health": _health(rig.url, cid)}


def crowd(rig: Rig, ref: list[tuple], ticks: int = 8, campaigns: int = 3, slug: str = "chaos-crowd") -> dict[str, Any]:
    """``ticks`` concurrent ``tick --until-done`` processes over ``campaigns`` campaigns."""
    cids = [add(rig.url, f"{slug}-{i}") for i in range(campaigns)]
    t0 = time.monotonic()
    procs = [rig.tick("--until-done", "--poll", "0.5") for _ in range(ticks)]
    exits = [p.wait(timeout=1200) for p in procs]
    wall = time.monotonic() - t0
    overlaps = 0
    with _connect(rig.url) as conn:
        for cid in cids:
            spans = conn.execute(
                "select tick_id, min(started_at) as a, max(coalesce(finished_at, now())) as b from hunt.stage_runs"
                " where campaign_id = %s and stage <> 'discover' group by tick_id order by a", (cid,)).fetchall()
            overlaps += sum(1 for x, y in zip(spans, spans[1:]) if y["a"] < x["b"])
    return {"ticks": ticks, "campaigns": campaigns, "exits": exits, "wall_s": round(wall, 1),
            "identical": all(fingerprint(rig.url, c) == ref for c in cids), "overlapping_ticks": overlaps,
            "health": [_health(rig.url, c) for c in cids]}


_PG = textwrap.dedent("""
    import sys, pgserver
    print(pgserver.get_server(sys.argv[1], cleanup_mode=None).get_uri(), flush=True)
""")


def _pg_start(pgdata: Path) -> str:
    out = subprocess.run([sys.executable, "-c", _PG, str(pgdata)], capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def _pg_stop(pgdata: Path) -> None:
    from huntflow.store import embedded

    pid = embedded.postmaster_pid(pgdata)
    if pid is not None:
        os.kill(pid, signal.SIGINT)  # fast shutdown: open sessions are cut
        while embedded.postmaster_pid(pgdata) is not None:
            time.sleep(0.05)


def outage(env: dict[str, str] | None, ref: list[tuple], down_seconds: float = 3.0, slug: str = "chaos-outage") -> dict[str, Any]:
    """Stop a Postgres mid-tick and start it again; the campaign must carry on to the same end."""
    tmp = Path(tempfile.mkdtemp(prefix="huntflow-outage-"))
    pgdata = tmp / "pgdata"
    try:
        url = _pg_start(pgdata)
        from huntflow.store.connection import connect

        connect(url).close()
        rig = Rig(url, env)
        cid = add(url, slug)
        a = rig.tick("--until-done", "-c", slug, "--poll", "0.5")
        rig.wait(lambda: (lambda r: r["lease_owner"] and r["alive"] and r["current_stage"] != "discover")(rig.lease(cid)),
                 timeout=300)
        _pg_stop(pgdata)
        time.sleep(down_seconds)
        _pg_start(pgdata)
        t0 = time.monotonic()
        free = rig.wait(lambda: (lambda r: not r["lease_owner"] or not r["alive"] or not r["unexpired"]
                                 or r["status"] != "active")(rig.lease(cid)), timeout=120, step=0.01)
        lease_free = time.monotonic() - t0 if free else None
        try:
            a_exit = a.wait(timeout=300)
            a_err = a.stderr.read() if a.stderr else ""
        except subprocess.TimeoutExpired:
            _kill(a)
            a_exit, a_err = "hung", ""
        done = rig.finish(slug)
        got = fingerprint(url, cid)
        return {"identical": got == ref, "rows": len(got), "tick_exit": a_exit,
                "tick_error_lines": len([ln for ln in a_err.splitlines() if ln.strip()]),
                "tick_traceback": "Traceback" in a_err, "lease_free_after_restart_s": lease_free and round(lease_free, 3),
                "finish_exit": done.returncode, "health": _health(url, cid)}
    finally:
        _pg_stop(pgdata)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:  # pragma: no cover - the long run
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = 6 if args.quick else args.kills
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="huntflow-chaos-"))
    os.environ.setdefault("HUNTFLOW_DATA_DIR", str(tmp / "data"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.server.api.server import SubprocessASGIServer

    api = SubprocessASGIServer()
    api.start(timeout=300)
    env = {**os.environ, "PREFECT_API_URL": api.api_url}
    pgdata = tmp / "pgdata"
    t0 = time.monotonic()
    try:
        url = _pg_start(pgdata)
        os.environ["SUPABASE_DB_URL"] = url  # the in-process reference run uses it too
        from huntflow.store.connection import connect

        connect(url).close()
        rig = Rig(url, env)
        ref = reference(url)
        out: dict[str, Any] = {"reference_rows": len(ref)}
        for name, run in (("kills", lambda: kills(rig, ref, n, seed=args.seed)), ("pause", lambda: pause(rig, ref)),
                          ("crowd", lambda: crowd(rig, ref, ticks=args.ticks)), ("outage", lambda: outage(env, ref))):
            t1 = time.monotonic()
            try:
                out[name] = run()
            except Exception as e:  # record it and go on with the other scenarios
                out[name] = {"error": f"{type(e).__name__}: {e}"}
            out[name]["wall_s"] = round(time.monotonic() - t1, 1)
            print(json.dumps({name: out[name]}, default=str), file=sys.stderr, flush=True)
    finally:
        _pg_stop(pgdata)
        api.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["machine"] = {"cpus": os.cpu_count(), "load_start": load0, "load_end": os.getloadavg(),
                      "wall_s": round(time.monotonic() - t0, 1), "note": "2-core VM shared by 8 concurrent developers"}
    print(json.dumps(out, default=str))


if __name__ == "__main__":  # pragma: no cover
    main()
