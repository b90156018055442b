"""External models: orchestration cost per evaluation of the process pool, and its scaling.

For a trivial function (``{"f": x}``) and a trivial command (``/bin/echo`` printing a JSON
object) this measures, per evaluation, the wall time of

* a direct loop in this process: calling the function (``function/direct``), or
  ``subprocess.run`` of the program (``command/direct``) — the floor;
* ``evaluate_population`` with the model block (the path every operator takes): a fresh
  working directory per candidate, ``input.json``/``params.json`` written, the walltime
  enforced, metrics checked — with ``workers`` = 1, 2, 4, 8.

The function pool's workers stay warm between batches (as in a long-lived pool worker); their
start (a Python interpreter importing the module) is measured apart as ``function/cold``. Runs
are interleaved (every variant once per round, ``--rounds`` rounds) and the median per variant
reported, so all see the same background load; the load average at start and end is recorded.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRIVIAL = "def evaluate(params, *, fidelity, seed, workdir):\n    return {'f': float(params['x'])}\n"
ECHO = shutil.which("echo") or "/bin/echo"


def _direct_function(fn, xs) -> float:
    t0 = time.perf_counter()
    for i, x in enumerate(xs):
        fn({"x": float(x)}, fidelity={}, seed=i, workdir=Path("."))
    return time.perf_counter() - t0


def _direct_command(xs) -> float:
    t0 = time.perf_counter()
    for x in xs:
        out = subprocess.run([ECHO, json.dumps({"f": float(x)})], capture_output=True, text=True, check=True)
        json.loads(out.stdout)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=64, help="candidates per batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4,8")
    args = ap.parse_args()
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="huntflow-bench-external-"))
    (tmp / "bench_trivial_sim.py").write_text(TRIVIAL)
    sys.path.insert(0, str(tmp))
    import bench_trivial_sim  # noqa: E402

    from huntflow.engine.evaluate import evaluate_population
    from huntflow.engine.external import functions

    workers = [int(w) for w in args.workers.split(",")]
    xs = np.linspace(0, 1, args.evaluations)[:, None]
    models = {
        "function": lambda w: {"function": "bench_trivial_sim:evaluate", "metrics": ["f"], "workers": w,
                               "pythonpath": [str(tmp)], "walltime_seconds": 60},
        "command": lambda w: {"command": [ECHO, '{{"f": {params.x}}}'], "metrics": ["f"], "workers": w,
                              "walltime_seconds": 60},
    }

    def pooled(kind: str, w: int) -> float:
        wd = tmp / f"wd-{kind}-{w}"
        t0 = time.perf_counter()
        out = evaluate_population(models[kind](w), ("x",), xs, seed=0, workdir=wd)
        elapsed = time.perf_counter() - t0
        assert int(np.sum(out.status == 0)) == len(xs), out.failures
        shutil.rmtree(wd, ignore_errors=True)
        return elapsed

    cold = {}
    for w in workers:  # first batch per worker count starts the workers: measured apart
        cold[w] = pooled("function", w)
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        samples.setdefault("function/direct", []).append(_direct_function(bench_trivial_sim.evaluate, xs[:, 0]))
        samples.setdefault("command/direct", []).append(_direct_command(xs[:, 0]))
        for w in workers:
            for kind in ("function", "command"):
                samples.setdefault(f"{kind}/pool/workers={w}", []).append(pooled(kind, w))
    functions.close_pools()
    shutil.rmtree(tmp, ignore_errors=True)
    n = len(xs)
    per_eval_ms = {k: round(1e3 * statistics.median(v) / n, 4) for k, v in samples.items()}
    per_eval_ms.update({f"function/cold/workers={w}": round(1e3 * t / n, 4) for w, t in cold.items()})
    throughput = {k: round(n / statistics.median(v), 1) for k, v in samples.items()}
    result = {
        "benchmark": "external_models",
        "evaluations_per_batch": n,
        "rounds": args.rounds,
        "per_evaluation_ms": per_eval_ms,
        "evaluations_per_second": throughput,
        "overhead_vs_direct": {
            kind: {w: round(per_eval_ms[f"{kind}/pool/workers={w}"] / per_eval_ms[f"{kind}/direct"], 2) for w in workers}
            for kind in ("function", "command")
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_start": [round(x, 2) for x in load0],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
    }
    for k in sorted(per_eval_ms):
        print(f"{k:32s} {per_eval_ms[k]:10.3f} ms/evaluation")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
