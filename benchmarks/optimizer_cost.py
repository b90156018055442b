"""The optimizer's own cost per generation on the demo campaign (examples/rosenbrock_4d.yaml:
NGOpt, 4 parameters, population 32, budget 2400), interleaved in one run.

* ``backend``: two NGOpt backends built alike, walked through the demo's whole budget side by
  side, generation by generation (32 asks, then 32 tells of the 4-D Rosenbrock): ``upstream``
  drives nevergrad as shipped (``ngfast.upstream()``, nevergrad's own ``learn_on_k_best``),
  ``huntflow`` through :class:`~huntflow.engine.optimize.backends.NevergradBackend` with
  huntflow's shortcuts (:mod:`~huntflow.engine.optimize.ngfast`, ``metamodel``, ``powell``).
  Each generation's candidates are hashed: ``identical`` says whether both asked the same
  points bit for bit all the way.
* ``hunt``: :class:`~huntflow.engine.optimize.Hunt` on the demo spec (what evolve drives:
  dedup, decode, decisions, telling), ask + tell per generation, and where it ends: the best
  objective and whether it was certified within the target's gap (``best <= 0.01``).

Times are per generation of 32 (median and mean over the budget's generations, ms), process
CPU time of this single-threaded loop. Usage: ``python benchmarks/optimizer_cost.py
[--generations N]``; the last stdout line is one JSON object (with the load average).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

SPEC = Path(__file__).resolve().parent.parent / "examples" / "rosenbrock_4d.yaml"


def rosenbrock(x: np.ndarray) -> float:
    return float(sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1)))


def _spec():
    import yaml

    from huntflow.engine.spec import parse_spec

    return parse_spec(yaml.safe_load(SPEC.read_text()))


def _stats(xs: list[float]) -> dict:
    return {"median_ms": round(1e3 * statistics.median(xs), 3), "mean_ms": round(1e3 * statistics.fmean(xs), 3)}


def backend_section(generations: int) -> dict:
    """Upstream nevergrad and huntflow's backend, interleaved generation by generation."""
    from nevergrad.optimization import metamodel as ng_metamodel
    from nevergrad.optimization import optimizerlib

    from huntflow.engine.optimize import metamodel, ngfast
    from huntflow.engine.optimize.backends import make_backend

    spec = _spec()
    low, high = -2.0, 2.0
    args = ("ngopt", len(spec.param_names), spec.seed, spec.budget.evaluations, spec.optimizer.population)
    up, ours = make_backend(*args), make_backend(*args)
    n = spec.optimizer.population
    times = {"upstream": {"ask": [], "tell": []}, "huntflow": {"ask": [], "tell": []}}
    same = True
    best = {"upstream": np.inf, "huntflow": np.inf}

    def gen_upstream() -> bytes:
        with ngfast.upstream(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizerlib.learn_on_k_best = ng_metamodel.learn_on_k_best
            try:
                t0 = time.process_time()
                cands = [up.optimizer.ask() for _ in range(n)]
                t1 = time.process_time()
                us = [np.clip(np.asarray(c.value, dtype=float), 0.0, 1.0) for c in cands]
                losses = [rosenbrock(low + u * (high - low)) for u in us]
                t2 = time.process_time()
                for c, loss in zip(cands, losses):
                    up.optimizer.tell(c, loss)
                t3 = time.process_time()
            finally:
                metamodel.install()
        times["upstream"]["ask"].append(t1 - t0)
        times["upstream"]["tell"].append(t3 - t2)
        best["upstream"] = min(best["upstream"], *losses)
        return b"".join(u.tobytes() for u in us)

    def gen_ours() -> bytes:
        t0 = time.process_time()
        asked = [ours.ask() for _ in range(n)]
        t1 = time.process_time()
        losses = [rosenbrock(low + u * (high - low)) for _, u in asked]
        t2 = time.process_time()
        for (token, _), loss in zip(asked, losses):
            ours.tell(token, loss)
        t3 = time.process_time()
        times["huntflow"]["ask"].append(t1 - t0)
        times["huntflow"]["tell"].append(t3 - t2)
        best["huntflow"] = min(best["huntflow"], *losses)
        return b"".join(u.tobytes() for _, u in asked)

    for g in range(generations):
        a, b = (gen_upstream(), gen_ours()) if g % 2 else (gen_ours(), gen_upstream())[::-1]
        same = same and hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    out = {"generations": generations, "population": n, "identical": same,
           "best_f": {k: float(v) for k, v in best.items()}}
    for k, t in times.items():
        out[k] = {"ask": _stats(t["ask"]), "tell": _stats(t["tell"]),
                  "ask_plus_tell": _stats([a + b for a, b in zip(t["ask"], t["tell"])])}
    out["speedup_ask_plus_tell"] = round(statistics.fmean(a + b for a, b in zip(*times["upstream"].values()))
                                         / statistics.fmean(a + b for a, b in zip(*times["huntflow"].values())), 2)
    return out


def hunt_section() -> dict:
    """The demo spec through Hunt.ask/tell to its whole budget (search and certification)."""
    from huntflow.engine.optimize import Hunt, Outcome

    spec = _spec()
    hunt = Hunt.start(spec)
    ask_t, tell_t = [], []
    while True:
        t0 = time.process_time()
        ask = hunt.ask("explore")
        t1 = time.process_time()
        if ask is None:
            break
        outs = [Outcome("ok", {"f": rosenbrock(np.array([c[n] for n in spec.param_names]))}) for c in ask.candidates]
        t2 = time.process_time()
        hunt.tell(ask.ask_id, outs)
        t3 = time.process_time()
        if ask.kind == "search" and len(ask.candidates) == spec.optimizer.population:
            ask_t.append(t1 - t0)
            tell_t.append(t3 - t2)
    s = hunt.summary()
    best_f = s["best_objective"]
    return {"search_generations": len(ask_t), "ask": _stats(ask_t), "tell": _stats(tell_t),
            "ask_plus_tell": _stats([a + b for a, b in zip(ask_t, tell_t)]),
            "best_f": best_f, "best_certified": s["best_certified"], "certified": len(s["certified"]),
            "best_param_hash": s["best_param_hash"], "within_gap_0.01": best_f is not None and best_f <= 0.01}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=None, help="backend generations (default: the demo's budget)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["backend", "hunt"])
    args = ap.parse_args(argv)
    spec = _spec()
    gens = args.generations or spec.budget.evaluations // spec.optimizer.population
    load0 = os.getloadavg()
    out: dict = {"benchmark": "optimizer_cost", "spec": SPEC.name}
    if "backend" not in args.skip:
        out["backend"] = backend_section(gens)
    if "hunt" not in args.skip:
        out["hunt"] = hunt_section()
    import nevergrad

    out["machine"] = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                      "nevergrad": nevergrad.__version__, "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
