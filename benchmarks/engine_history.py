"""The hunt's own cost per generation as its history grows: ask + tell + summary of one
:class:`~huntflow.engine.optimize.Hunt` (the demo's 4-D space, population 32, random search so
the optimizer library costs next to nothing: what is left is huntflow's engine) with 2 000,
32 000 and 96 000 told evaluations, and what its checkpoint costs at each size.

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


def _outcomes(candidates: list[dict]) -> list:
    from huntflow.engine.optimize import Outcome

    out = []
    for c in candidates:
        x = np.array([c[f"x{i}"] for i in range(4)])
        f = float(sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3)))
        out.append(Outcome("ok", {"f": f}))
    return out


def _hunt(told: int, spare: int):
    """A random-search hunt of the demo's space with ``told`` told evaluations and room for
    ``spare`` more."""
    from huntflow.engine.optimize import Hunt
    from huntflow.engine.spec import load_spec

    spec = load_spec(SPEC)
    spec = spec.model_copy(update={
        "slug": f"engine-history-{told}", "budget": spec.budget.model_copy(update={"evaluations": told + spare}),
        "optimizer": spec.optimizer.model_copy(update={"name": "random", "options": {}})})
    hunt = Hunt.start(spec)
    while len(hunt.evals) < told:
        ask = hunt.ask("explore")
        hunt.tell(ask.ask_id, _outcomes(ask.candidates))
    return hunt


def _generation(hunt) -> dict[str, float]:
    t0 = time.perf_counter()
    ask = hunt.ask("explore")
    t1 = time.perf_counter()
    hunt.tell(ask.ask_id, _outcomes(ask.candidates))
    t2 = time.perf_counter()
    hunt.summary()
    t3 = time.perf_counter()
    return {"ask": t1 - t0, "tell": t2 - t1, "summary": t3 - t2, "total": t3 - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,32000,96000", help="told evaluations per hunt")
    ap.add_argument("--rounds", type=int, default=20, help="measured generations of each hunt")
    args = ap.parse_args()
    from huntflow.engine.optimize import Hunt

    load_start = os.getloadavg()
    sizes = [int(s) for s in args.sizes.split(",")]
    built: dict[int, object] = {}
    build_s: dict[int, float] = {}
    for n in sizes:
        t = time.perf_counter()
        built[n] = _hunt(n, 32 * (args.rounds + 2))
        build_s[n] = round(time.perf_counter() - t, 1)
    times: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(args.rounds):  # interleaved
        for n in sizes:
            times[n].append(_generation(built[n]))
    ckpt: dict[int, dict] = {}
    for n in sizes:
        t = time.perf_counter()
        data = built[n].dumps()
        dump = time.perf_counter() - t
        t = time.perf_counter()
        Hunt.loads(data)
        ckpt[n] = {"bytes": len(data), "dump_seconds": round(dump, 3), "load_seconds": round(time.perf_counter() - t, 3)}
    ms = {n: {k: round(statistics.median(g[k] for g in times[n]) * 1000, 3) for k in ("ask", "tell", "summary", "total")}
          for n in sizes}
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_start": load_start, "load_end": os.getloadavg()},
        "generation_ms_by_told": ms,
        "growth": round(ms[sizes[-1]]["total"] / ms[sizes[0]]["total"], 2),
        "checkpoint_by_told": ckpt,
        "build_seconds": build_s,
    }))


if __name__ == "__main__":
    main()
