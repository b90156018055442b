"""The hunt's own cost per generation as its history grows: ask + tell + summary of one
:class:`~huntflow.engine.optimize.Hunt` (the demo's 4-D space, population 32, random search so
the optimizer library costs next to nothing: what is left is huntflow's engine) with 2 000,
32 000 and 96 000 told evaluations, and what its checkpoint costs at each size; and the same for
a two-objective hunt (ZDT1, 3 parameters, a reference point: the Pareto front, its
hypervolume and the tell's normalization box) at 2 000, 8 000 and 16 000 (``--sizes-mo``).

The hunts are built first (generations of the 4-D Rosenbrock), then measured round-robin, one
generation of each in turn (interleaved: the same background load for every size), so
``growth`` (largest over smallest) is a same-run ratio. ``checkpoint``: ``Hunt.dumps`` bytes and
seconds, and ``Hunt.loads`` seconds (a reload: another process, after a crash). Usage: ``python
benchmarks/engine_history.py [--sizes 2000,32000,96000] [--rounds 20]``; the last stdout line is
one JSON object (with the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

SPEC = Path(__file__).resolve().parent.parent / "examples" / "rosenbrock_4d.yaml"


def _outcomes(candidates: list[dict], two: bool = False) -> list:
    """The 4-D Rosenbrock, or (``two``) ZDT1's two objectives."""
    from huntflow.engine.optimize import Outcome

    out = []
    for c in candidates:
        if two:
            x = np.array([c[f"x{i}"] for i in range(3)])
            g = 1.0 + 9.0 * float(np.mean(x[1:]))
            out.append(Outcome("ok", {"f1": float(x[0]), "f2": g * (1.0 - float(np.sqrt(x[0] / g)))}))
            continue
        x = np.array([c[f"x{i}"] for i in range(4)])
        f = float(sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3)))
        out.append(Outcome("ok", {"f": f}))
    return out


def _hunt(told: int, spare: int, two: bool = False):
    """A random-search hunt of the demo's space (``two``: ZDT1's) with ``told`` told
    evaluations and room for ``spare`` more."""
    from huntflow.engine.optimize import Hunt
    from huntflow.engine.spec import load_spec, parse_spec

    if two:
        spec = parse_spec({"slug": f"engine-history-mo-{told}", "model": {"name": "zdt1"},
                           "space": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(3)},
                           "objectives": [{"metric": "f1"}, {"metric": "f2"}], "reference_point": [1.1, 10.0],
                           "budget": {"evaluations": told + spare},
                           "optimizer": {"name": "random", "population": 32}, "seed": 2})
    else:
        spec = load_spec(SPEC)
        spec = spec.model_copy(update={
            "slug": f"engine-history-{told}", "budget": spec.budget.model_copy(update={"evaluations": told + spare}),
            "optimizer": spec.optimizer.model_copy(update={"name": "random", "options": {}})})
    hunt = Hunt.start(spec)
    while len(hunt.evals) < told:
        ask = hunt.ask("explore")
        hunt.tell(ask.ask_id, _outcomes(ask.candidates, two))
    return hunt


def _generation(hunt) -> dict[str, float]:
    t0 = time.perf_counter()
    ask = hunt.ask("explore")
    t1 = time.perf_counter()
    hunt.tell(ask.ask_id, _outcomes(ask.candidates, hunt.n_obj > 1))
    t2 = time.perf_counter()
    hunt.summary()
    t3 = time.perf_counter()
    return {"ask": t1 - t0, "tell": t2 - t1, "summary": t3 - t2, "total": t3 - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,32000,96000", help="told evaluations per hunt")
    ap.add_argument("--sizes-mo", default="2000,8000,16000", help="told evaluations per two-objective hunt")
    ap.add_argument("--rounds", type=int, default=20, help="measured generations of each hunt")
    args = ap.parse_args()
    from huntflow.engine.optimize import Hunt

    load_start = os.getloadavg()
    sizes = [(int(n), False) for n in args.sizes.split(",")] + [(int(n), True) for n in args.sizes_mo.split(",")]
    built: dict[tuple, object] = {}
    build_s: dict[str, float] = {}
    for n, two in sizes:
        t = time.perf_counter()
        built[n, two] = _hunt(n, 32 * (args.rounds + 2), two)
        build_s[f"{n}{' (2 objectives)' if two else ''}"] = round(time.perf_counter() - t, 1)
    times: dict[tuple, list[dict]] = {k: [] for k in sizes}
    for _ in range(args.rounds):  # interleaved
        for k in sizes:
            times[k].append(_generation(built[k]))
    ckpt: dict[int, dict] = {}
    for n, two in sizes:
        if two:
            continue
        t = time.perf_counter()
        data = built[n, two].dumps()
        dump = time.perf_counter() - t
        t = time.perf_counter()
        Hunt.loads(data)
        ckpt[n] = {"bytes": len(data), "dump_seconds": round(dump, 3), "load_seconds": round(time.perf_counter() - t, 3)}

    def ms(two: bool) -> dict[int, dict[str, float]]:
        return {n: {k: round(statistics.median(g[k] for g in times[n, t]) * 1000, 3)
                    for k in ("ask", "tell", "summary", "total")} for n, t in sizes if t == two}

    one, mo = ms(False), ms(True)
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_start": load_start, "load_end": os.getloadavg()},
        "generation_ms_by_told": one,
        "growth": round(one[max(one)]["total"] / one[min(one)]["total"], 2),
        "generation_ms_by_told_two_objectives": mo,
        "growth_two_objectives": round(mo[max(mo)]["total"] / mo[min(mo)]["total"], 2) if mo else None,
        "checkpoint_by_told": ckpt,
        "build_seconds": build_s,
    }))


if __name__ == "__main__":
    main()
