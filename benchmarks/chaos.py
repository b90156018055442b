"""Chaos: kill, pause, crowd and cut off real ``huntflow tick`` processes; the results must not move.

Every scenario runs real ``huntflow tick`` subprocesses (the console script, inline operator)
against a real Postgres and Prefect API and compares the campaign's final evaluations — params,
metrics, status, objective, feasibility, ALM loss, per candidate in ask order — with an
uninterrupted run of the same spec and seed (:func:`reference`, the same stages in-process).

* :func:`kills` — SIGKILL the tick at random moments (half of them while an inline generation
  runs); records per kill the stage it hit, whether a generation was running, how long until
  the campaign's lease was free (``lease_free_s``: the database noticed the dead session) and
  until a waiting spare process worked it (``resumed_s``; process start-up is ``startup_s``).
* :func:`pause` — SIGSTOP a tick past its lease, let another tick take the campaign over,
  SIGCONT the first: it must write nothing more.
* :func:`crowd` — N concurrent ``tick --until-done`` processes over a few campaigns: no two ticks
  work one campaign at the same time (stage-row intervals per campaign never overlap).
* :func:`outage` — stop Postgres mid-tick and start it again (a server this module controls).

``python benchmarks/chaos.py --kills 50`` runs all four once and prints one JSON object as its
last line (``--quick``: 6 kills; ``--scenarios kills,crowd`` picks some; the kills use the slow
function model :data:`SLOW` unless ``--kill-model sphere``). The tests in ``tests/flows/test_chaos.py`` run small versions.
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


def reference(url: str, slug: str = "chaos-reference", **overrides: Any) -> list[tuple]:
    """The uninterrupted run (of :data:`SPEC` with ``overrides``): the five stages in this
    process, tick after tick."""
    from huntflow.store import campaigns
    from huntflow.store.states import Stage
    from huntflow.tasks import dispatch, evolve, learn, parse, review
    from huntflow.tasks._stage import TickContext, run_stage

    cid = add(url, slug, **overrides)
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

    def tick(self, *args: str, app: str = "chaos-tick", stderr: Any = subprocess.PIPE) -> subprocess.Popen:
        """A ``huntflow tick`` process, its connections named ``app`` (``PGAPPNAME``)."""
        return subprocess.Popen([HUNTFLOW, "tick", *args], env={**self.env, "PGAPPNAME": app}, stdout=subprocess.DEVNULL,
                                stderr=stderr, text=True, start_new_session=True)

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        with _connect(self.url) as conn:
            return conn.execute(sql, params).fetchone()

    def lease(self, cid: uuid.UUID) -> dict[str, Any]:
        return self.one(
            "select status, lease_owner, current_stage, lease_expires_at > now() as unexpired,"
            " hunt.lease_session_alive(lease_pid) as alive from hunt.campaigns where campaign_id = %s", cid)

    def running_inline(self, cid: uuid.UUID, owner: str) -> bool:
        ref = owner.split(":", 1)[-1]  # tick:<tick id> -> inline:<tick id>, loop:<id> -> inline:<id>
        return self.one("select count(*) as n from hunt.generations where campaign_id = %s and status = 'running'"
                        " and dispatch_ref = %s", cid, f"inline:{ref}")["n"] > 0

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


SLOW: dict[str, Any] = {"model": {"function": "chaos_model:slow_sphere", "pythonpath": [str(ROOT / "benchmarks")],
                                  "metrics": ["f"], "workers": 2}, "budget": {"evaluations": 80}}
"""Overrides of :data:`SPEC` whose generations take ~1–3 s (:mod:`chaos_model`), so kills land
inside them, and whose campaigns outlast a spare tick's start-up on a loaded machine."""


def _apps(rig: Rig) -> set[str]:
    """The chaos processes connected to the database now (``PGAPPNAME`` of each tick process)."""
    with _connect(rig.url) as conn:
        return {r["application_name"] for r in conn.execute(
            "select application_name from pg_stat_activity where application_name like 'chaos-%'").fetchall()}


def _latest_tick(rig: Rig, cid: uuid.UUID, owner: str) -> uuid.UUID | None:
    """The latest tick of lease owner ``owner`` on the campaign (a loop's owner, ``loop:<id>``,
    spans its ticks; a one-shot tick's is ``tick:<tick id>``)."""
    row = rig.one("select tick_id from hunt.stage_runs where campaign_id = %s"
                  " and coalesce(owner, 'tick:' || tick_id) = %s order by stage_run_id desc limit 1", cid, owner)
    return None if row is None else row["tick_id"]


def _holder(rig: Rig, cid: uuid.UUID) -> dict[str, Any]:
    """The campaign's lease, which chaos process holds it (``app``), and its running generation."""
    return rig.one(
        "select c.status, c.lease_owner, c.current_stage, hunt.lease_session_alive(c.lease_pid) as alive,"
        " (select application_name from pg_stat_activity a where a.pid = c.lease_pid) as app,"
        " (select g.generation_id from hunt.generations g where g.campaign_id = c.campaign_id"
        "   and g.status = 'running' and g.dispatch_ref = 'inline:' || substr(c.lease_owner, 6) limit 1) as generation,"
        " (select max(g.interruptions) from hunt.generations g where g.campaign_id = c.campaign_id"
        "   and g.status = 'running') as interruptions"
        " from hunt.campaigns c where c.campaign_id = %s", cid)


def _family(pid: int) -> set[int]:
    """``pid`` and its descendants now (empty when it is gone)."""
    import psutil

    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def _orphans(pids: set[int]) -> list[int]:
    """Processes still alive among ``pids`` and their descendants (function-model workers included)."""
    import psutil

    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def kills(rig: Rig, ref: list[tuple], n: int, seed: int = 0, slug: str = "chaos-kills",
          overrides: dict[str, Any] | None = None, spares: int = 1, max_interruptions: int = 6,
          log: Any = None) -> dict[str, Any]:
    """SIGKILL ``n`` ticks at random moments, then let the campaigns finish. Campaigns of the
    same spec (``overrides`` of :data:`SPEC`) are worked one after another (a new one when the
    last completed) until ``n`` kills happened; each must end exactly as :func:`reference`.

    ``spares`` more ``tick --until-done`` processes than the one working run beside it, waiting
    for the lease (a kill waits until one of them is connected, its start-up done): ``resumed_s`` is the time from a kill until
    one of them works the campaign — recovery, not process start-up, which is ``startup_s``
    (start to first connection) per process. Half the kills wait for an inline generation to
    run (``several`` land in one generation when the next tick re-runs it and is killed again;
    at most ``max_interruptions`` per generation, below the free ones), the other half land
    anywhere after a random delay. Every process of a killed tick's group, and the function
    workers it started, must be gone within 30 s (``orphans``). ``log``: a file each kill's
    record is written to as it happens (one JSON line)."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    procs: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    startup: list[float] = []
    descendants: set[int] = set()
    counter = 0

    def spawn(current: str) -> None:
        nonlocal counter
        name = f"chaos-{counter}"
        counter += 1
        procs[name] = rig.tick("--until-done", "-c", current, "--poll", "0.5", app=name, stderr=subprocess.DEVNULL)
        started[name] = time.monotonic()

    def ready() -> set[str]:
        live = _apps(rig)
        for name in live & set(started):
            startup.append(round(time.monotonic() - started.pop(name), 2))
        return {a for a in live if a in procs and procs[a].poll() is None}

    cids = [add(rig.url, f"{slug}-0", **(overrides or {}))]
    try:
        while len(records) < n:
            cid, current = cids[-1], f"{slug}-{len(cids) - 1}"
            for name in [a for a, p in procs.items() if p.poll() is not None]:
                procs.pop(name).wait()
            while len(procs) < 1 + spares:
                spawn(current)
            # wait until someone works the campaign and a spare is connected (or the campaign ended);
            # further spares go on starting meanwhile
            state = rig.wait(lambda: (lambda r, up: r if r["status"] != "active" or (
                r["alive"] and r["app"] in up and len(up) >= min(2, 1 + spares)) else None)(_holder(rig, cid), ready()),
                timeout=600, step=0.05)
            if state is None or state["status"] != "active":
                for p in procs.values():
                    p.wait(timeout=600)
                procs.clear()
                cids.append(add(rig.url, f"{slug}-{len(cids)}", **(overrides or {})))
                continue
            target = rng.choice(["generation", "anywhere"])
            if target == "generation":
                rig.wait(lambda: _holder(rig, cid)["generation"], timeout=300, step=0.005)
                time.sleep(rng.uniform(0.0, 1.0))
            else:
                time.sleep(rng.uniform(0.0, 1.5))
            state = _holder(rig, cid)
            if (state["interruptions"] or 0) >= max_interruptions:  # let this generation finish first
                state = rig.wait(lambda: (lambda r: r if not r["interruptions"] or r["interruptions"] < max_interruptions
                                          else None)(_holder(rig, cid)), timeout=120) or _holder(rig, cid)
            victim = procs.get(state["app"]) if state["alive"] else None
            if state["status"] != "active" or victim is None:
                continue  # between ticks, or finished: try again
            group = _family(victim.pid)
            load = os.getloadavg()[0]
            _kill(victim)
            last_kill = time.monotonic()
            victim.wait(timeout=60)
            procs.pop(state["app"])
            descendants |= group
            free = rig.wait(lambda: (lambda r: r["status"] != "active" or not r["lease_owner"] or not r["alive"]
                                     )(rig.lease(cid)), timeout=120, step=0.005)
            lease_free = time.monotonic() - last_kill if free else None
            if not procs:  # no spare: the next process starts now (its start-up counts in resumed_s)
                spawn(current)
            back = rig.wait(lambda: (lambda r: r["status"] != "active" or (r["alive"] and r["app"] in procs))(
                _holder(rig, cid)), timeout=300, step=0.01)
            records.append({"campaign": current, "stage": state["current_stage"], "in_generation": bool(state["generation"]),
                            "generation": str(state["generation"]) if state["generation"] else None,
                            "lease_free_s": None if lease_free is None else round(lease_free, 3),
                            "resumed_s": round(time.monotonic() - last_kill, 2) if back else None,
                            "load": round(load, 1)})
            if log is not None:
                print(json.dumps({"kill": len(records), **records[-1]}), file=log, flush=True)
        for p in procs.values():  # the survivors finish the current campaign (until-done on it)
            descendants |= _family(p.pid)
        exits = [p.wait(timeout=900) for p in procs.values()]
    finally:
        for p in procs.values():
            _kill(p)
    with _connect(rig.url) as conn:
        unfinished = [f"{slug}-{i}" for i, c in enumerate(cids) if conn.execute(
            "select status from hunt.campaigns where campaign_id = %s", (c,)).fetchone()["status"] == "active"]
    exits += [rig.finish(u).returncode for u in unfinished]
    orphans = rig.wait(lambda: not _orphans(descendants), timeout=30, step=0.5)
    got = [fingerprint(rig.url, c) for c in cids]
    free = [r["lease_free_s"] for r in records if r["lease_free_s"] is not None]
    resumed = [r["resumed_s"] for r in records if r["resumed_s"] is not None]
    per_generation: dict[str, int] = {}
    for r in records:
        if r["generation"]:
            per_generation[r["generation"]] = per_generation.get(r["generation"], 0) + 1
    healths = [_health(rig.url, c) for c in cids]
    return {"kills": len(records), "kills_in_generation": sum(r["in_generation"] for r in records),
            "most_kills_in_one_generation": max(per_generation.values(), default=0),
            "stages": {s: sum(r["stage"] == s for r in records) for s in {r["stage"] for r in records}},
            "campaigns": len(cids), "identical": all(g == ref for g in got), "rows": sum(map(len, got)),
            "rows_differing": sum(a != b for g in got for a, b in zip(g, ref)), "finish_exits": exits,
            "health": _merge(healths), "lease_free_s": _stats(free), "resumed_s": _stats(resumed),
            "startup_s": _stats(startup), "orphans": [] if orphans else _orphans(descendants),
            "load_at_kills": _stats([r["load"] for r in records]), "per_kill": records}


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
        a = rig.tick("--until-done", "-c", slug, "--poll", "0.5", stderr=subprocess.DEVNULL)
        seen: set[uuid.UUID] = set()
        in_generation, owner = False, None

        def fresh_tick(r):  # (owner, tick) of a tick not tried yet (a loop keeps one owner across ticks)
            tick = _latest_tick(rig, cid, r["lease_owner"]) if r["lease_owner"] and r["alive"] else None
            return (r["lease_owner"], tick) if tick is not None and tick not in seen else None

        for k in range(tries):
            owner, tick = rig.wait(lambda: fresh_tick(rig.lease(cid)), timeout=300)
            seen.add(tick)
            in_generation = bool(rig.wait(lambda: rig.running_inline(cid, owner), timeout=20, step=0.002))
            if in_generation or k == tries - 1:
                break
        _kill(a, signal.SIGSTOP)
        owner = rig.lease(cid)["lease_owner"] or owner
        tick_a = _latest_tick(rig, cid, owner)  # the tick the stopped process is in
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
    procs = [rig.tick("--until-done", "--poll", "0.5", app=f"chaos-crowd-{i}", stderr=subprocess.DEVNULL)
             for i in range(ticks)]  # unread pipes would fill and block them
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
            a_err = a.communicate(timeout=300)[1] or ""  # read while waiting: a full pipe would block it
            a_exit = a.returncode
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
    parser.add_argument("--spares", type=int, default=3, help="ticks waiting beside the working one in the kills")
    parser.add_argument("--scenarios", default="kills,pause,crowd,outage", help="comma-separated, in this order")
    parser.add_argument("--kill-model", choices=("slow", "sphere"), default="slow",
                        help="slow: chaos_model.slow_sphere, ~1-2 s generations (kills land inside them)")
    args = parser.parse_args()
    n = 6 if args.quick else args.kills
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-ups below (servers, ticks)
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
        wanted = args.scenarios.split(",")
        if "kills" in wanted and args.kill_model == "slow":
            t1 = time.monotonic()
            ref_kills, over = reference(url, "chaos-reference-slow", **SLOW), SLOW
            out["slow_reference"] = {"rows": len(ref_kills), "wall_s": round(time.monotonic() - t1, 1)}
        else:
            ref_kills, over = ref, None
        scenarios = {"kills": lambda: kills(rig, ref_kills, n, seed=args.seed, overrides=over, spares=args.spares,
                                            log=sys.stderr),
                     "pause": lambda: pause(rig, ref), "crowd": lambda: crowd(rig, ref, ticks=args.ticks),
                     "outage": lambda: outage(env, ref)}
        for name, run in ((w, scenarios[w]) for w in wanted):
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
                      "wall_s": round(time.monotonic() - t0, 1), "note": "2-core VM shared by 6 concurrent developers"}
    print(json.dumps(out, default=str))


if __name__ == "__main__":  # pragma: no cover
    main()
