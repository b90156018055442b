"""Pool duty cycle: how busy the gpu pool is while a campaign still has budget.

A real ``prefect server`` on this machine, the two process pools of deployments/*.json and
``prefect deploy --all`` from prefect.yaml (the operators' path), a Prefect process worker on
the cpu pool (the first tick, and the baseline's chained ticks), and then, interleaved
(warm, nowarmup, baseline, warm, ...), one campaign per round on the ``gpu`` pool:

* **warm** — ``huntflow worker --pool gpu``: generations run inside one long-lived process
  that claims the next queued run while one evaluates (``--prefetch 1``), and a finished
  generation's campaign is ticked there at once (its dispatching follow-up tick in the same
  flow run); it compiles a new campaign's first executable as soon as the campaign is active
  (while its first tick plans, on the cpu pool), and a claimed run's while another evaluates;
* **nowarmup** — the same worker with ``--no-warm-up`` (the first generation compiles inside
  its run, as before);
* **baseline** — ``prefect worker start --pool gpu`` (a Python process per generation) with the
  chained ticks on the cpu pool's process worker (a Python process per tick), as before.

Both poll every ``--poll`` seconds. The campaign is the CGL model at one rung of
``--grid``/``--steps`` (the step count sets a generation's evaluation time; by default it is
calibrated here to ``--target-seconds``, 20), ``--population`` candidates, ``--generations``
generations, ``max_in_flight`` 2 (``--in-flight``), NGOpt (``--optimizer``), no verification
batches (``review.spot_check_top: 0``), so every pool run is a search generation.

Each round starts a fresh gpu worker with an empty persistent compilation cache (a model new
to the pool; the calibration uses its own cache), waits until it has registered with the pool
(a pool's worker is long-lived: it is up before campaigns arrive), then adds the campaign.

Per round, from the generation rows (database clock): the window runs from the first
generation's start to the last one's finish; ``gpu_duty_cycle`` = evaluation seconds (the
result documents' ``wall_seconds``: the batched call, compilation excluded) over the window;
``steady_duty_cycle`` the same from the first generation's end (back to back, the worker's
first compilation behind it); ``busy_fraction`` with each run's whole start→finish; ``first_generation`` its run, evaluation
and compile seconds and the seconds from the campaign's creation to its dispatch and start;
``gaps`` = the idle time between
one generation's finish and the next one's start; ``tell_seconds`` = a generation's finish to
the end of the parse stage that read it; ``gap_breakdown`` = per pair of consecutive
generations, the seconds from the first one's finish to each step towards the next one's start
(parsed, told, planned, dispatched, claimed by the worker, flow run Running, row ``running``).
The last stdout line is one JSON object (medians over the rounds of each mode, every round, the
machine and its load at start and end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = Path(tempfile.mkdtemp(prefix="huntflow-duty-"))
os.environ["HUNTFLOW_DATA_DIR"] = str(DATA / "data")
os.environ["PREFECT_HOME"] = str(DATA / "prefect-home")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # on a GPU the calibration must leave the workers memory


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The prefect server, pools, deployments and workers this benchmark starts (and stops)."""

    def __init__(self, url: str, poll: float) -> None:
        port = _free_port()
        self.env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_CLI_PROMPT": "false",
                    "SUPABASE_DB_URL": url, "HUNTFLOW_CHECKOUT": str(ROOT), "PYTHONUNBUFFERED": "1",
                    "PREFECT_WORKER_QUERY_SECONDS": str(poll), "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                    "PREFECT_LOGGING_LEVEL": "INFO"}
        self.port, self.poll = port, poll
        self.logs = DATA / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> None:
        out = open(self.logs / f"{name}.log", "a")
        self.procs[name] = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def cli(self, *args: str) -> str:
        r = subprocess.run([str(BIN / "prefect"), *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return r.stdout

    def up(self) -> None:
        self.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)])
        end = time.monotonic() + 180
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("prefect server did not become healthy")
        for pool in ("cpu", "gpu"):
            self.cli("work-pool", "create", pool, "--type", "process",
                     "--base-job-template", str(ROOT / f"deployments/{pool}-process-pool.json"))
        self.cli("deploy", "--all")
        self.start("worker-cpu", [str(BIN / "prefect"), "worker", "start", "--pool", "cpu", "--limit", "4"])

    def gpu_worker(self, mode: str, name: str) -> None:
        if mode in ("warm", "nowarmup"):
            argv = [str(BIN / "huntflow"), "worker", "--pool", "gpu", "--poll", str(self.poll), "--name", name]
            if mode == "nowarmup":
                argv.append("--no-warm-up")
        else:
            argv = [str(BIN / "prefect"), "worker", "start", "--pool", "gpu", "--limit", "1", "--name", name]
        self.start(f"worker-gpu-{mode}", argv)

    def wait_for_worker(self, name: str, timeout: float = 300) -> float:
        """Seconds until the worker ``name`` registered with the gpu pool (it is polling)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            req = urllib.request.Request(f"{self.env['PREFECT_API_URL']}/work_pools/gpu/workers/filter",
                                         data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    if any(w.get("name") == name for w in json.loads(r.read())):
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"worker {name} did not register with the gpu pool")

    def down(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop(name)


def spec(slug: str, args: argparse.Namespace) -> dict:
    return {
        "slug": slug, "model": {"name": "cgl", "fixed": {"sigma": 0.0, "L": 80.0}},
        "space": {"alpha": {"low": 0.5, "high": 3.0}, "beta": {"low": -3.0, "high": -0.5},
                  "kappa": {"low": -1.0, "high": 0.5}, "ell": {"low": 1.0, "high": 4.0}},
        "objectives": [{"metric": "log_prime_sse", "goal": "minimize"}],
        "fidelities": [{"name": "bench", "settings": {"grid": args.grid, "steps": args.steps, "dt": 0.05}}],
        "budget": {"evaluations": args.population * args.generations},
        "optimizer": {"name": args.optimizer, "population": args.population,
                      "options": {"max_in_flight": args.in_flight}},
        "review": {"spot_check_top": 0}, "seed": 5,
    }


def calibrate(args: argparse.Namespace, probe_steps: int = 300) -> tuple[int, dict]:
    """CGL steps for a generation of ``--target-seconds`` here: the population timed at
    ``probe_steps`` (after a compiling call), scaled linearly (the solver's cost is per step)."""
    import numpy as np

    from huntflow.engine.evaluate import evaluate_population

    names = ("alpha", "beta", "kappa", "ell")
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(0.5, 3.0, args.population), rng.uniform(-3.0, -0.5, args.population),
                              rng.uniform(-1.0, 0.5, args.population), rng.uniform(1.0, 4.0, args.population)])
    fidelity = {"grid": args.grid, "steps": probe_steps, "dt": 0.05}
    run = lambda: evaluate_population({"name": "cgl", "fixed": {"sigma": 0.0, "L": 80.0}}, names, params,  # noqa: E731
                                      seed=1, fixed={"sigma": 0.0, "L": 80.0}, fidelity=fidelity)
    first = run()
    timed = min(run().wall_seconds for _ in range(2))
    steps = max(probe_steps, int(round(args.target_seconds / timed * probe_steps / 100.0)) * 100)
    return steps, {"probe_steps": probe_steps, "probe_seconds": round(timed, 3),
                   "first_call_compile_seconds": round(first.compile_seconds, 2)}


def _api(api: str, path: str):
    with urllib.request.urlopen(api + path, timeout=30) as r:
        return json.loads(r.read())


def _ts(text: str | None):
    from datetime import datetime

    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def flow_run_times(api: str, flow_run_id: str) -> dict:
    """When the generation's flow run was created, claimed (Pending), started (Running) and
    ended, from the server's state history (the server's clock: the same machine's)."""
    try:
        run = _api(api, f"/flow_runs/{flow_run_id}")
        states = _api(api, f"/flow_run_states/?flow_run_id={flow_run_id}")
    except Exception:
        return {}
    first = {}
    for s in sorted(states, key=lambda s: s["timestamp"]):
        first.setdefault(s["type"], _ts(s["timestamp"]))
    return {"created": _ts(run.get("created")), "pending": first.get("PENDING"), "running": first.get("RUNNING"),
            "ended": _ts(run.get("end_time"))}


def gap_breakdown(db, cid, gens: list[dict], api: str | None) -> list[dict]:
    """Where each gap goes: for consecutive generations A, B (by start), the seconds from A's
    finish to each step on the way to B's start (negative: it happened before A finished).
    ``a_parsed``/``a_told``/``a_learned``: the stages of the tick that parsed A finished;
    ``a_run_ended``: A's flow run ended (the worker takes B only then); ``b_planned``,
    ``b_dispatched`` (its flow run created), ``b_claimed`` (Pending: the worker took it),
    ``b_running`` (the flow engine started it), ``b_started`` (its row ``running``: the gap)."""
    stages = db.execute("select tick_id, stage, finished_at, summary from hunt.stage_runs where campaign_id = %s"
                        " and status = 'succeeded'", (cid,)).fetchall()
    by_tick: dict = {}
    for s in stages:
        by_tick.setdefault(s["tick_id"], {})[str(s["stage"])] = s

    def tick_of(gid: str) -> dict:
        for t in by_tick.values():
            parsed = ((t.get("parse") or {}).get("summary") or {}).get("parsed") or []
            if any(p.get("generation_id") == gid and p.get("outcome") == "parsed" for p in parsed):
                return t
        return {}

    runs = {str(g["dispatch_ref"]): flow_run_times(api, str(g["dispatch_ref"])) if api and g["dispatch_ref"] else {}
            for g in gens}
    out = []
    for a, b in zip(gens, gens[1:]):
        t0 = a["finished_at"]
        rel = lambda t: None if t is None else round((t - t0).total_seconds(), 2)  # noqa: E731
        tick = tick_of(str(a["generation_id"]))
        ra, rb = runs.get(str(a["dispatch_ref"]), {}), runs.get(str(b["dispatch_ref"]), {})
        out.append({"a": a["generation_index"], "b": b["generation_index"],
                    "a_parsed": rel((tick.get("parse") or {}).get("finished_at")),
                    "a_told": rel((tick.get("evolve") or {}).get("finished_at")),
                    "a_learned": rel((tick.get("learn") or {}).get("finished_at")),
                    "a_run_ended": rel(ra.get("ended")),
                    "b_planned": rel(b["created_at"]), "b_dispatched": rel(b["dispatched_at"]),
                    "b_flow_run_created": rel(rb.get("created")), "b_claimed": rel(rb.get("pending")),
                    "b_running": rel(rb.get("running")), "b_started": rel(b["started_at"])})
    return out


def measure(db, cid, api: str | None = None) -> dict:
    """Duty cycle, gaps and tell latency of one finished campaign, from its rows."""
    gens = db.execute(
        "select generation_id, generation_index, created_at, dispatched_at, dispatch_ref, started_at, finished_at,"
        " (result_document->>'wall_seconds')::float as eval,"
        " (result_document->>'compile_seconds')::float as compile from hunt.generations"
        " where campaign_id = %s and kind <> 'verification' and started_at is not null order by started_at",
        (cid,)).fetchall()
    if not gens:
        return {"generations": 0}
    t0, t1 = gens[0]["started_at"], max(g["finished_at"] for g in gens)
    window = (t1 - t0).total_seconds()
    runs = [(g["finished_at"] - g["started_at"]).total_seconds() for g in gens]
    gaps = [max(0.0, (b["started_at"] - a["finished_at"]).total_seconds()) for a, b in zip(gens, gens[1:])]
    parses = db.execute("select started_at, finished_at from hunt.stage_runs where campaign_id = %s and stage = 'parse'"
                        " and status = 'succeeded' order by started_at", (cid,)).fetchall()
    tells = []
    for g in gens:
        later = [p["finished_at"] for p in parses if p["started_at"] >= g["finished_at"]]
        if later:
            tells.append((min(later) - g["finished_at"]).total_seconds())
    evaluating = sum(g["eval"] or 0.0 for g in gens)
    created = db.execute("select created_at from hunt.campaigns where campaign_id = %s", (cid,)).fetchone()["created_at"]
    g0 = gens[0]
    first = {"run_seconds": round((g0["finished_at"] - g0["started_at"]).total_seconds(), 2),
             "evaluation_seconds": round(g0["eval"] or 0.0, 2), "compile_seconds": round(g0["compile"] or 0.0, 2),
             "added_to_dispatched_seconds": round((g0["dispatched_at"] - created).total_seconds(), 2),
             "added_to_started_seconds": round((g0["started_at"] - created).total_seconds(), 2)}
    # back to back: from the first generation's end (the worker's first compile is behind it)
    steady = (t1 - gens[0]["finished_at"]).total_seconds()
    steady_eval = sum(g["eval"] or 0.0 for g in gens[1:])
    return {"generations": len(gens), "window_seconds": round(window, 2),
            "steady_duty_cycle": round(steady_eval / steady, 3) if len(gens) > 1 and steady > 0 else None,
            "evaluation_seconds": round(evaluating, 2), "compile_seconds": round(sum(g["compile"] or 0 for g in gens), 2),
            "first_generation": first,
            "gpu_duty_cycle": round(evaluating / window, 3) if window > 0 else None,
            "busy_fraction": round(min(1.0, sum(runs) / window), 3) if window > 0 else None,
            "median_gap_seconds": _med(gaps), "gaps": [round(x, 2) for x in gaps],
            "median_tell_seconds": _med(tells), "run_seconds": [round(x, 2) for x in runs],
            "gap_breakdown": gap_breakdown(db, cid, gens, api)}


def one_round(stack: Stack, db, mode: str, n: int, args: argparse.Namespace) -> dict:
    from huntflow.engine.spec import parse_spec
    from huntflow.store import campaigns

    # every round starts with an empty persistent compilation cache: a model new to the pool
    shutil.rmtree(DATA / "data" / "jax-cache", ignore_errors=True)
    name = f"{mode}-{n}"
    stack.gpu_worker(mode, name)
    ready = stack.wait_for_worker(name)  # a pool's worker is up before campaigns arrive (long-lived)
    cid = campaigns.insert_campaign(db, parse_spec(spec(f"duty-{mode}-{n}", args)))  # slug: warm-up lines
    t_start = time.monotonic()
    stack.cli("deployment", "run", "hunt-tick/chained", "--params", json.dumps({"campaign_ids": [str(cid)]}))
    deadline = t_start + args.timeout
    while time.monotonic() < deadline and campaigns.get_campaign(db, cid)["status"] == "active":
        time.sleep(1)
    wall = time.monotonic() - t_start
    row = campaigns.get_campaign(db, cid)
    stack.stop(f"worker-gpu-{mode}")
    slug = f"duty-{mode}-{n}"
    log = (stack.logs / f"worker-gpu-{mode}.log").read_text(errors="replace")
    warm = re.findall(rf"warm-up of campaign {re.escape(slug)}: compiled in ([0-9.]+) s", log)
    got = {"mode": mode, "round": n, "status": row["status"], "completion_reason": row["completion_reason"],
           "campaign_wall_seconds": round(wall, 1), "worker_ready_seconds": round(ready, 1),
           "warm_up_compile_seconds": float(warm[-1]) if warm else None,
           **measure(db, cid, stack.env["PREFECT_API_URL"]),
           "load": os.getloadavg()}
    _log(json.dumps(got))
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each mode, interleaved")
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None,
                    help="CGL steps (sets a generation's evaluation time; default: calibrated to --target-seconds)")
    ap.add_argument("--target-seconds", type=float, default=20.0, help="evaluation seconds per generation to size for")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between worker polls (both modes)")
    ap.add_argument("--modes", default="warm,nowarmup,baseline",
                    help="warm (huntflow worker), nowarmup (the same with --no-warm-up), baseline (process workers)")
    ap.add_argument("--optimizer", default="ngopt", help="the campaign's optimizer (its ask is part of every tick)")
    ap.add_argument("--in-flight", type=int, default=2, help="optimizer.options.max_in_flight")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds a campaign may take")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    from huntflow.store.connection import connect, database_url, stop_embedded

    url = database_url()
    os.environ["SUPABASE_DB_URL"] = url
    out: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                             "load_start": os.getloadavg()},
                 "settings": {k: v for k, v in vars(args).items()}}
    if args.steps is None:
        from huntflow.engine.evaluate import enable_compilation_cache

        enable_compilation_cache(DATA / "calibration-cache")  # never the workers' cache
        args.steps, out["calibration"] = calibrate(args)
        _log(f"calibrated: {args.steps} steps for ~{args.target_seconds:g} s ({out['calibration']})")
    stack = Stack(url, args.poll)
    t_all = time.perf_counter()
    rounds: list[dict] = []
    try:
        _log("prefect server, pools, deploy")
        stack.up()
        db = connect(url)
        for n in range(args.rounds):
            for mode in modes:
                _log(f"round {n}: {mode}")
                rounds.append(one_round(stack, db, mode, n, args))
    finally:
        stack.down()
        if os.environ.get("HUNTFLOW_BENCH_KEEP_LOGS") and stack.logs.exists():
            shutil.copytree(stack.logs, os.environ["HUNTFLOW_BENCH_KEEP_LOGS"], dirs_exist_ok=True)
        stop_embedded()
    for mode in modes:
        mine = [r for r in rounds if r["mode"] == mode and r.get("generations")]
        key = "" if mode == "warm" else f"{mode}_"
        for metric in ("gpu_duty_cycle", "steady_duty_cycle", "median_gap_seconds", "median_tell_seconds", "busy_fraction",
                       "campaign_wall_seconds"):
            out[f"{key}{metric}"] = _med([r[metric] for r in mine if r.get(metric) is not None])
        out[f"{key}first_generation_run_seconds"] = _med([r["first_generation"]["run_seconds"] for r in mine])
        out[f"{key}first_generation_compile_seconds"] = _med([r["first_generation"]["compile_seconds"] for r in mine])
    out["rounds"] = rounds
    out["machine"]["load_end"] = os.getloadavg()
    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    shutil.rmtree(DATA, ignore_errors=True)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
