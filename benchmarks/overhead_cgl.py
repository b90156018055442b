"""The CGL section of benchmarks/orchestration_overhead.py: the CGL example run to its end through
the loop of ``tick --until-done`` (and synchronously), each generation re-run alone for the
isolated compute, and ``overhead_fraction`` over the warm window (the definitions are in
orchestration_overhead.py's docstring)."""

from __future__ import annotations

import os
import time

from overhead_common import DATA, ROOT, add_campaign, log, med, stage_seconds


def _isolated(gid) -> tuple[float, float]:
    """A generation's batch re-run alone, as ``execute_generation`` runs it but with no tick, no
    executor and no database around it: (seconds without compilation, compile seconds)."""
    from huntflow.engine.space import SearchSpace
    from huntflow.store import campaigns, generations
    from huntflow.store.connection import session
    from huntflow.tasks import execute

    with session() as conn:
        gen = generations.get(conn, gid)
        spec = campaigns.spec_of(campaigns.get_campaign(conn, gen["campaign_id"]))
        rows = generations.evaluations(conn, gid)
    model, settings, indices = execute.batch_inputs(spec, gen, rows)
    params = SearchSpace.of(spec).model_matrix([r["params"] for r in rows])
    t = time.perf_counter()
    result, _ = execute.run_batch(
        generation_id=str(gid), model=model, param_names=spec.param_names, params=params, seed=int(gen["seed"]),
        dtype=spec.dtype, fidelity={"index": gen["fidelity"], "name": spec.fidelities[gen["fidelity"]].name,
                                    "settings": settings},
        artifact_path=DATA / "isolated" / f"{gid}.h5", space=spec.model_dump(mode="json")["space"],
        about={"campaign": spec.slug, "generation_index": gen["generation_index"], "kind": gen["kind"], "attempt": 0},
        candidate_indices=indices)
    return time.perf_counter() - t - result.compile_seconds, result.compile_seconds


def _cgl_run(spec, slug: str, overlap: bool) -> dict:
    """The CGL example to its end: ``overlap`` through the loop ``tick --until-done`` runs (one
    lease owner, the executor), else one-shot ticks back to back (each runs its generations
    synchronously). Returns the loop's wall, the per-tick numbers of the old definition and the
    campaign's generations with their timings (database clock)."""
    from huntflow.flows.cli.common import err
    from huntflow.flows.cli.run import _tick_loop, owned_loop
    from huntflow.flows.tick import run_tick
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    cid = add_campaign(spec.model_copy(update={"slug": slug}))
    walls, computes = [], []
    t0 = time.perf_counter()
    if overlap:
        with owned_loop() as (beat, executor):
            _tick_loop(slug, True, 10_000, False, 0.5, lambda only: run_tick(only, beat=beat), err, executor)
    else:
        for i in range(10_000):
            with session() as conn:
                if campaigns.get_campaign(conn, cid)["status"] != "active":
                    break
            t = time.perf_counter()
            res = run_tick([str(cid)])["campaigns"].get(str(cid), {})
            wall = time.perf_counter() - t
            launched = (res.get("dispatch") or {}).get("launched") or []
            compute = sum(float((g.get("result") or {}).get("wall_seconds") or 0) for g in launched)
            compile_s = sum(float((g.get("result") or {}).get("compile_seconds") or 0) for g in launched)
            if i >= 3 and launched:  # warm ticks: both rungs compiled (the old definition)
                walls.append(wall)
                computes.append(compute - compile_s)
    wall = time.perf_counter() - t0
    with session() as conn:
        row = campaigns.get_campaign(conn, cid)
        gens = conn.execute(
            "select generation_id, generation_index, kind, fidelity, started_at, finished_at, result_document"
            " from hunt.generations where campaign_id = %s and kind <> 'verification' order by generation_index",
            (cid,)).fetchall()
        ended = conn.execute("select max(finished_at) as t from hunt.stage_runs where campaign_id = %s",
                             (cid,)).fetchone()["t"]
        verifs = conn.execute(
            "select generation_id, started_at, finished_at, result_document from hunt.generations"
            " where campaign_id = %s and kind = 'verification' and started_at is not null order by started_at",
            (cid,)).fetchall()
    return {"cid": cid, "wall": wall, "walls": walls, "computes": computes, "gens": gens, "ended": ended,
            "verifs": verifs,
            "status": row["status"], "best": row["best_objective"]}


def _cgl_numbers(run: dict, isolated: dict, warm_from: int = 3) -> dict:
    """overhead_fraction = (loop wall - isolated compute) / isolated compute over the warm
    window (from the start of generation ``warm_from`` to the campaign's last stage), compile
    seconds inside it taken out of the wall; ``*_in_loop``: the same with the generations' own
    evaluation seconds as measured inside the loop (flattering when they overlap the tick);
    ``executor_busy_fraction``: the window's share with a generation running (database clock)."""
    warm = [g for g in run["gens"] if g["generation_index"] >= warm_from]
    window = (run["ended"] - warm[0]["started_at"]).total_seconds()
    doc = [g["result_document"] or {} for g in warm]
    compile_s = sum(float(d.get("compile_seconds") or 0) for d in doc)
    in_loop = sum(float(d.get("wall_seconds") or 0) for d in doc)  # the evaluation alone (no compile, no artifact)
    busy = sum((g["finished_at"] - g["started_at"]).total_seconds() for g in warm)
    gaps = [max(0.0, (b["started_at"] - a["finished_at"]).total_seconds()) for a, b in zip(warm, warm[1:])]
    iso = sum(isolated[g["generation_id"]][0] for g in warm)
    all_iso = sum(isolated[g["generation_id"]][0] + isolated[g["generation_id"]][1] for g in run["gens"])
    all_compile = sum(float((g["result_document"] or {}).get("compile_seconds") or 0) for g in run["gens"])
    science = sum(isolated[g["generation_id"]][0] for g in run["gens"]) + all_compile
    out = {
        "overhead_fraction": round((window - compile_s - iso) / iso, 3),
        "overhead_fraction_in_loop": round((window - compile_s - in_loop) / in_loop, 3),
        "overhead_fraction_whole_run": round((run["wall"] - science) / science, 3),
        "duty_cycle": round(iso / (window - compile_s), 3),
        "executor_busy_fraction": round(busy / window, 3), "median_gap_seconds": med(gaps),
        "window_seconds": round(window, 2), "isolated_compute_seconds": round(iso, 3),
        "in_loop_compute_seconds": round(in_loop, 3), "compile_seconds_in_window": round(compile_s, 3),
        "whole_run_seconds": round(run["wall"], 2), "whole_run_isolated_seconds": round(all_iso, 3),
        "generations": len(run["gens"]), "best_objective": run["best"], "status": run["status"],
    }
    # the window's split: no batch of any kind running (verification included), verification batches
    start = warm[0]["started_at"]
    spans = sorted((max(a, start), b) for a, b in
                   [(g["started_at"], g["finished_at"]) for g in warm]
                   + [(v["started_at"], v["finished_at"]) for v in run.get("verifs", []) if v["finished_at"]]
                   if b > start)
    idle, cur = 0.0, start
    for a, b in spans:
        idle += max(0.0, (a - cur).total_seconds())
        cur = max(cur, b)
    idle += max(0.0, (run["ended"] - cur).total_seconds())
    ver = [v for v in run.get("verifs", []) if v["finished_at"] and v["started_at"] >= start]
    out["device_idle_seconds"] = round(idle, 3)  # no batch of any kind running in the window
    if all(v["generation_id"] in isolated for v in ver):  # review's re-checks counted as the compute they are
        both = iso + sum(isolated[v["generation_id"]][0] for v in ver)
        out["overhead_fraction_verification_as_compute"] = round((window - compile_s - both) / both, 3)
    out["verification_batches_in_window"] = len(ver)
    out["verification_seconds_in_window"] = round(sum(float((v["result_document"] or {}).get("wall_seconds") or 0)
                                                      for v in ver), 3)
    if run["walls"]:
        total = sum(run["computes"])
        out["overhead_fraction_per_tick"] = round((sum(run["walls"]) - total) / total, 3) if total else None
        out["tick_seconds"] = med(run["walls"])
    return out


def cgl_overhead(reps: int, in_flight: str | None = None, cores=None) -> dict:
    """The CGL example run to its end with overlap (the loop and its executor, at the example's
    ``max_in_flight`` and at any other listed in ``in_flight``, e.g. ``"2,3"``) and, interleaved,
    synchronously (one-shot ticks, ``max_in_flight`` 1: the path before overlap); after each run
    its generations re-run alone (isolated compute). With ``cores`` (:class:`benchmarks.cores.Cores`,
    started) the example's overlap run is repeated with XLA's compute on a core of its own and the
    orchestration on the other (``overlap_m<k>_dedicated``; its isolated re-run under the same
    pinning): ``overhead_fraction_dedicated_cores``, the stand-in for a GPU host."""
    from huntflow.engine.spec import load_spec
    from huntflow.store.connection import session

    with session() as conn:
        conn.execute("update hunt.campaigns set status = 'paused' where status = 'active'")
    spec = load_spec(os.environ.get("HUNTFLOW_BENCH_CGL_SPEC") or ROOT / "examples" / "cgl_log_prime.yaml")
    options = dict(spec.optimizer.options)
    m = int(options.get("max_in_flight", 1))
    ks = [int(k) for k in (in_flight or str(m)).split(",")]

    def with_in_flight(k: int):
        return spec.model_copy(update={"optimizer": spec.optimizer.model_copy(
            update={"options": {**options, "max_in_flight": k}})})

    kinds = ["synchronous", *[f"overlap_m{k}" for k in ks]]
    if cores is not None:
        kinds.append(f"overlap_m{m}_dedicated")
    runs: dict[str, list[dict]] = {name: [] for name in kinds}
    isolated: dict = {}
    for rep in range(reps):
        for name in kinds if rep % 2 == 0 else kinds[::-1]:
            log(f"cgl {name} {rep}")
            k = 1 if name == "synchronous" else int(name.split("_")[1][1:])
            dedicated = name.endswith("_dedicated")
            if cores is not None:
                cores.dedicated() if dedicated else cores.shared()
            try:
                runs[name].append(_cgl_run(with_in_flight(k), f"bench-cgl-{name.replace('_', '-')}-{rep}",
                                           overlap=name != "synchronous"))
                # the same generations re-run alone right after (interleaved: the same machine's load;
                # the same pinning)
                if dedicated:
                    cores.dedicated()  # threads the run started (a new connection's backend) follow too
                isolated.update({g["generation_id"]: _isolated(g["generation_id"])
                                 for g in [*runs[name][-1]["gens"], *runs[name][-1]["verifs"]]})
            finally:
                if cores is not None:
                    cores.shared()
    got = {name: [_cgl_numbers(r, isolated) for r in rs] for name, rs in runs.items()}
    head = f"overlap_m{m}" if f"overlap_m{m}" in got else kinds[1]
    out = {"overhead_fraction": med([r["overhead_fraction"] for r in got[head]]),
           "duty_cycle": med([r["duty_cycle"] for r in got[head]]),
           "cgl": {"max_in_flight": m, "headline": head, "load": os.getloadavg(), **got,
                   "stage_seconds": stage_seconds(runs[head][0]["cid"], got[head][0]["generations"])}}
    if cores is not None:
        ded = got[f"overlap_m{m}_dedicated"]
        out["overhead_fraction_dedicated_cores"] = med([r["overhead_fraction"] for r in ded])
        out["duty_cycle_dedicated_cores"] = med([r["duty_cycle"] for r in ded])
        out["cgl"]["cores"] = cores.describe()
    return out
