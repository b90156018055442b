"""ConStellaration P1: a huntflow campaign vs the package's own augmented-Lagrangian + NGOpt runner.

Both sides start from the package's rotating ellipse (A = 4, elongation 3, iota 0.9, NFP 3) with
the same masked coefficients (default m, |n| <= 2: 24), the same box / first trust region
``x0 +- half_width * exp(-alpha * max(|m|, |n|))`` (default alpha 0.5, examples/stellarator_p1.yaml's;
runs before 1 December 18:00 used 0.8), the same number of VMEC++ evaluations and
the same number of worker processes, and **run at the same time** (interleaved: each side in its
own process tree, ``--workers`` each), so that their wall times are measured under the same load.
Each side's best design is then certified by ``GeometricalProblem.evaluate`` (high fidelity, the
problem's own score).

* huntflow: ``huntflow campaign add`` + ``huntflow tick --until-done`` (embedded Postgres, the
  stellarator function model in its process pool) with the fidelity ladder of
  examples/stellarator_p1.yaml (``--options``, default its ``feasibility_first: true``): a search
  rung at ``--preset`` (default ``very_low_fidelity``),
  its top ``--promote`` re-run at ``low_fidelity``, the best of those certified by the
  ``evaluate: true`` rung (``problem.evaluate``). Budget: search + promotions = ``--budget``.
* package: ``constellaration.optimization.augmented_lagrangian_runner.run`` with the settings of
  its optimization_examples/launch_alm_geometric_problem.py scaled to the budget
  (``1 + maxit * (budget_initial + 1)`` evaluations: its NGOpt calls plus x0 and every outer
  iteration's recommendation) at ``--package-preset`` (its example's ``low_fidelity``),
  ``batch_mode`` for reproducibility. The runner returns nothing; its designs are read off the
  forward-model calls it makes in its own process (x0 and each recommendation, the points the
  runner itself reports), and the best of those is certified in the same process afterwards.

"Best" on each side: the feasible design with the lowest objective (max elongation), else the
one with the least total violation ``sum max(0, v - 0.01)`` over the normalized violations.
The last stdout line is one JSON object. ``--no-package`` runs huntflow's side alone (a machine
too loaded for both in the time there is; the comparison then names an earlier package run).

    nice -n 19 uv run --frozen --extra stellarator python benchmarks/stellarator.py --budget 300 --deadline-minutes 60
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue as queue_module
import signal
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


def _summary(best: dict | None, designs: list[dict]) -> dict:
    n_feasible = sum(1 for d in designs if d.get("metrics") and d["metrics"]["feasible"] == 1.0)
    if best is None:
        return {"best_feasible_objective": None, "best_objective": None, "normalized_violation": None,
                "feasible": None, "feasible_designs": 0}
    m = best["metrics"]
    return {"best_feasible_objective": m["objective"] if m["feasible"] == 1.0 else None,
            "best_objective": m["objective"], "normalized_violation": m["feasibility"], "feasible": m["feasible"] == 1.0,
            "feasible_designs": n_feasible,
            "violations": {k: v for k, v in m.items() if k.startswith("violation_")}}


def certify(boundary_json: str) -> dict:
    """``GeometricalProblem.evaluate`` on one boundary: the problem's own high-fidelity score."""
    from constellaration import problems
    from constellaration.geometry import surface_rz_fourier as rz

    t0 = time.perf_counter()
    try:
        r = problems.GeometricalProblem().evaluate(rz.SurfaceRZFourier.model_validate_json(boundary_json))
        return {"score": r.score, "objective": r.objective, "feasibility": r.feasibility,
                "feasible": r.feasibility <= VIOLATION_TOLERANCE, "seconds": time.perf_counter() - t0}
    except Exception as e:  # a certification that fails is a result, not a crash of the benchmark
        return {"error": f"{type(e).__name__}: {str(e)[:300]}", "seconds": time.perf_counter() - t0}


def package_side(args, out: multiprocessing.Queue, stream: str) -> None:
    """The package's runner at the same budget, then its best design certified (own process).
    Each design it reports is appended to ``stream`` as it comes (what a deadline reads)."""
    sys.stdout = sys.stderr  # the runner prints its progress; the benchmark's stdout ends in one JSON line
    os.setsid()  # its own process group with the runner's forkserver pool: a deadline stops them all
    from constellaration import forward_model, initial_guess, problems
    from constellaration.optimization import augmented_lagrangian as al
    from constellaration.optimization import augmented_lagrangian_runner as runner
    from constellaration.optimization import settings as opt
    from constellaration.utils import seed_util

    from huntflow.engine.models.stellarator.evaluate import metrics_of, settings_for

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
        forward_model_settings=settings_for("p1", args.package_preset))
    designs: list[dict] = []
    oracle_evals = [0]
    real_forward, real_logging = forward_model.forward_model, runner._logging

    def recording(boundary, *a, **kw):  # the runner's evaluations in this process: x0 and recommendations
        try:
            result = real_forward(boundary, *a, **kw)
        except Exception:
            designs.append({"boundary": boundary, "metrics": None})
            raise
        designs.append({"boundary": boundary, "metrics": metrics_of("p1", result[0])})
        with open(stream, "a") as f:
            f.write(json.dumps({"metrics": designs[-1]["metrics"], "seconds": time.perf_counter() - t0}) + "\n")
        return result

    def logging(k, n, state):
        oracle_evals[0] = n
        real_logging(k, n, state)

    forward_model.forward_model, runner._logging = recording, logging
    seed_util.seed_everything(args.seed)
    t0 = time.perf_counter()
    boundary = initial_guess.generate_rotating_ellipse(aspect_ratio=4.0, elongation=3.0, rotational_transform=0.9,
                                                       n_field_periods=3)
    try:
        runner.run(boundary, settings, problems.GeometricalProblem())
    finally:
        forward_model.forward_model, runner._logging = real_forward, real_logging
    wall = time.perf_counter() - t0
    best = _best(designs)
    result = {**_summary(best, designs), "evaluations": oracle_evals[0] + len(designs), "search_wall_seconds": wall,
              "preset": args.package_preset,
              "settings": {"maxit": maxit, "budget_initial": b0, "num_workers": args.workers},
              "loadavg_after_search": os.getloadavg()}
    if best is not None and not args.no_certify:
        with open(stream, "a") as f:
            f.write(json.dumps({"search_done": result}) + "\n")
        result["certified"] = certify(best["boundary"].model_dump_json())
    result["wall_seconds"] = time.perf_counter() - t0
    print(f"package runner: {json.dumps(result)}", flush=True)  # to stderr: kept should the parent fail
    out.put(result)


def huntflow_spec(args) -> dict:
    from huntflow.engine.models.stellarator import VIOLATIONS
    from huntflow.engine.models.stellarator.boundary import fixed_and_space

    fixed, space = fixed_and_space("p1", *args.modes, half_width=args.half_width, alpha=args.alpha)
    rungs = [{"name": "search", "settings": {"preset": args.preset}, "budget": args.budget - args.promote - 1,
              "promote_top_k": args.promote},
             # a rung's budget is > 0: one search evaluation at low_fidelity besides the promoted ones
             {"name": "low", "settings": {"preset": "low_fidelity"}, "budget": 1, "promote_top_k": 1},
             {"name": "score", "settings": {"preset": "high_fidelity", "evaluate": True}}]
    if args.no_certify:
        rungs = rungs[:2]
    return {
        "slug": "bench-stellarator-p1",
        "model": {"name": "stellarator", "fixed": fixed, "workers": args.workers, "walltime_seconds": 3600},
        "space": space,
        "objectives": [{"metric": "objective", "goal": "minimize"}],
        "constraints": [{"metric": f"violation_{v}", "max": VIOLATION_TOLERANCE} for v in VIOLATIONS["p1"]],
        "fidelities": rungs,
        "budget": {"evaluations": args.budget + (0 if args.no_certify else 1)},
        "optimizer": {"name": args.optimizer, "population": args.population, "options": json.loads(args.options)},
        "review": {"spot_check_top": 0},  # VMEC++ single-threaded is deterministic; a re-run costs a simulation
        "seed": args.seed,
    }


def _until(cmd: list[str], env: dict, log, deadline: float) -> bool:
    """Run ``cmd`` until it exits or ``deadline`` (monotonic) passes; False when it was stopped."""
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the tick and its worker processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return False


def huntflow_side(args, data_dir: Path, deadline: float) -> dict:
    spec_path = data_dir / "p1.yaml"
    spec_path.write_text(yaml.safe_dump(huntflow_spec(args), sort_keys=False))
    env = {**os.environ, "HUNTFLOW_DATA_DIR": str(data_dir), "HUNTFLOW_OPERATOR": "inline",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "900"}  # a loaded machine starts it slowly
    env.pop("SUPABASE_DB_URL", None)
    cli = [str(Path(sys.executable).with_name("huntflow"))]
    t0 = time.perf_counter()
    log = open(data_dir / "tick.log", "w")
    subprocess.run([*cli, "campaign", "add", str(spec_path)], env=env, check=True, stdout=log, stderr=log)
    finished = _until([*cli, "tick", "--until-done", "--max-ticks", "2000"], env, log, deadline)
    wall = time.perf_counter() - t0
    if finished:
        subprocess.run([*cli, "report", "bench-stellarator-p1", "--out", str(data_dir / "report")], env=env,
                       check=True, stdout=log, stderr=log)
    os.environ["HUNTFLOW_DATA_DIR"] = str(data_dir)
    conn = connect()
    row = campaigns.get_campaign(conn, "bench-stellarator-p1")
    evals = generations.campaign_evaluations(conn, row["campaign_id"])
    done = [e for e in evals if e["status"] in ("succeeded", "failed")]  # VMEC++ runs made (not pending ones)
    rung = {f: [{"metrics": e["metrics"] if e["status"] == "succeeded" else None} for e in done if e["fidelity"] == f]
            for f in (0, 1)}
    cert = [e for e in done if e["fidelity"] == 2]
    best = _best(rung[1]) or _best(rung[0])
    out = {**_summary(best, rung[0] + rung[1]), "search": _summary(_best(rung[0]), rung[0]),
           "evaluations": len(rung[0]) + len(rung[1]), "by_rung": [len(rung[0]), len(rung[1]), len(cert)],
           "first_feasible_search_evaluation": next((i + 1 for i, d in enumerate(rung[0])
                                                     if d["metrics"] and d["metrics"]["feasible"] == 1.0), None),
           "presets": [args.preset, "low_fidelity"], "search_wall_seconds": None, "wall_seconds": wall,
           "failures": sorted({e["failure_category"] for e in evals if e["failure_category"]}),
           "status": row["status"], "completion_reason": row["completion_reason"],
           "stopped_at_deadline": not finished}
    if cert and cert[0]["status"] == "succeeded":
        m = cert[0]["metrics"]
        out["certified"] = {"score": m["score"], "objective": m["objective"], "feasibility": m["feasibility"],
                            "feasible": m["feasibility"] <= VIOLATION_TOLERANCE,
                            "by_problem_evaluate": m["evaluated"] == 1.0, "seconds": cert[0]["wall_seconds"],
                            "workdir": cert[0]["provenance"].get("workdir")}
        out["search_wall_seconds"] = wall - float(cert[0]["wall_seconds"] or 0.0)
    elif cert:
        out["certified"] = {"error": cert[0]["failure_category"]}
    elif not finished and not args.no_certify:
        out["certified"] = {"error": "not finished by the deadline"}
    out["report"] = str(data_dir / "report") if finished else None
    conn.close()
    return out


def _package_at_deadline(stream: str, wall: float) -> dict:
    """What the package's side had reported when the deadline stopped it."""
    lines = [json.loads(x) for x in Path(stream).read_text().splitlines()] if Path(stream).exists() else []
    done = [x["search_done"] for x in lines if "search_done" in x]
    if done:
        return {**done[0], "certified": {"error": "not finished by the deadline"}, "wall_seconds": wall,
                "stopped_at_deadline": True}
    designs = [x for x in lines if "metrics" in x]
    return {**_summary(_best(designs), designs), "runner_designs": len(designs), "evaluations": None,
            "search_wall_seconds": None, "wall_seconds": wall, "stopped_at_deadline": True,
            "note": "stopped during its search: its x0 and the outer iterations' recommendations so far"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=34, help="VMEC++ evaluations per side before certification")
    ap.add_argument("--workers", type=int, default=1, help="worker processes per side (the sides run at once)")
    ap.add_argument("--maxit", type=int, default=3, help="the package runner's outer iterations")
    ap.add_argument("--population", type=int, default=4, help="huntflow's batch size")
    ap.add_argument("--optimizer", default="ngopt", help="huntflow's optimizer.name")
    ap.add_argument("--options", default='{"feasibility_first": true}', help="huntflow's optimizer.options (JSON)")
    ap.add_argument("--no-package", action="store_true",
                    help="huntflow's side alone (a loaded machine; the package side then comes from an earlier run)")
    ap.add_argument("--promote", type=int, default=4, help="huntflow: search designs re-run at low_fidelity")
    ap.add_argument("--modes", type=int, nargs=2, default=(2, 2))
    ap.add_argument("--half-width", type=float, default=0.5, help="the runner's bounds_initial = huntflow's box")
    ap.add_argument("--alpha", type=float, default=0.5, help="infinity_norm_spectrum_scaling")
    ap.add_argument("--preset", default="very_low_fidelity", help="huntflow's search rung")
    ap.add_argument("--package-preset", default="low_fidelity", help="the package runner's forward model")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--developers", type=int, default=5, help="how many developers share the machine (the note)")
    ap.add_argument("--no-certify", action="store_true")
    ap.add_argument("--deadline-minutes", type=float, default=None,
                    help="stop both sides then and report what each has (a loaded machine)")
    args = ap.parse_args()
    load_before = os.getloadavg()

    deadline = time.monotonic() + (args.deadline_minutes * 60 if args.deadline_minutes else 10**9)
    tmp = tempfile.mkdtemp(prefix="bench-stellarator-")  # kept: its report, rows and candidate workdirs
    stream = str(Path(tmp) / "package_designs.jsonl")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    package_proc = None if args.no_package else ctx.Process(target=package_side, args=(args, queue, stream))
    if package_proc is not None:
        package_proc.start()  # both sides run at once: the same machine, the same load
    t0 = time.perf_counter()
    hunt = huntflow_side(args, Path(tmp), deadline)
    hunt["loadavg_after"] = os.getloadavg()
    print(f"huntflow: {json.dumps(hunt)}", flush=True)
    try:
        package = {"not_run": "--no-package"} if package_proc is None else \
            queue.get(timeout=max(1.0, deadline - time.monotonic()))
        if package_proc is not None:
            package_proc.join()
    except queue_module.Empty:
        package = _package_at_deadline(stream, time.perf_counter() - t0)
        os.killpg(package_proc.pid, signal.SIGKILL)  # the runner, its forkserver pool, a certification in flight
        package_proc.join()
    result = {
        "benchmark": "stellarator_p1", "budget": args.budget, "workers_per_side": args.workers,
        "modes": list(args.modes), "box": {"half_width": args.half_width, "alpha": args.alpha},
        "interleaved": package_proc is not None, "huntflow": hunt, "package_alm_ngopt": package, "paper_p1_score": 0.969,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "nice": os.nice(0), "note": f"{os.cpu_count()} cores shared by {args.developers} concurrent developers; "
                                                f"run under nice -n {os.nice(0)}"},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
