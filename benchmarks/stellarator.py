"""ConStellaration P1: a huntflow campaign vs the package's own augmented-Lagrangian + NGOpt runner.

Both sides start from the package's rotating ellipse (A = 4, elongation 3, iota 0.9, NFP 3) with
the same 24 masked coefficients (m, |n| <= 2), search at the same VMEC++ preset with the same
number of worker processes and the same number of forward-model evaluations, and have their
best design certified by ``GeometricalProblem.evaluate`` (high fidelity, the problem's score).

* huntflow: ``huntflow campaign add`` + ``huntflow tick --until-done`` (embedded Postgres, the
  stellarator function model in its process pool), a search rung of ``budget`` evaluations and
  a certification rung (``evaluate: true``) for its top candidate. Its box is the runner's first
  trust region: ``x0 +- bounds_initial * exp(-alpha * max(|m|, |n|))``.
* package: ``constellaration.optimization.augmented_lagrangian_runner.run`` with the settings of
  its optimization_examples/launch_alm_geometric_problem.py, scaled to the budget:
  ``1 + maxit * (budget_initial + 1)`` evaluations (its NGOpt calls plus the evaluation of x0 and
  of every outer iteration's recommendation), ``batch_mode`` for reproducibility. The runner
  returns nothing; its designs are read off the forward-model calls it makes in this process (x0
  and each recommendation), and its best is the best of those, as the runner itself reports.
  Its certification runs in a second process while the huntflow side runs (the machine has 2
  cores: that slows huntflow's side, never the package's).

"Best" on each side: the feasible design with the lowest objective (max elongation), else the
one with the least total violation ``sum max(0, v - 0.01)`` over the normalized violations
(the order huntflow promotes in). The last stdout line is one JSON object.

    uv run --frozen --extra stellarator python benchmarks/stellarator.py --budget 34 --workers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from huntflow.store import campaigns, generations  # imported up front: the run takes long
from huntflow.store.connection import connect

VIOLATION_TOLERANCE = 0.01


def _best(designs: list[dict]) -> dict | None:
    """``designs``: dicts with ``metrics`` (or None for a failed run) -> the best one."""
    ok = [d for d in designs if d.get("metrics")]
    if not ok:
        return None
    feasible = [d for d in ok if d["metrics"]["feasible"] == 1.0]
    if feasible:
        return min(feasible, key=lambda d: d["metrics"]["objective"])
    return min(ok, key=lambda d: sum(max(0.0, v - VIOLATION_TOLERANCE)
                                     for k, v in d["metrics"].items() if k.startswith("violation_")))


def _summary(best: dict | None) -> dict:
    if best is None:
        return {"best_feasible_objective": None, "best_objective": None, "normalized_violation": None, "feasible": None}
    m = best["metrics"]
    return {"best_feasible_objective": m["objective"] if m["feasible"] == 1.0 else None,
            "best_objective": m["objective"], "normalized_violation": m["feasibility"], "feasible": m["feasible"] == 1.0}


def _certify(boundary_json: str, out: multiprocessing.Queue) -> None:
    """``GeometricalProblem.evaluate`` on one boundary (run in its own process)."""
    from constellaration import problems
    from constellaration.geometry import surface_rz_fourier as rz

    t0 = time.perf_counter()
    try:
        r = problems.GeometricalProblem().evaluate(rz.SurfaceRZFourier.model_validate_json(boundary_json))
        out.put({"score": r.score, "objective": r.objective, "feasibility": r.feasibility,
                 "seconds": time.perf_counter() - t0})
    except Exception as e:  # a certification that fails is a result, not a crash of the benchmark
        out.put({"error": f"{type(e).__name__}: {str(e)[:300]}", "seconds": time.perf_counter() - t0})


def package_side(args, problem_metrics) -> dict:
    """The package's runner at the same budget; returns its summary and best boundary."""
    from constellaration import forward_model, initial_guess, problems
    from constellaration.optimization import augmented_lagrangian as al
    from constellaration.optimization import augmented_lagrangian_runner as runner
    from constellaration.optimization import settings as opt
    from constellaration.utils import seed_util

    from huntflow.engine.models.stellarator.evaluate import settings_for

    maxit, b0 = args.maxit, (args.budget - 1) // args.maxit - 1
    settings = opt.OptimizationSettings(
        max_poloidal_mode=args.modes[0], max_toroidal_mode=args.modes[1], infinity_norm_spectrum_scaling=args.alpha,
        optimizer_settings=opt.AugmentedLagrangianMethodSettings(
            maxit=maxit, penalty_parameters_initial=10, bounds_initial=args.half_width,
            oracle_settings=opt.NevergradSettings(num_workers=args.workers, budget_initial=b0, budget_increment=0,
                                                  budget_max=b0, max_time=None, batch_mode=True),
            augmented_lagrangian_settings=al.AugmentedLagrangianSettings(
                constraint_violation_tolerance_reduction_factor=0.8, penalty_parameters_increase_factor=5,
                bounds_reduction_factor=0.9, penalty_parameters_max=1e8, bounds_min=0.05)),
        forward_model_settings=settings_for("p1", args.preset))
    designs: list[dict] = []
    oracle_evals = [0]
    real_forward, real_logging = forward_model.forward_model, runner._logging

    def recording(boundary, *a, **kw):  # the runner's evaluations in this process: x0 and recommendations
        try:
            out = real_forward(boundary, *a, **kw)
        except Exception:
            designs.append({"boundary": boundary, "metrics": None})
            raise
        designs.append({"boundary": boundary, "metrics": problem_metrics(out[0])})
        return out

    def logging(k, n, state):
        oracle_evals[0] = n
        real_logging(k, n, state)

    forward_model.forward_model, runner._logging = recording, logging
    seed_util.seed_everything(args.seed)
    boundary = initial_guess.generate_rotating_ellipse(aspect_ratio=4.0, elongation=3.0, rotational_transform=0.9,
                                                       n_field_periods=3)
    t0 = time.perf_counter()
    try:
        runner.run(boundary, settings, problems.GeometricalProblem())
    finally:
        forward_model.forward_model, runner._logging = real_forward, real_logging
    wall = time.perf_counter() - t0
    best = _best(designs)
    return {**_summary(best), "evaluations": oracle_evals[0] + len(designs), "wall_seconds": wall,
            "settings": {"maxit": maxit, "budget_initial": b0, "num_workers": args.workers},
            "boundary_json": None if best is None else best["boundary"].model_dump_json()}


def huntflow_spec(args) -> dict:
    from huntflow.engine.models.stellarator import VIOLATIONS
    from huntflow.engine.models.stellarator.boundary import fixed_and_space

    fixed, space = fixed_and_space("p1", *args.modes, half_width=args.half_width, alpha=args.alpha)
    search = {"name": "search", "settings": {"preset": args.preset}, "budget": args.budget, "promote_top_k": 1}
    score = {"name": "score", "settings": {"preset": "high_fidelity", "evaluate": True}}
    return {
        "slug": "bench-stellarator-p1",
        "model": {"name": "stellarator", "fixed": fixed, "workers": args.workers, "walltime_seconds": 3600},
        "space": space,
        "objectives": [{"metric": "objective", "goal": "minimize"}],
        "constraints": [{"metric": f"violation_{v}", "max": VIOLATION_TOLERANCE} for v in VIOLATIONS["p1"]],
        "fidelities": [search] if args.no_certify else [search, score],
        "budget": {"evaluations": args.budget + (0 if args.no_certify else 1)},
        "optimizer": {"name": "ngopt", "population": args.population},
        "review": {"spot_check_top": 0},  # VMEC++ single-threaded is deterministic; a re-run costs a simulation
        "seed": args.seed,
    }


def huntflow_side(args, data_dir: Path) -> dict:
    spec_path = data_dir / "p1.yaml"
    spec_path.write_text(yaml.safe_dump(huntflow_spec(args), sort_keys=False))
    env = {**os.environ, "HUNTFLOW_DATA_DIR": str(data_dir), "HUNTFLOW_OPERATOR": "inline"}
    env.pop("SUPABASE_DB_URL", None)
    cli = [str(Path(sys.executable).with_name("huntflow"))]
    t0 = time.perf_counter()
    subprocess.run([*cli, "campaign", "add", str(spec_path)], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "tick", "--until-done", "--max-ticks", "200"], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    subprocess.run([*cli, "report", "bench-stellarator-p1", "--out", str(data_dir / "report")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    os.environ["HUNTFLOW_DATA_DIR"] = str(data_dir)
    conn = connect()
    row = campaigns.get_campaign(conn, "bench-stellarator-p1")
    evals = generations.campaign_evaluations(conn, row["campaign_id"])
    search = [{"metrics": e["metrics"] if e["status"] == "succeeded" else None} for e in evals if e["fidelity"] == 0]
    cert = [e for e in evals if e["fidelity"] == 1]
    out = {**_summary(_best(search)), "evaluations": len(search), "wall_seconds": wall,
           "failures": sorted({e["failure_category"] for e in evals if e["failure_category"]}),
           "status": row["status"], "completion_reason": row["completion_reason"]}
    if cert and cert[0]["status"] == "succeeded":
        m = cert[0]["metrics"]
        out["certified"] = {"score": m["score"], "objective": m["objective"], "feasibility": m["feasibility"],
                            "by_problem_evaluate": m["evaluated"] == 1.0, "seconds": cert[0]["wall_seconds"],
                            "workdir": cert[0]["provenance"].get("workdir")}
    elif cert:
        out["certified"] = {"error": cert[0]["failure_category"]}
    out["report"] = str(data_dir / "report")
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=34, help="search evaluations per side")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--maxit", type=int, default=3, help="the package runner's outer iterations")
    ap.add_argument("--population", type=int, default=4, help="huntflow's batch size")
    ap.add_argument("--modes", type=int, nargs=2, default=(2, 2))
    ap.add_argument("--half-width", type=float, default=0.5, help="the runner's bounds_initial = huntflow's box")
    ap.add_argument("--alpha", type=float, default=0.8, help="infinity_norm_spectrum_scaling")
    ap.add_argument("--preset", default="low_fidelity")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--no-certify", action="store_true")
    args = ap.parse_args()
    load_before = os.getloadavg()

    from huntflow.engine.models.stellarator.evaluate import metrics_of

    def problem_metrics(m):
        return metrics_of("p1", m)

    package = package_side(args, problem_metrics)
    print(f"package runner: {json.dumps({k: v for k, v in package.items() if k != 'boundary_json'})}", flush=True)
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    cert_proc = None
    if package["boundary_json"] and not args.no_certify:
        cert_proc = multiprocessing.get_context("spawn").Process(target=_certify, args=(package["boundary_json"], queue))
        cert_proc.start()
    tmp = tempfile.mkdtemp(prefix="bench-stellarator-")  # kept: its report, rows and candidate workdirs
    hunt = huntflow_side(args, Path(tmp))
    print(f"huntflow: {json.dumps(hunt)}", flush=True)
    if cert_proc is not None:
        package["certified"] = queue.get()
        cert_proc.join()
    package.pop("boundary_json")
    result = {
        "benchmark": "stellarator_p1", "budget": args.budget, "workers": args.workers, "preset": args.preset,
        "modes": list(args.modes), "box": {"half_width": args.half_width, "alpha": args.alpha},
        "huntflow": hunt, "package_alm_ngopt": package,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "note": "shared by 8 concurrent developers"},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
