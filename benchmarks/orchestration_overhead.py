"""Orchestration overhead: what a tick costs around the science, at every scale.

Measured in one run, on one embedded Postgres (pgserver) and Prefect's ephemeral API:

* ``steady_tick_seconds`` — a steady inline tick of the demo campaign (4-D Rosenbrock,
  population 32), ticks inside one flow run as ``tick --until-done`` runs them, interleaved with
  ``no_prefect_tick_seconds``: the same stages called without Prefect (their difference is
  Prefect's share); ``stage_seconds`` splits a tick by stage (from ``hunt.stage_runs``);
  ``steady_cpu_seconds`` the CPU seconds per tick of this process and of the ephemeral API (which
  ingests the task runs' events off the tick's path), in blocks interleaved after the ticks, and
  ``prefect_cpu_seconds_per_tick`` their difference (Prefect's share in CPU, robust to load).
* ``per_evaluation_ms`` vs Optuna's RDB storage on the same Postgres (random sampler and TPE,
  32 trials a block), blocks interleaved with the ticks: ``optuna_random_ms``, ``optuna_tpe_ms``.
  ``per_evaluation_ms`` is the demo's NGOpt (the issue's number); ``per_evaluation_ms_random``
  huntflow's random search, like for like with Optuna's random sampler; ``*_in_flight``: the same
  with ``optimizer.options.max_in_flight`` 4 inline (one tick runs four generations).
* ``evaluation_rows_per_second`` — evaluation rows written with COPY
  (``generations.copy_evaluations``), interleaved with ``executemany_rows_per_second``.
* ``tick_seconds_by_history`` — a tick of a campaign whose history holds 1k / 10k / 100k / 1M
  evaluation rows (seeded inside the database as told generations with their summary and
  trajectory rows, as the tick writes them), campaigns ticked round-robin; the optimizer's own
  state is fresh in each (its growth is the optimizer's, not the orchestration's), random search
  unless ``--history-optimizer`` says otherwise; ``loop_tick_seconds_by_history`` adds the reads
  the loop of ``tick --until-done`` makes after each tick (``loop_reads_seconds_by_history``).
* ``tick_seconds_100_campaigns`` — one tick advancing 100 active demo campaigns (random search
  by default, so the number is the orchestration's; ``--campaign-optimizer ngopt`` adds NGOpt's
  ask, which is the optimizer's own cost and runs under the GIL); each tick is followed by the
  wait for its artifacts (published off the tick's path), and
  ``hunt_tick_run_seconds_100_campaigns`` adds that wait, as a ``hunt-tick`` flow run has it.
* ``overhead_fraction`` / ``duty_cycle`` for the CGL example (``HUNTFLOW_BENCH_CGL_SPEC`` sizes
  it for a GPU, see gpu_check.sh): the example run to its end through the loop of ``tick
  --until-done`` (its executor computes the next generation while the tick tells the last),
  interleaved with the same spec at ``max_in_flight`` 1 through one-shot ticks (the path before
  overlap). overhead_fraction = (loop wall - isolated compute) / isolated compute on the warm
  window (from the 4th generation's start to the last stage; compilation taken out), where
  isolated compute is the same generations' batches re-run alone by the benchmark right after (on
  2 shared cores the tick's Python slows an overlapped generation, so its own wall seconds would
  flatter the fraction: that variant is ``overhead_fraction_in_loop``); ``*_whole_run`` over the
  whole run, compilation counted as compute; ``overhead_fraction_per_tick`` the old per-tick
  definition (synchronous runs); ``best_objective`` of each run (search quality at the budget);
  ``device_idle_seconds`` the window's time with no batch of any kind running (verification
  included), ``verification_seconds_in_window`` review's batches' evaluation seconds (counted as
  orchestration by ``overhead_fraction``; ``overhead_fraction_verification_as_compute`` counts
  their isolated re-run as compute instead). ``overhead_fraction_dedicated_cores`` (``--cgl-cores``,
  default ``shared,dedicated``): the example's overlap run again with XLA's compute threads pinned
  to one core and everything else (the tick, Prefect, the API server, Postgres) to the other,
  isolated compute re-measured under the same pinning (:mod:`benchmarks.cores`): what is left is
  the orchestration keeping the compute waiting, not taking its cores — the stand-in for a GPU
  host. It is reported next to, never instead of, the shared-cores ``overhead_fraction``.
* ``demo_wall_seconds`` — ``huntflow demo`` as a user runs it (a fresh process, its own
  embedded Postgres and ephemeral API, fresh ``HUNTFLOW_DATA_DIR`` and ``PREFECT_HOME``; median
  of ``--demo-reps``), ``demo_first_line_seconds`` when its first line appeared; with
  ``--demo-baseline DIR`` (another revision's checkout, run with this environment) alternating
  with a baseline run: ``demo_baseline_*``.

The last stdout line is one JSON object. The machine's load is recorded at start and end
(the machine may be shared: read the interleaved ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from overhead_cgl import cgl_overhead
from overhead_common import DATA, ROOT, add_campaign, demo_spec, log, med, stage_seconds, tick_seconds
from overhead_history import history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--ticks", type=int, default=20,
                    help="measured steady ticks (each kind; the history section ticks half as many)")
    ap.add_argument("--history", default="1000,10000,100000,1000000", help="evaluation rows per history campaign")
    ap.add_argument("--history-optimizer", default="random",
                    help="optimizer of the history section (random: what the history costs the orchestration)")
    ap.add_argument("--campaigns", type=int, default=100)
    ap.add_argument("--campaign-optimizer", default="random",
                    help="optimizer of the many-campaigns section (random: the orchestration alone; ngopt: the demo's)")
    ap.add_argument("--cgl-reps", type=int, default=2, help="CGL runs of each kind (overlap, synchronous), interleaved")
    ap.add_argument("--cgl-in-flight", default=None,
                    help="max_in_flight of the overlap runs, a comma list (default: the example's)")
    ap.add_argument("--cgl-cores", default="shared,dedicated",
                    help="CGL layouts: shared (the machine as it is; the headline), dedicated (XLA's compute"
                         " pinned to one core, the orchestration to the other: the stand-in for a GPU host)")
    ap.add_argument("--demo-reps", type=int, default=1, help="demo runs (each kind)")
    ap.add_argument("--demo-baseline", default=None,
                    help="a checkout of another revision: its demo alternates with this one's (same environment)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: steady,rows,history,campaigns,demo,cgl")
    args = ap.parse_args()
    if args.quick:
        args.ticks, args.history, args.campaigns = 4, "1000,10000", 10
    skip = set(filter(None, args.skip.split(",")))

    cores = None
    if "cgl" not in skip and "dedicated" in args.cgl_cores.split(","):
        import importlib.util  # by path: this script may measure another checkout's huntflow (its venv)

        found = importlib.util.spec_from_file_location("bench_cores", Path(__file__).with_name("cores.py"))
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        cores = module.Cores().start()  # before JAX's backend starts: records XLA's compute threads
    from huntflow.flows.cli.common import prefect_env
    from huntflow.store.connection import database_url

    prefect_env()  # the ephemeral API configured and started as the CLI starts it (tick, demo)
    url = database_url()
    os.environ["SUPABASE_DB_URL"] = url
    out: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "load_start": os.getloadavg(), "python": platform.python_version()}}
    t_all = time.perf_counter()

    from prefect import flow

    from huntflow.flows.tick import no_heartbeats

    @flow(name="hunt-tick")
    def bench() -> None:
        sections = [("rows", lambda: rows_per_second(url)), ("steady", lambda: steady(url, args.ticks)),
                    ("history", lambda: history([int(n) for n in args.history.split(",")], max(3, args.ticks // 2),
                                                 args.history_optimizer)),
                    ("campaigns", lambda: many_campaigns(args.campaigns, args.campaign_optimizer)),
                    ("cgl", lambda: cgl_overhead(1 if args.quick else args.cgl_reps, args.cgl_in_flight, cores))]
        for name, run in sections:
            if name in skip:
                continue
            log(name)
            got = run()
            log(json.dumps(got))
            out.update(got)

    with no_heartbeats():
        bench()
    if "demo" not in skip:
        log("demo")
        out.update(demo_wall(args.demo_reps, args.demo_baseline))
    out["machine"]["load_end"] = os.getloadavg()
    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    from huntflow.store.connection import stop_embedded

    stop_embedded()
    print(json.dumps(out))


# --- pieces ---------------------------------------------------------------------------------

def _tick_without_prefect(cid: uuid.UUID) -> float:
    from huntflow.store import campaigns
    from huntflow.store.connection import session
    from huntflow.store.states import Stage
    from huntflow.tasks import dispatch, evolve, learn, parse, review
    from huntflow.tasks._stage import TickContext, run_stage

    t = time.perf_counter()
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
    with session() as conn:
        campaigns.claim_cohort(conn, ctx.owner, 1000, 900, only=[cid])
    for stage, logic in [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
                         (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]:
        run_stage(stage, ctx, cid, logic)
    with session() as conn:
        campaigns.release_lease(conn, cid, ctx.owner)
    return time.perf_counter() - t


def _api_pid() -> int | None:
    """The ephemeral Prefect API this process started (a child running uvicorn; Linux /proc)."""
    try:
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == os.getpid() and b"uvicorn" in Path(f"/proc/{d}/cmdline").read_bytes():
                    return int(d)
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        pass
    return None


def _cpu(api: int | None) -> tuple[float, float]:
    """CPU seconds used so far by this process (all its threads) and by the API server."""
    t = os.times()
    used = 0.0
    if api is not None:
        try:
            f = Path(f"/proc/{api}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return t.user + t.system, used


def _cpu_per_tick(tick, ticks: int, api: int | None) -> dict:
    """CPU seconds per tick of ``tick()`` run ``ticks`` times, then 1.5 s for the API to write
    what they sent (it ingests events in batches, off the tick's path): less sensitive to the
    machine's load than wall time."""
    own0, api0 = _cpu(api)
    for _ in range(ticks):
        tick()
    time.sleep(1.5)
    own1, api1 = _cpu(api)
    return {"process": (own1 - own0) / ticks, "api": (api1 - api0) / ticks}


def _settle_heap() -> None:
    try:
        from huntflow.flows import heap
    except ImportError:  # a baseline checkout from before it
        return
    heap.settle()


IN_FLIGHT = 4
"""Generations per tick of the amortised per-evaluation variants."""


def base_name() -> str:
    return demo_spec("bench-name").optimizer.name


def steady(url: str, ticks: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    a = add_campaign(demo_spec("bench-steady"))
    b = add_campaign(demo_spec("bench-steady-raw"))
    def variant(slug: str, name: str, in_flight: int = 1) -> uuid.UUID:
        base = demo_spec(slug)
        opt = base.optimizer.model_copy(update={"name": name, "options": {
            **base.optimizer.options, **({"max_in_flight": in_flight} if in_flight > 1 else {})}})
        return add_campaign(base.model_copy(update={"optimizer": opt}))

    r = variant("bench-steady-random", "random")  # like for like with Optuna's random sampler
    k = IN_FLIGHT  # several generations per tick (optimizer.options.max_in_flight inline)
    a4, r4 = variant("bench-steady-ngopt-k", base_name(), k), variant("bench-steady-random-k", "random", k)
    for _ in range(3):  # warm: compile, first asks, pool and caches filled
        tick_seconds([a])
        _tick_without_prefect(b)
        tick_seconds([r])
        tick_seconds([a4])
        tick_seconds([r4])
    _settle_heap()  # as the loop does after its first tick (huntflow.flows.heap)
    storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://", 1))

    def rosen(trial) -> float:
        x = [trial.suggest_float(f"x{i}", -2, 2) for i in range(4)]
        return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))

    studies = {
        "random": optuna.create_study(storage=storage, study_name=f"random-{uuid.uuid4()}",
                                      sampler=optuna.samplers.RandomSampler(seed=7)),
        "tpe": optuna.create_study(storage=storage, study_name=f"tpe-{uuid.uuid4()}",
                                   sampler=optuna.samplers.TPESampler(seed=7)),
    }
    with_prefect, raw, rand, ngopt_k, rand_k, opt = [], [], [], [], [], {"random": [], "tpe": []}
    for _ in range(ticks):  # interleaved: every contender sees the same background load
        with_prefect.append(tick_seconds([a]))
        raw.append(_tick_without_prefect(b))
        rand.append(tick_seconds([r]))
        ngopt_k.append(tick_seconds([a4]))
        rand_k.append(tick_seconds([r4]))
        for name, study in studies.items():
            t = time.perf_counter()
            study.optimize(rosen, n_trials=32)
            opt[name].append((time.perf_counter() - t) / 32)
    tick = statistics.median(with_prefect)
    api = _api_pid()
    cpu: dict[str, list[dict]] = {"with_prefect": [], "no_prefect": []}
    for _ in range(2):  # CPU per tick, blocks interleaved
        cpu["with_prefect"].append(_cpu_per_tick(lambda: tick_seconds([a]), 6, api))
        cpu["no_prefect"].append(_cpu_per_tick(lambda: _tick_without_prefect(b), 6, api))
    cpu_tick = {k: {part: round(statistics.mean(x[part] for x in v), 4) for part in ("process", "api")}
                for k, v in cpu.items()}
    return {
        "steady_tick_seconds": med(with_prefect),
        "steady_tick_range": [round(min(with_prefect), 3), round(max(with_prefect), 3)],
        "no_prefect_tick_seconds": med(raw),
        # CPU seconds per tick (this process's threads; the ephemeral API's, None when not found)
        "steady_cpu_seconds": cpu_tick if api is not None else {k: v["process"] for k, v in cpu_tick.items()},
        "prefect_cpu_seconds_per_tick": round(sum(cpu_tick["with_prefect"].values()) - sum(cpu_tick["no_prefect"].values()), 4),
        "stage_seconds": stage_seconds(a, ticks),
        "per_evaluation_ms": round(tick / 32 * 1000, 2),
        "optuna_random_ms": round(statistics.median(opt["random"]) * 1000, 2),
        "optuna_tpe_ms": round(statistics.median(opt["tpe"]) * 1000, 2),
        "per_evaluation_vs_optuna_random": round(tick / 32 / statistics.median(opt["random"]), 3),
        # huntflow's own random search against Optuna's random sampler (the line above is the
        # demo's NGOpt against it, the number)
        "random_tick_seconds": med(rand),
        "per_evaluation_ms_random": round(statistics.median(rand) / 32 * 1000, 2),
        "per_evaluation_random_vs_optuna_random": round(statistics.median(rand) / 32 / statistics.median(opt["random"]), 3),
        # max_in_flight k inline: one tick runs k generations of 32 (asked before any is told)
        "in_flight": k,
        "tick_seconds_in_flight": {"ngopt": med(ngopt_k), "random": med(rand_k)},
        "per_evaluation_ms_in_flight": {"ngopt": round(statistics.median(ngopt_k) / (32 * k) * 1000, 2),
                                        "random": round(statistics.median(rand_k) / (32 * k) * 1000, 2)},
        "per_evaluation_in_flight_vs_optuna_random": {
            "ngopt": round(statistics.median(ngopt_k) / (32 * k) / statistics.median(opt["random"]), 3),
            "random": round(statistics.median(rand_k) / (32 * k) / statistics.median(opt["random"]), 3)},
        "journal": _journal_stats(a),
    }


def _journal_stats(cid: uuid.UUID) -> dict:
    """How evolve stored the optimizer in the measured ticks: full checkpoints vs journal commits."""
    from huntflow.store.connection import session

    with session() as conn:
        rows = conn.execute(
            "select summary from hunt.stage_runs where campaign_id = %s and stage = 'evolve' and status = 'succeeded'",
            (cid,)).fetchall()
    sums = [r["summary"] or {} for r in rows]
    full = [s for s in sums if s.get("checkpoint_bytes")]
    dumps = [float((s.get("seconds") or {}).get("dump", 0)) for s in full]
    return {"commits": len(sums), "full_checkpoints": len(full),
            "dump_seconds_when_full": med(dumps),
            "checkpoint_bytes": max((s["checkpoint_bytes"] for s in full), default=None)}


def rows_per_second(url: str) -> dict:
    from psycopg.types.json import Jsonb

    from huntflow.store import generations
    from huntflow.store.connection import session

    cid = add_campaign(demo_spec("bench-rows"))
    copy_rates, many_rates, copy_cpu = [], [], []
    with session() as conn:
        for rep in range(3):
            gid = conn.execute(
                "insert into hunt.generations (campaign_id, generation_index, ask_id, fidelity, fidelity_name, seed)"
                " values (%s, %s, %s, 0, 'exact', 1) returning generation_id", (cid, rep * 2, rep * 2),
            ).fetchone()["generation_id"]
            n = 50_000
            rows = [(gid, cid, i, Jsonb({f"x{j}": random.random() for j in range(4)}), f"{i:016x}", 0,
                     Jsonb({"source": "bench"})) for i in range(n)]
            t, c = time.perf_counter(), time.process_time()
            with conn.transaction():
                generations.copy_evaluations(conn, rows)
            copy_rates.append(n / (time.perf_counter() - t))
            copy_cpu.append(n / max(1e-9, time.process_time() - c))
            gid2 = conn.execute(
                "insert into hunt.generations (campaign_id, generation_index, ask_id, fidelity, fidelity_name, seed)"
                " values (%s, %s, %s, 0, 'exact', 1) returning generation_id", (cid, rep * 2 + 1, rep * 2 + 1),
            ).fetchone()["generation_id"]
            m = 5_000
            t = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "insert into hunt.evaluations"
                    " (generation_id, campaign_id, candidate_index, params, param_hash, fidelity, decision)"
                    " values (%s, %s, %s, %s, %s, %s, %s)", [(gid2, *r[1:]) for r in rows[:m]])
            many_rates.append(m / (time.perf_counter() - t))
        conn.execute("delete from hunt.campaigns where campaign_id = %s", (cid,))
    return {"evaluation_rows_per_second": round(statistics.median(copy_rates)),
            "executemany_rows_per_second": round(statistics.median(many_rates)),
            # rows per CPU second of this (client) process: less sensitive to a shared machine
            "copy_rows_per_client_cpu_second": round(statistics.median(copy_cpu))}


def many_campaigns(n: int, optimizer: str) -> dict:
    from huntflow.flows.tick import tick_concurrency
    from huntflow.store import settings
    from huntflow.store.connection import session

    with session() as conn:
        settings.set_setting(conn, "max_concurrent_campaigns", 10_000)
        conn.execute("update hunt.campaigns set status = 'paused' where status = 'active'")
    base = demo_spec("bench-many")
    opt = base.optimizer.model_copy(update={"name": optimizer})
    cids = [add_campaign(demo_spec(f"bench-many-{i}", seed=100 + i, optimizer=opt)) for i in range(n)]
    from huntflow.flows import artifacts

    walls, flushes = [], []
    for _ in range(3):  # first: every campaign's first ask (optimizer start); then full ticks
        walls.append(tick_seconds(None))
        t = time.perf_counter()
        artifacts.flush(1800)  # what a hunt-tick flow run waits for at its end
        flushes.append(time.perf_counter() - t)
    with session() as conn:
        advanced = conn.execute(
            "select count(distinct campaign_id) as n from hunt.generation_summaries where campaign_id = any(%s)",
            (cids,)).fetchone()["n"]
        conn.execute("update hunt.campaigns set status = 'paused' where campaign_id = any(%s)", (cids,))
    runs = [w + f for w, f in zip(walls, flushes)]
    return {"tick_seconds_100_campaigns": round(statistics.median(walls[1:]), 2),
            "hunt_tick_run_seconds_100_campaigns": round(statistics.median(runs[1:]), 2),
            "many_campaigns": {"campaigns": n, "first_tick_seconds": round(walls[0], 2),
                               "ticks_seconds": [round(w, 2) for w in walls[1:]],
                               "artifacts_flush_seconds": [round(f, 2) for f in flushes],
                               "campaigns_told": advanced, "tick_concurrency": tick_concurrency(),
                               "optimizer": optimizer}}


def _demo_once(tag: str, baseline: str | None = None) -> dict:
    """One ``huntflow demo`` in a fresh process with fresh dirs; ``baseline``: another checkout's
    ``huntflow`` package (on ``PYTHONPATH``) run with this environment. Returns its wall, when
    its first line appeared, its exit code and its last lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("SUPABASE_DB_URL", "PREFECT_API_URL")}
    run = DATA / f"demo-{tag}"
    env["HUNTFLOW_DATA_DIR"] = str(run / "data")
    env["PREFECT_HOME"] = str(run / "prefect")
    if baseline:
        env["PYTHONPATH"] = baseline
    lines: list[str] = []
    first = None
    t = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "huntflow"), "demo"], env=env,
                            cwd=baseline or ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if first is None and line.strip():
            first = time.perf_counter() - t
        lines.append(line.rstrip())
    code = proc.wait(timeout=1800)
    wall = time.perf_counter() - t
    return {"wall": round(wall, 1), "first_line": round(first or 0.0, 1), "exit_code": code, "tail": lines[-3:],
            "load": [round(x, 2) for x in os.getloadavg()]}


def demo_wall(reps: int = 1, baseline: str | None = None) -> dict:
    """``huntflow demo`` as a user runs it, ``reps`` times; with ``baseline`` (another checkout)
    alternating with it, baseline first (the interleaved before/after of RESULTS.md)."""
    runs, base = [], []
    for i in range(reps):
        if baseline:
            base.append(_demo_once(f"baseline-{i}", baseline))
            log(f"demo baseline {base[-1]}")
        runs.append(_demo_once(f"{i}"))
        log(f"demo {runs[-1]}")
    import prefect  # whether the environment's bytecode is compiled (uv's compile-bytecode)

    compiled = any((Path(prefect.__file__).parent / "__pycache__").glob("__init__.*.pyc"))
    out = {"demo_wall_seconds": med([r["wall"] for r in runs]), "demo_first_line_seconds":
           med([r["first_line"] for r in runs]), "demo_exit_code": max(r["exit_code"] for r in runs),
           "demo_bytecode_compiled": compiled, "demo_tail": runs[-1]["tail"], "demo_runs": runs}
    if baseline:
        out.update(demo_baseline_wall_seconds=med([r["wall"] for r in base]),
                   demo_baseline_first_line_seconds=med([r["first_line"] for r in base]), demo_baseline_runs=base)
    return out


if __name__ == "__main__":
    main()
