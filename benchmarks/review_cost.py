"""What review's verification costs, against the search it verifies and the check it replaced.

Runs the CGL example (``examples/cgl_log_prime.yaml``) and the demo
(``examples/rosenbrock_4d.yaml``) to completion inline on an embedded Postgres in a temporary
data dir, then reads from the rows:
  * ``evaluation_share``: verification evaluations (padding included) / search evaluations
    (``verification_by_purpose``: contenders for the best vs promoted candidates' checks);
  * ``cost_share``: the same weighted by each perturbation's declared cost (half_dt: ×2) and by
    the rung's cost relative to the first (steps × grid², a model-agnostic proxy for CGL);
  * ``promoted_checked_by_ladder``: promoted candidates whose claim was compared with their
    promotion's own finer-rung result instead of being re-run (free); ``padding_evaluations``:
    rows that only fill a batch to its fixed shape;
  * ``wall_share``: compiled-call seconds of the verification batches / of the search batches
    (``result_document.wall_seconds``; compilation excluded on both sides).
Baseline, in the same run: the check it replaced re-ran each search generation's best candidate
tiled to the whole population; for up to ``--sample`` search generations that call is timed
right after re-timing the generation itself (interleaved), giving ``old_wall_share``.

    .venv/bin/python benchmarks/review_cost.py [--demo-budget N] [--cgl-budget N] [--sample K]
        [--review '{"verify_promoted": false}'] [--only cgl|demo] [--report-dir DIR]

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rung_cost(settings: dict) -> float:
    return float(settings.get("steps", 1)) * float(settings.get("grid", 1)) ** 2


def _campaign(conn, path: Path, budget: int | None, sample: int, overrides: dict | None = None,
              report_dir: Path | None = None) -> dict:
    import yaml

    from huntflow.engine.evaluate import evaluate_population
    from huntflow.engine.spec import parse_spec
    from huntflow.store import campaigns, generations, verifications
    from huntflow.store.states import Stage
    from huntflow.tasks import dispatch, evolve, learn, parse, review
    from huntflow.tasks._stage import TickContext, run_stage

    data = yaml.safe_load(path.read_text())
    data["slug"] = f"{data['slug']}-{uuid.uuid4().hex[:6]}"
    if budget:
        data["budget"] = {**data["budget"], "evaluations": budget}
    if overrides:  # review settings
        data["review"] = {**data.get("review", {}), **overrides}
    spec = parse_spec(data)
    cid = campaigns.insert_campaign(conn, spec)
    t0 = time.perf_counter()
    ticks = 0
    while campaigns.get_campaign(conn, cid)["status"] == "active" and ticks < 500:
        tick = uuid.uuid4()
        ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline")
        for stage, logic in [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
                             (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]:
            run_stage(stage, ctx, cid, logic)
        ticks += 1
    wall = time.perf_counter() - t0
    row = campaigns.get_campaign(conn, cid)
    gens = conn.execute("select * from hunt.generations where campaign_id = %s and status in ('told', 'reviewed')"
                        " order by ask_id", (cid,)).fetchall()
    base = _rung_cost(dict(spec.fidelities[0].settings))
    search = {"n": 0, "cost": 0.0, "wall": 0.0}
    verify_ = {"n": 0, "cost": 0.0, "wall": 0.0}
    purpose = {"contenders": 0, "promoted": 0}  # verification evaluations by what they check
    purpose_cost = {"contenders": 0.0, "promoted": 0.0}
    for g in gens:
        n = len(generations.evaluations(conn, g["generation_id"]))
        doc = g["result_document"] or {}
        check = (g["meta"] or {}).get("verification")
        settings = check["settings"] if check else dict(spec.fidelities[g["fidelity"]].settings)
        side = verify_ if check else search
        side["n"] += n
        side["cost"] += n * _rung_cost(settings) / base  # half_dt's doubled steps are in its settings
        side["wall"] += float(doc.get("wall_seconds") or 0.0)
        if check:
            what = "promoted" if "promotion" in check else "contenders"
            purpose[what] += n
            purpose_cost[what] += n * _rung_cost(settings) / base
    # promoted candidates checked by their promotion's own finer-rung result (nothing re-run)
    ladder_checked = 0
    for g in gens:
        if g["kind"] in verifications.PROMOTED and ((g["meta"] or {}).get("review") or {}).get("ladder"):
            ladder_checked += len(verifications.parents(conn, g))
    padding = conn.execute(
        "select count(*) - count(distinct (e.generation_id, e.decision ->> 'verifies')) as n from hunt.evaluations e"
        " join hunt.generations g using (generation_id) where g.campaign_id = %s and g.kind = 'verification'",
        (cid,)).fetchone()["n"]
    # the old check, timed interleaved with the generation it re-ran
    names = spec.param_names
    old, again = 0.0, 0.0
    searched = [g for g in gens if g["kind"] == "search"][:sample]
    for g in searched:
        rows = generations.evaluations(conn, g["generation_id"])
        x = np.array([[float(r["params"][k]) for k in names] for r in rows])
        settings = dict(spec.fidelities[g["fidelity"]].settings)
        kwargs = dict(seed=int(g["seed"]), fixed=spec.model.fixed, fidelity=settings, dtype=spec.dtype)
        again += evaluate_population(spec.model.name, names, x, **kwargs).wall_seconds
        tiled = np.repeat(x[:1], len(x), axis=0)
        old += evaluate_population(spec.model.name, names, tiled, candidate_indices=np.zeros(len(x), int),
                                   **kwargs).wall_seconds
    report = None
    if report_dir is not None:  # the campaign's report (no plots), to see its findings section
        from huntflow.tasks.report import write_report

        out = write_report(conn, cid, Path(report_dir) / path.stem, plots=False)
        report = {"dir": str(Path(report_dir) / path.stem), "findings_total": out["findings"]["total"]}
    return {
        "report": report,
        "spec": path.name, "ticks": ticks, "wall_seconds": round(wall, 1), "status": row["status"],
        "completion_reason": row["completion_reason"], "best_objective": row["best_objective"],
        "search_evaluations": search["n"], "verification_evaluations": verify_["n"],
        "evaluation_share": round(verify_["n"] / max(1, search["n"]), 4),
        "cost_share": round(verify_["cost"] / max(1e-12, search["cost"]), 4),
        "wall_share": round(verify_["wall"] / max(1e-12, search["wall"]), 4),
        "old_wall_share": round(old / max(1e-12, again), 4) if searched else None,
        "old_sampled_generations": len(searched),
        "verification_batches": sum(1 for g in gens if (g["meta"] or {}).get("verification")),
        "verification_by_purpose": purpose,
        "padding_evaluations": int(padding),
        "promoted_checked_by_ladder": ladder_checked,
        "cost_share_by_purpose": {k: round(v / max(1e-12, search["cost"]), 4) for k, v in purpose_cost.items()},
        "findings": [dict(r) for r in conn.execute(
            "select severity, kind, count(*) as n from hunt.findings where campaign_id = %s group by 1, 2"
            " order by 1, 2", (cid,)).fetchall()],
        "share_rows": verifications.share(conn, cid),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-budget", type=int, default=None, help="override the demo's budget (default: its own)")
    ap.add_argument("--cgl-budget", type=int, default=None, help="override the CGL example's budget")
    ap.add_argument("--sample", type=int, default=4, help="search generations timed with the old check")
    ap.add_argument("--review", type=json.loads, default=None, help="review settings to override (JSON)")
    ap.add_argument("--only", choices=["cgl", "demo"], default=None, help="run one of the two campaigns")
    ap.add_argument("--report-dir", type=Path, default=None, help="write each campaign's report (no plots) here")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="huntflow-review-cost-") as tmp:
        os.environ["HUNTFLOW_DATA_DIR"] = tmp
        import pgserver

        server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        os.environ["SUPABASE_DB_URL"] = server.get_uri()
        try:
            from prefect.testing.utilities import prefect_test_harness

            from huntflow.store.connection import connect

            with prefect_test_harness(server_startup_timeout=300):
                conn = connect(server.get_uri())
                try:
                    runs = []
                    if args.only in (None, "cgl"):
                        runs.append(_campaign(conn, ROOT / "examples/cgl_log_prime.yaml", args.cgl_budget, args.sample,
                                              args.review, args.report_dir))
                    if args.only in (None, "demo"):
                        runs.append(_campaign(conn, ROOT / "examples/rosenbrock_4d.yaml", args.demo_budget, args.sample,
                                              args.review, args.report_dir))
                finally:
                    conn.close()
        finally:
            server.cleanup()
    import jax

    out = {
        "benchmark": "review_cost",
        "review": args.review,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": jax.default_backend(),
                    "loadavg_start": load0, "loadavg_end": os.getloadavg()},
        "campaigns": runs,
        "max_cost_share": max(r["cost_share"] for r in runs),
        "max_wall_share": max(r["wall_share"] for r in runs),
    }
    for r in runs:
        print(f"{r['spec']}: {r['search_evaluations']} search, {r['verification_evaluations']} verification "
              f"evaluations; cost share {r['cost_share']:.1%}, wall share {r['wall_share']:.1%} "
              f"(old check {r['old_wall_share']})")
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
