"""Search spaces: every optimizer on mixed integer / categorical / continuous problems.

For each problem, backend and seed a :class:`huntflow.engine.optimize.Hunt` runs ask -> evaluate
-> tell to the end of its budget (batches of ``POPULATION``), twice: with repeated points told
their stored result (``optimizer.options.duplicates: tell``, the default) and told nothing
(``drop``). Peers in the same run: Optuna's TPE (native int and categorical distributions) and
Optuna's random sampler. Evaluation is plain Python (the problems are cheap), so the numbers
are search quality, not speed.

Problems (f* = 0 for both):
* ``mixed-3d``: the built-in ``mixed`` benchmark: x in [-1, 1], n in 0..8, kind (4 choices);
  ``f = (x - 0.3)^2 + 0.1 (n - 3)^2 + 0.5 min(|c - 1|, 2)``.
* ``mixed-8d``: 4 continuous x_i in [-1, 1], 2 integers n_j in 0..20 (one log-scale, 1..200), 2
  categoricals of 5 choices each with fixed penalties (best choice: penalty 0);
  ``f = sum (x_i - 0.3)^2 + 0.02 (n_0 - 7)^2 + (log n_1 - log 40)^2 + pen_0[c_0] + pen_1[c_1]``.

Score: regret ``f(best) - f*`` per seed; the JSON has per (problem, method) the median regret,
and per backend the share of asks that were repeats of known points and the median ratio
``drop / tell`` (> 1: telling repeats helps).

Usage: ``python benchmarks/search_spaces.py [--quick] [--seeds N]``. The last stdout line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.spec import parse_spec

POPULATION = 8
BACKENDS = ("ngopt", "cma", "twopointsde", "nsga2", "random")
PEN = ([0.4, 0.9, 0.0, 0.6, 0.3], [0.5, 0.0, 0.8, 0.2, 0.7])
KINDS = ["euler", "rk4", "leapfrog", "verlet"]


def _f3(c):
    return (c["x"] - 0.3) ** 2 + 0.1 * (c["n"] - 3) ** 2 + 0.5 * min(abs(KINDS.index(c["kind"]) - 1), 2)


def _f8(c):
    return (sum((c[f"x{i}"] - 0.3) ** 2 for i in range(4)) + 0.02 * (c["n0"] - 7) ** 2
            + (math.log(c["n1"]) - math.log(40)) ** 2 + PEN[0][int(c["c0"][1:])] + PEN[1][int(c["c1"][1:])])


PROBLEMS = {
    "mixed-3d": (
        {"x": {"low": -1.0, "high": 1.0}, "n": {"type": "int", "low": 0, "high": 8}, "kind": {"choices": KINDS}},
        _f3, 96),
    "mixed-8d": (
        {**{f"x{i}": {"low": -1.0, "high": 1.0} for i in range(4)},
         "n0": {"type": "int", "low": 0, "high": 20}, "n1": {"type": "int", "low": 1, "high": 200, "log": True},
         "c0": {"choices": [f"a{i}" for i in range(5)]}, "c1": {"choices": [f"b{i}" for i in range(5)]}},
        _f8, 240),
}


def run_hunt(space, f, budget, backend, seed, policy):
    spec = parse_spec({"slug": "bench-space", "model": {"name": "mixed"}, "space": PROBLEMS["mixed-3d"][0],
                       "objectives": [{"metric": "f"}], "budget": {"evaluations": budget}, "seed": seed,
                       "optimizer": {"name": backend, "population": POPULATION, "options": {"duplicates": policy}}})
    # the hunt never runs the model, so another space goes in unchecked (model_copy does not validate)
    spec = spec.model_copy(update={"space": _space(space)})
    hunt = Hunt.start(spec)
    best = math.inf
    while (a := hunt.ask()) is not None:
        values = [f(c) for c in a.candidates]
        best = min([best] + values)
        hunt.tell(a.ask_id, [Outcome("ok", {"f": v, "g": 0.0}) for v in values])
    d = hunt.duplicates
    return best, (d["told"] + d["dropped"]) / max(1, hunt.asked + d["told"] + d["dropped"])


def _space(space):
    """Validated space entries for a space the ``mixed`` model does not take."""
    from pydantic import TypeAdapter

    from huntflow.engine.spec import Param

    return {k: TypeAdapter(Param).validate_python(v) for k, v in space.items()}


def run_optuna(space, f, budget, seed, sampler_name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    study = optuna.create_study(sampler=sampler)
    dists = {}
    for k, v in space.items():
        if "choices" in v:
            dists[k] = optuna.distributions.CategoricalDistribution(v["choices"])
        elif v.get("type") == "int":
            dists[k] = optuna.distributions.IntDistribution(v["low"], v["high"], log=v.get("log", False))
        else:
            dists[k] = optuna.distributions.FloatDistribution(v["low"], v["high"], log=v.get("log", False))
    best = math.inf
    for _ in range(budget // POPULATION):
        trials = [study.ask(dists) for _ in range(POPULATION)]
        for t in trials:
            v = f(t.params)
            best = min(best, v)
            study.tell(t, v)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 seeds, mixed-3d and mixed-8d")
    ap.add_argument("--seeds", type=int, default=None)
    args = ap.parse_args(argv)
    seeds = list(range(args.seeds or (3 if args.quick else 5)))
    t0 = time.perf_counter()
    table, dup = {}, {}
    for pname, (space, f, budget) in PROBLEMS.items():
        rows = {}
        for backend in BACKENDS:
            for policy in ("tell", "drop"):
                res = [run_hunt(space, f, budget, backend, s, policy) for s in seeds]
                rows[f"{backend}:{policy}"] = [r[0] for r in res]
                if policy == "tell":
                    dup[f"{pname}:{backend}"] = round(statistics.median(r[1] for r in res), 3)
            print(pname, backend, {k: round(statistics.median(v), 4) for k, v in rows.items() if k.startswith(backend)},
                  file=sys.stderr, flush=True)
        for peer in ("tpe", "random"):
            rows[f"optuna_{peer}"] = [run_optuna(space, f, budget, s, peer) for s in seeds]
        table[pname] = {k: {"median_regret": statistics.median(v), "per_seed": v} for k, v in rows.items()}
    ratio = {}
    for pname, rows in table.items():
        for backend in BACKENDS:
            t, d = rows[f"{backend}:tell"]["median_regret"], rows[f"{backend}:drop"]["median_regret"]
            ratio[f"{pname}:{backend}"] = None if t == 0 else round(d / t, 3)
    out = {
        "benchmark": "search_spaces",
        "seeds": len(seeds),
        "population": POPULATION,
        "median_regret": {p: {k: round(v["median_regret"], 6) for k, v in rows.items()} for p, rows in table.items()},
        "drop_over_tell": ratio,
        "repeat_share_of_asks": dup,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                    "note": "shared by 8 concurrent developers"},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
