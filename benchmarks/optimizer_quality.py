"""Optimizer quality: huntflow's evolve-stage engine against Optuna and random search.

Every method gets the same number of evaluations, spent in batches of ``POPULATION`` through
the same batched JAX evaluator (:func:`huntflow.engine.evaluate.evaluate_population`):

* ``huntflow``: :class:`huntflow.engine.optimize.Hunt` with its default optimizer (``auto``:
  NGOpt with one objective, NSGA-II with several; ``--optimizer NAME`` picks another), in a
  pure loop ask -> evaluate -> tell; on a problem with a fidelity ladder it searches the cheap
  rungs and certifies at the top one (low-fidelity evaluations count in full, so the ladder
  gets no cost discount here).
* ``tpe`` / ``cmaes`` / ``nsga2`` / ``motpe``: Optuna samplers in ask/tell batch mode
  (``constraints_func`` on constrained problems; CMA-ES is left out where Optuna's CMA-ES
  sampler does not support constraints or several objectives).
* ``qmc``: Optuna's scrambled-Sobol ``QMCSampler``; ``random``: Optuna's ``RandomSampler``.
* ``huntflow_steered`` (with ``--steer``): the same hunt, but every search ask gets the campaign
  mode the learn stage would have recorded after the previous told generation
  (:func:`huntflow.engine.optimize.modes.choose_mode` on learn's stagnation count and used
  budget fraction), so exploit / recover asks inject local-refinement / space-filling points.
  ``huntflow`` stays the explore-only (unsteered) hunt, and the JSON's ``steering`` section
  compares the two per problem on the same seeds (same evaluation noise).

Optuna's ``CmaEsSampler`` needs the ``cmaes`` package (in the ``bench`` extra); where it is not
installed that peer is skipped and the JSON says so (``optuna_cmaes_available``).

Score per (problem, method, seed): single objective, the *regret* ``f(best) - f*`` of the best
feasible evaluation, at the top fidelity, using the noise-free value (``f_true``) of the point
each method believes best on noisy problems, and ``inf`` when nothing feasible was found;
several objectives, the hypervolume of the feasible front against the problem's reference
point. A problem counts in ``wins_or_ties`` when huntflow's median over seeds is at least as
good as the best peer's median (a relative tolerance of 1e-6 decides ties).

Usage: ``python benchmarks/optimizer_quality.py [--quick] [--seeds N] [--jobs N] [--steer]
[--no-peers] [--optimizer NAME] [--option KEY=VALUE ...] [--problems NAME ...]``. The last stdout line is a JSON object: ``problems``,
``wins_or_ties``, ``table`` (per problem), ``machine``; with ``--steer`` also ``steering``
(per problem: both medians, ``gain`` = how many times better steered is than unsteered, >1 means
steering helps, and per-seed ``wins`` / ``ties`` / ``losses`` of steered against unsteered, and
the share of search asks made in each mode) and ``steered_wins_or_ties`` against the peers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

POPULATION = 16


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: a spec fragment plus what is known about its optimum."""

    name: str
    model: str
    dim: int
    low: float
    high: float
    budget: int
    quick_budget: int
    objectives: tuple[str, ...] = ("f",)
    constraints: tuple[str, ...] = ()
    f_star: float | None = 0.0
    noise: float = 0.0
    reference: tuple[float, ...] | None = None
    ladder: tuple[float, ...] = ()  # fidelity biases, cheapest first (empty: one rung)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


PROBLEMS = (
    Problem("sphere-40d", "sphere", 40, -5.0, 5.0, 1600, 320),
    Problem("rosenbrock-2d", "rosenbrock", 2, -2.0, 2.0, 400, 128),
    Problem("rosenbrock-10d", "rosenbrock", 10, -2.0, 2.0, 1600, 320),
    Problem("rosenbrock-40d", "rosenbrock", 40, -2.0, 2.0, 1600, 320),
    Problem("rastrigin-10d", "rastrigin", 10, -5.12, 5.12, 1600, 320),
    Problem("ackley-20d", "ackley", 20, -5.0, 5.0, 1600, 320),
    Problem("rosen-suzuki-4d", "rosen_suzuki", 4, -3.0, 3.0, 800, 256, constraints=("g1", "g2", "g3"), f_star=-44.0),
    Problem("constrained-sphere-10d", "constrained_sphere", 10, -2.0, 2.0, 1200, 320, constraints=("g",), f_star=10.0),
    Problem("zdt1-2d", "zdt1", 2, 0.0, 1.0, 400, 128, objectives=("f1", "f2"), f_star=None, reference=(1.1, 1.1)),
    Problem("zdt1-10d", "zdt1", 10, 0.0, 1.0, 1600, 320, objectives=("f1", "f2"), f_star=None, reference=(1.1, 11.0)),
    Problem("noisy-sphere-10d", "sphere", 10, -5.0, 5.0, 800, 256, noise=0.5),
    Problem("noisy-rosenbrock-5d", "rosenbrock", 5, -2.0, 2.0, 800, 256, noise=1.0),
    Problem("rosenbrock-10d-ladder", "rosenbrock", 10, -2.0, 2.0, 1600, 320, ladder=(0.5, 0.0)),
)


def _spec_dict(p: Problem, budget: int, seed: int, optimizer: str | None = None, options: dict | None = None) -> dict:
    spec = {
        "slug": p.name.replace("_", "-"),
        "model": {"name": p.model, "fixed": {"noise": p.noise} if p.noise else {}},
        "space": {f"x{i}": {"low": p.low, "high": p.high} for i in range(p.dim)},
        "objectives": [{"metric": m} for m in p.objectives],
        "constraints": [{"metric": m, "max": 0.0} for m in p.constraints],
        "budget": {"evaluations": budget},
        "optimizer": {"population": POPULATION, "options": dict(options or {}), **({"name": optimizer} if optimizer else {})},
        "seed": seed,
    }
    if p.reference is not None:
        spec["reference_point"] = list(p.reference)
    if p.ladder:
        spec["fidelities"] = [{"name": f"bias{b}", "settings": {"bias": b}} for b in p.ladder]
    return spec


def _evaluate(p: Problem, x: np.ndarray, seed: int, bias: float = 0.0, noisy: bool = True) -> dict[str, np.ndarray]:
    from huntflow.engine.evaluate import evaluate_population

    names = tuple(f"x{i}" for i in range(p.dim))
    fixed = {"noise": p.noise} if (p.noise and noisy) else {}
    fidelity = {"bias": bias} if bias else {}
    r = evaluate_population(p.model, names, np.atleast_2d(x), seed=seed, fixed=fixed, fidelity=fidelity, dtype="float64")
    return r.metrics


def _true_f(p: Problem, x: np.ndarray) -> float:
    return float(_evaluate(p, np.atleast_2d(x), 0, noisy=False)["f"][0])


def _score_single(p: Problem, best_x: np.ndarray | None) -> float:
    if best_x is None:
        return math.inf
    return _true_f(p, best_x) - float(p.f_star)


def _hv(p: Problem, points: list[list[float]]) -> float:
    from huntflow.engine.optimize.pareto import hypervolume

    return hypervolume(np.asarray(points, dtype=float).reshape(-1, len(p.objectives)), np.asarray(p.reference))


class LearnModes:
    """The learn stage's mode rule (huntflow/tasks/learn.py) on a hunt's told history.

    After each told generation (any kind): the best feasible objective (top fidelity first, else
    any; the first objective with several), its improvement over the previous best, the count of
    consecutive generations without improvement, and :func:`choose_mode` of that count, the
    spec's patience and the fraction of the budget told.
    """

    def __init__(self, spec):
        self.spec = spec
        self.prev_best: float | None = None
        self.stagnant = 0
        self.mode = "explore"

    def after_tell(self, hunt) -> str:
        from huntflow.engine.optimize.modes import choose_mode

        top = len(self.spec.fidelities) - 1
        ok = [e for e in hunt.evals if e["status"] == "ok" and e["feasible"]]
        pool = [e for e in ok if e["fidelity"] == top] or ok
        best = min((e["objectives"][0] for e in pool), default=None)  # minimized sign
        improvement = None
        if best is not None and self.prev_best is not None:
            improvement = self.prev_best - best if best < self.prev_best else 0.0
        fresh = (improvement is None and best is not None) or (improvement or 0.0) > 1e-12
        self.stagnant = 0 if fresh else self.stagnant + 1
        if best is not None:
            self.prev_best = best
        self.mode = choose_mode(self.stagnant, self.spec.budget.patience, len(hunt.evals) / max(1, hunt.total))
        return self.mode


def run_huntflow(p: Problem, budget: int, seed: int, steer: bool = False, options: dict | None = None,
                 optimizer: str | None = None) -> tuple[float, dict]:
    """Drive a Hunt in a pure loop (with ``steer``, asking in learn's mode); returns the score
    (regret or hypervolume) and the search asks made in each mode. ``options`` go to
    ``spec.optimizer.options`` (e.g. ``exploit_share``)."""
    from huntflow.engine.optimize import Hunt, Outcome
    from huntflow.engine.spec import parse_spec

    spec = parse_spec(_spec_dict(p, budget, seed, optimizer=optimizer, options=options))
    hunt = Hunt.start(spec)
    learn = LearnModes(spec)
    modes = {"explore": 0, "exploit": 0, "recover": 0}
    while (ask := hunt.ask(learn.mode if steer else "explore")) is not None:
        if ask.kind == "search":
            modes[ask.meta["mode"]] += 1
        x = np.array([[c[n] for n in spec.param_names] for c in ask.candidates])
        bias = float(spec.fidelities[ask.fidelity].settings.get("bias", 0.0))
        m = _evaluate(p, x, seed * 100003 + ask.ask_id, bias=bias)
        outs = []
        for i in range(len(x)):
            metrics = {k: float(v[i]) for k, v in m.items()}
            ok = all(math.isfinite(v) for v in metrics.values())
            outs.append(Outcome("ok", metrics) if ok else Outcome("failed", {}, "nonfinite"))
        hunt.tell(ask.ask_id, outs)
        learn.after_tell(hunt)
    s = hunt.summary()
    if p.multi:
        return _hv(p, [v["objectives"] for v in s["front"]]), modes
    best = s["best_params"]
    return _score_single(p, None if best is None else np.array([best[n] for n in spec.param_names])), modes


def _sampler(method: str, seed: int, constrained: bool):
    import optuna

    cons = (lambda t: t.user_attrs["constraints"]) if constrained else None
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cons)
    if method == "motpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cons)
    if method == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if method == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cons, population_size=POPULATION * 2)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    raise ValueError(method)


def run_optuna(p: Problem, budget: int, seed: int, method: str) -> float:
    """Optuna in ask/tell batches of POPULATION, at the top fidelity; returns the score."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    constrained = bool(p.constraints)
    study = optuna.create_study(
        sampler=_sampler(method, seed, constrained),
        directions=["minimize"] * len(p.objectives),
    )
    dists = {f"x{i}": optuna.distributions.FloatDistribution(p.low, p.high) for i in range(p.dim)}
    records = []  # (x, objectives, feasible)
    asked = 0
    batch_no = 0
    while asked < budget:
        n = min(POPULATION, budget - asked)
        trials = [study.ask(dists) for _ in range(n)]
        x = np.array([[t.params[f"x{i}"] for i in range(p.dim)] for t in trials])
        m = _evaluate(p, x, seed * 100003 + batch_no)
        batch_no += 1
        for i, t in enumerate(trials):
            obj = [float(m[k][i]) for k in p.objectives]
            g = [float(m[c][i]) for c in p.constraints]
            if not all(math.isfinite(v) for v in obj + g):
                study.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            if constrained:
                t.set_user_attr("constraints", g)
            study.tell(t, obj if p.multi else obj[0])
            records.append((x[i], obj, all(v <= 0 for v in g)))
        asked += n
    feasible = [r for r in records if r[2]]
    if p.multi:
        return _hv(p, [r[1] for r in feasible])
    if not feasible:
        return math.inf
    best = min(feasible, key=lambda r: r[1][0])
    return _score_single(p, best[0])


def _cmaes_available() -> bool:
    try:
        import cmaes  # noqa: F401  (Optuna's CmaEsSampler needs the optional ``cmaes`` package)
    except ImportError:
        return False
    return True


def peers_for(p: Problem) -> list[str]:
    """Which peers run on a problem (CMA-ES only where Optuna supports it and it is installed)."""
    if p.multi:
        return ["nsga2", "motpe", "random"]
    if p.constraints:
        return ["tpe", "qmc", "random"]
    return ["tpe", "cmaes", "qmc", "random"] if _cmaes_available() else ["tpe", "qmc", "random"]


def _job(args: tuple) -> tuple:
    name, method, seed, budget, options, optimizer = args
    p = next(q for q in PROBLEMS if q.name == name)
    t0 = time.perf_counter()
    modes = None
    if method in ("huntflow", "huntflow_steered"):
        score, modes = run_huntflow(p, budget, seed, steer=method == "huntflow_steered", options=options, optimizer=optimizer)
    else:
        score = run_optuna(p, budget, seed, method)
    return name, method, seed, score, time.perf_counter() - t0, modes


def _gain(p: Problem, steered: float, plain: float) -> float | None:
    """How many times better steered is than unsteered (>1: steering helps)."""
    if p.multi:
        return steered / plain if plain > 0 else None
    if not (math.isfinite(steered) and math.isfinite(plain)):
        return None
    if steered <= 0:
        return math.inf if plain > 0 else 1.0
    return plain / steered


def steering_table(problems: list[Problem], results: dict, modes: dict) -> list[dict]:
    """Steered against unsteered per problem, paired by seed."""
    rows = []
    for p in problems:
        plain, steered = results[(p.name, "huntflow")], results[(p.name, "huntflow_steered")]
        wins = ties = losses = 0
        for a, b in zip(steered, plain):
            if _better_or_equal(p, a, b) and _better_or_equal(p, b, a):
                ties += 1
            elif _better_or_equal(p, a, b):
                wins += 1
            else:
                losses += 1
        med_plain, med_steered = float(np.median(plain)), float(np.median(steered))
        counts = modes[(p.name, "huntflow_steered")]
        total = max(1, sum(counts.values()))
        rows.append({
            "problem": p.name,
            "unsteered_median": med_plain,
            "steered_median": med_steered,
            "gain": _gain(p, med_steered, med_plain),
            "per_seed_gain": [_gain(p, b, a) for a, b in zip(plain, steered)],
            "wins": wins, "ties": ties, "losses": losses,
            "search_asks_by_mode": {m: round(c / total, 3) for m, c in counts.items()},
        })
    return rows


def _better_or_equal(p: Problem, ours: float, theirs: float) -> bool:
    tol = 1e-6 * max(1.0, abs(theirs)) if math.isfinite(theirs) else 0.0
    if p.multi:
        return ours >= theirs - tol
    return ours <= theirs + tol


def _finite(obj):
    """JSON has no infinity: a regret of inf (nothing feasible found) is written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _fmt(v: float) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.4g}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budgets, 3 seeds (under 5 minutes on 2 cores)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--problems", nargs="*", default=None, help="subset of problem names")
    ap.add_argument("--steer", action="store_true", help="also run the hunt steered by learn's mode rule")
    ap.add_argument("--no-peers", action="store_true", help="skip the Optuna peers (huntflow only)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="an optimizer option for the hunts, e.g. exploit_share=0.25 (repeatable)")
    ap.add_argument("--optimizer", default=None, help="spec.optimizer.name for the hunts (default: the spec's default)")
    args = ap.parse_args(argv)
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    seeds = args.seeds or (3 if args.quick else 5)
    problems = [p for p in PROBLEMS if args.problems is None or p.name in args.problems]
    ours = ["huntflow", "huntflow_steered"] if args.steer else ["huntflow"]
    peers = (lambda p: []) if args.no_peers else peers_for
    jobs = []
    for p in problems:
        budget = p.quick_budget if args.quick else p.budget
        for method in [*ours, *peers(p)]:
            for seed in range(seeds):
                jobs.append((p.name, method, seed, budget, options, args.optimizer))
    t0 = time.perf_counter()
    results: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], float] = {}
    mode_counts: dict[tuple[str, str], dict[str, int]] = {}
    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            done = list(pool.map(_job, jobs))
    else:
        done = [_job(j) for j in jobs]
    for name, method, seed, score, sec, modes in done:
        results.setdefault((name, method), []).append(score)
        seconds[(name, method)] = seconds.get((name, method), 0.0) + sec
        if modes is not None:
            acc = mode_counts.setdefault((name, method), {})
            for m, c in modes.items():
                acc[m] = acc.get(m, 0) + c
    table = []
    wins = steered_wins = 0
    for p in problems:
        budget = p.quick_budget if args.quick else p.budget
        med = {m: float(np.median(results[(p.name, m)])) for m in [*ours, *peers(p)]}
        others = {m: v for m, v in med.items() if m not in ours}
        row = {
            "problem": p.name,
            "metric": "hypervolume (higher is better)" if p.multi else "regret (lower is better)",
            "budget": budget,
            "median": med,
            "seconds": {m: round(seconds[(p.name, m)], 2) for m in med},
        }
        verdict = ""
        if others:
            best_peer = (max if p.multi else min)(others, key=lambda m: others[m])
            ok = _better_or_equal(p, med["huntflow"], others[best_peer])
            wins += ok
            row.update(best_peer=best_peer, huntflow_win_or_tie=bool(ok))
            verdict = f"  best_peer={best_peer} {'WIN/TIE' if ok else 'loss'}"
            if args.steer:
                sok = _better_or_equal(p, med["huntflow_steered"], others[best_peer])
                steered_wins += sok
                row["steered_win_or_tie"] = bool(sok)
        table.append(row)
        print(
            f"{p.name:24s} " + " ".join(f"{m}={_fmt(v)}" for m, v in med.items()) + verdict
            + f"  seconds={ {m: round(seconds[(p.name, m)], 1) for m in med} }",
            file=sys.stderr,
        )
    import nevergrad
    import optuna

    out = {
        "benchmark": "optimizer_quality",
        "quick": args.quick,
        "seeds": seeds,
        "population": POPULATION,
        "options": options,
        "optimizer": args.optimizer,
        "problems": len(problems),
        "wins_or_ties": None if args.no_peers else wins,
        "table": table,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "jobs": args.jobs,
            "nevergrad": nevergrad.__version__,
            "optuna": optuna.__version__,
            "optuna_cmaes_available": _cmaes_available(),
            "numpy": np.__version__,
        },
    }
    if args.steer:
        steering = steering_table(problems, results, mode_counts)
        out["steering"] = steering
        out["steering_wins_ties_losses"] = [sum(r[k] for r in steering) for k in ("wins", "ties", "losses")]
        out["steering_problems_helped"] = sum(1 for r in steering if r["gain"] is not None and r["gain"] > 1)
        if not args.no_peers:
            out["steered_wins_or_ties"] = steered_wins
        for r in steering:
            print(
                f"steering {r['problem']:24s} unsteered={_fmt(r['unsteered_median'])} steered={_fmt(r['steered_median'])}"
                f" gain={_fmt(r['gain']) if r['gain'] is not None else 'n/a'} w/t/l={r['wins']}/{r['ties']}/{r['losses']}"
                f" modes={r['search_asks_by_mode']}",
                file=sys.stderr,
            )
    print(json.dumps(_finite(out)))
    return out


if __name__ == "__main__":
    main()
