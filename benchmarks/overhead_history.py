"""The orchestration-overhead benchmark's history section: tick seconds of one campaign at 1k to 1M
evaluation rows, seeded inside the database, with and without the reads the loop of
``tick --until-done`` makes after each tick. See orchestration_overhead.py for the whole run."""

from __future__ import annotations

import time
import uuid

from overhead_common import add_campaign, demo_spec, log, med, stage_seconds, tick_seconds


def _seed_history(cid: uuid.UUID, n_rows: int, pop: int = 32) -> None:
    """``n_rows`` evaluation rows as told generations before the campaign's first ask (negative
    ask ids), with the summary and trajectory rows the tick would have written. Generated inside
    the database (``insert ... select`` over ``generate_series``, seeded ``random()``), so a
    million rows take a minute, not the client's COPY of a million JSON documents."""
    from huntflow.store.connection import session

    n_gens = max(1, n_rows // pop)
    x = [f"x{j}" for j in range(4)]
    rosen = " + ".join(f"100 * power({x[j + 1]} - {x[j]} * {x[j]}, 2) + power(1 - {x[j]}, 2)" for j in range(3))
    with session() as conn, conn.transaction():
        conn.execute("select setseed(%s)", (1.0 / (1 + n_rows % 997),))
        conn.execute(
            "insert into hunt.generations (generation_id, campaign_id, generation_index, ask_id, kind, fidelity,"
            " fidelity_name, status, seed, attempt)"
            " select gen_random_uuid(), %(cid)s, k, k - %(n)s, 'search', 0, 'exact', 'told', k, 1"
            " from generate_series(0, %(n)s - 1) k", {"cid": cid, "n": n_gens})
        conn.execute(
            "with pts as materialized (select g.generation_id, g.generation_index as k, i, "
            + ", ".join(f"random() * 4 - 2 as {v}" for v in x)
            + " from hunt.generations g cross join generate_series(0, %(pop)s - 1) i where g.campaign_id = %(cid)s)"
            " insert into hunt.evaluations (generation_id, campaign_id, candidate_index, params, param_hash, fidelity,"
            " status, metrics, objective, feasible, decision, provenance, wall_seconds)"
            " select generation_id, %(cid)s, i, jsonb_build_object(" + ", ".join(f"'{v}', {v}" for v in x) + "),"
            " k || '-' || i, 0, 'succeeded', jsonb_build_object('f', f), f, true, '{\"source\": \"seed\"}'::jsonb,"
            " jsonb_build_object('seed', k), 0.001"
            f" from pts, lateral (select {rosen} + 1.0 as f) r",
            {"cid": cid, "pop": pop})
        conn.execute(
            "insert into hunt.generation_summaries (generation_id, campaign_id, ask_id, fidelity, evaluations,"
            " used, feasible, best_min, best_max, target_hits)"
            " select g.generation_id, g.campaign_id, g.ask_id, g.fidelity, count(*), count(*), count(*),"
            " min(e.objective), max(e.objective), 0 from hunt.generations g join hunt.evaluations e"
            " using (generation_id) where g.campaign_id = %s group by g.generation_id", (cid,))
        conn.execute(
            "insert into hunt.trajectories (campaign_id, generation_id, generation_index, evaluations_used,"
            " best_objective, improvement, feasible_fraction, mode, reward, details)"
            " select g.campaign_id, g.generation_id, g.generation_index, 32 * (g.generation_index + 1),"
            " min(s.best_min) over (order by g.generation_index), 0, 1, 'explore', 0.1, '{}'::jsonb"
            " from hunt.generations g join hunt.generation_summaries s using (generation_id)"
            " where g.campaign_id = %s", (cid,))
    with session() as conn:
        conn.execute("analyze hunt.evaluations")
        conn.execute("analyze hunt.generations")


def history(sizes: list[int], ticks: int, optimizer: str = "random") -> dict:
    cids = {}
    # one budget for every size (NGOpt picks its algorithm by budget, so sizes must share it);
    # random search by default: at a budget past 1M NGOpt's own ask costs ~10 s a batch
    # whatever the history, which would hide what the history costs the orchestration
    opt = demo_spec("bench-history").optimizer.model_copy(update={"name": optimizer})
    for n in sizes:
        t = time.perf_counter()
        cid = add_campaign(demo_spec(f"bench-history-{n}", budget=max(sizes) + 100_000, optimizer=opt))
        _seed_history(cid, n)
        cids[n] = cid
        log(f"seeded {n} rows in {time.perf_counter() - t:.1f} s")
    warm: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:  # warm: the fold is built (one full replay) and the dashboard rebuilt from the whole history
        for _ in range(2):
            warm[n].append(round(tick_seconds([cids[n]]), 2))
    times: dict[int, list[float]] = {n: [] for n in sizes}
    reads: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(ticks):  # round-robin: every size sees the same load
        for n in sizes:
            times[n].append(tick_seconds([cids[n]]))
            reads[n].append(_loop_reads(cids[n], f"bench-history-{n}"))
    flushed = _flush_artifacts(cids)
    by_size = {str(n): med(v) for n, v in times.items()}
    lo = min(v for v in by_size.values() if v)
    loop = {str(n): med([a + b for a, b in zip(times[n], reads[n])]) for n in sizes}
    return {"tick_seconds_by_history": by_size,
            "history_growth_ratio": round(max(by_size.values()) / lo, 3),
            # what the loop of tick --until-done adds after each tick (its progress bar and its
            # "did work move" look), and the tick with it
            "loop_reads_seconds_by_history": {str(n): med(v) for n, v in reads.items()},
            "loop_tick_seconds_by_history": loop,
            "loop_history_growth_ratio": round(max(loop.values()) / min(loop.values()), 3),
            "history_stage_seconds": {str(n): stage_seconds(cids[n], ticks) for n in sizes},
            "history_warm_ticks_seconds": {str(n): v for n, v in warm.items()},
            # what a hunt-tick flow run of these campaigns waits for at its end, then once they
            # are paused (a campaign no longer active gets its dashboard rebuilt from its whole
            # history: at 1M rows that is the long one)
            "history_artifacts_flush_seconds": flushed}


def _flush_artifacts(cids: dict[int, uuid.UUID]) -> dict:
    """Wait for the artifacts the section's ticks queued (as a hunt-tick flow run does at its
    end), then pause the campaigns and publish once more (what the UI gets for a paused or
    finished campaign), so none of it lands in a later section's numbers."""
    from huntflow.flows import artifacts
    from huntflow.store.connection import session

    t = time.perf_counter()
    artifacts.flush(1800)
    active = time.perf_counter() - t
    with session() as conn:
        conn.execute("update hunt.campaigns set status = 'paused' where campaign_id = any(%s)", (list(cids.values()),))
    paused = {}
    for n, cid in cids.items():
        t = time.perf_counter()
        artifacts.publish_campaign(cid)
        paused[str(n)] = round(time.perf_counter() - t, 2)
    return {"active": round(active, 2), "paused_by_history": paused}


def _loop_reads(cid: uuid.UUID, slug: str) -> float:
    """The reads the loop of ``tick --until-done`` makes after each tick (``_tick_loop``); a
    checkout from before ``waits.loop_rows`` read the progress view instead."""
    from huntflow.store import waits
    from huntflow.store.connection import session

    t = time.perf_counter()
    if hasattr(waits, "loop_rows"):
        with session() as conn:
            waits.loop_rows(conn, [cid])
    else:
        from huntflow.flows.cli.common import progress_rows

        progress_rows(slug)
    with session() as conn:
        waits.progress_key(conn, [cid])
    return time.perf_counter() - t
