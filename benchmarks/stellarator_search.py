"""P1 search experiments: huntflow's own :class:`Hunt` (ask/tell, ALM, modes) driven in-process
over the stellarator model's evaluate function, no orchestration (no Postgres, Prefect or pool).

For choosing the search settings of examples/stellarator_p1.yaml cheaply: one VMEC++ process,
one search rung (``--preset``), no promotion or certification. Prints one JSON line per told
generation (evaluations, best normalized violation, best feasible objective) and ends with one
JSON object. The campaign itself is measured by benchmarks/stellarator.py.

    nice -n 19 .venv/bin/python benchmarks/stellarator_search.py --budget 120 --optimizer ngopt
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from huntflow.engine.models.stellarator import VIOLATIONS
from huntflow.engine.models.stellarator.boundary import fixed_and_space
from huntflow.engine.optimize.batch import Outcome
from huntflow.engine.optimize.hunt import Hunt
from huntflow.engine.optimize.modes import choose_mode
from huntflow.engine.spec import parse_spec
from huntflow.errors import EvaluationFailed

TOL = 0.01


def spec_for(args, fixed: dict, space: dict):
    return parse_spec({
        "slug": "p1-search", "model": {"name": "stellarator", "fixed": fixed}, "space": space,
        "objectives": [{"metric": "objective", "goal": "minimize"}],
        "constraints": [{"metric": f"violation_{v}", "max": TOL} for v in VIOLATIONS["p1"]],
        "fidelities": [{"name": "search", "settings": {"preset": args.preset}}],
        "budget": {"evaluations": args.budget},
        "optimizer": {"name": args.optimizer, "population": args.population, "options": json.loads(args.options)},
        "seed": args.seed})


def main() -> None:
    from huntflow.engine.models.stellarator.evaluate import run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=120)
    ap.add_argument("--optimizer", default="ngopt")
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--options", default="{}", help="optimizer.options as JSON")
    ap.add_argument("--modes", type=int, nargs=2, default=(2, 2))
    ap.add_argument("--half-width", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=0.8)
    ap.add_argument("--preset", default="very_low_fidelity")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    fixed, space = fixed_and_space("p1", *args.modes, half_width=args.half_width, alpha=args.alpha)
    spec = spec_for(args, fixed, space)
    hunt = Hunt.start(spec)
    best_v, best_f, stagnant, used, t0 = None, None, 0, 0, time.perf_counter()
    failures: dict[str, int] = {}
    mode = "explore"
    while (ask := hunt.ask(mode)) is not None:
        outcomes = []
        for cand in ask.candidates:
            try:
                m, _ = run({**fixed, **cand}, {"preset": args.preset})
                outcomes.append(Outcome("ok", m))
                v = max(0.0, max(m[f"violation_{c}"] for c in VIOLATIONS["p1"]))
                best_v = v if best_v is None else min(best_v, v)
                if v <= TOL and (best_f is None or m["objective"] < best_f):
                    best_f, stagnant = m["objective"], -1
            except EvaluationFailed as e:
                failures[e.failure_category] = failures.get(e.failure_category, 0) + 1
                outcomes.append(Outcome("failed", {}, e.failure_category))
        used += len(ask.candidates)
        hunt.tell(ask.ask_id, outcomes)
        stagnant += 1
        mode = choose_mode(stagnant, None, used / args.budget) if best_f is not None else choose_mode(stagnant, None, 0)
        print(json.dumps({"evals": used, "best_violation": best_v, "best_feasible_objective": best_f, "mode": mode,
                          "rho": hunt.alm.rho, "t": round(time.perf_counter() - t0, 1)}), flush=True)
    print(json.dumps({"settings": vars(args), "evaluations": used, "best_violation": best_v,
                      "best_feasible_objective": best_f, "failures": failures,
                      "wall_seconds": time.perf_counter() - t0, "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    os.chdir(tempfile.mkdtemp(prefix="p1-search-"))
    main()
