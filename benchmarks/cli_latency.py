"""How long read-only ``huntflow`` commands take, this tree against a baseline commit.

Each command runs as a fresh process (``python -m huntflow.flows.cli ...``), as a user types it,
against one Postgres that is already up (an embedded pgserver this script starts and holds, so
neither side pays for starting it) holding one small campaign with its evaluations (``huntflow tick
--until-done --max-ticks 3`` of this tree, not timed: the first tick asks, the second evaluates). The baseline is the code of ``--baseline`` (default
0ada28e, the last commit whose ``summary``/``report`` imported JAX; 08fe424 is the one whose
``status`` did too) exported with ``git archive`` and put first on ``PYTHONPATH``; both sides
use this ``.venv``. Runs are interleaved (baseline, this, baseline, ...) so load changes hit
both alike; the median wall time of ``--repeat`` runs is reported per command, with the load
average before and after. A run past ``--timeout`` counts as that many seconds (and is counted).

    uv run --frozen python benchmarks/cli_latency.py [--repeat 3] [--baseline REF] [--timeout 120]

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["status", "--json"], ["gate", "list", "--json"], ["kit", "list", "--json"],
            ["summary", "bench-cli", "--json", "--no-plots"], ["summary", "bench-cli", "--json"],
            ["report", "bench-cli", "--json"]]


def _export(ref: str, into: Path) -> Path:
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "huntflow", "supabase"], check=True,
                         capture_output=True).stdout
    path = into / "baseline.tar"
    path.write_bytes(tar)
    with tarfile.open(path) as t:
        t.extractall(into / "baseline", filter="data")
    return into / "baseline"


def _time(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path) -> tuple[float, bool]:
    """Wall seconds of one fresh ``huntflow`` process, and whether it ran past ``timeout``.

    ``cwd`` is a directory holding no ``huntflow`` package: ``python -m`` puts the working
    directory first on ``sys.path``, ahead of ``PYTHONPATH``."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "huntflow.flows.cli", *cmd], env=env, capture_output=True,
                           text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return timeout, True
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {r.stderr[-1000:]}")
    return took, False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", default="0ada28e", help="git ref to compare with")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one command may take")
    args = ap.parse_args()
    ref = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], check=True,
                         capture_output=True, text=True).stdout.strip()
    import pgserver

    with tempfile.TemporaryDirectory(prefix="huntflow-cli-bench-") as tmp:
        tmp = Path(tmp)
        base = _export(ref, tmp)
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        try:
            env = {**os.environ, "SUPABASE_DB_URL": server.get_uri(), "HUNTFLOW_DATA_DIR": str(tmp / "data"),
                   "COLUMNS": "120", "PREFECT_HOME": str(tmp / "prefect")}
            sides = {"baseline": {**env, "PYTHONPATH": str(base)}, "this": {**env, "PYTHONPATH": str(ROOT)}}
            for side, tree in (("baseline", base), ("this", ROOT)):  # each side runs its own code
                found = subprocess.run([sys.executable, "-c", "import huntflow; print(huntflow.__file__)"],
                                       env=sides[side], cwd=tmp, capture_output=True, text=True,
                                       check=True).stdout.strip()
                assert Path(found).is_relative_to(tree), (side, found)
            # the baseline migrates first (it knows fewer migrations); then this tree adds its own
            subprocess.run([sys.executable, "-m", "huntflow.flows.cli", "status"], env=sides["baseline"],
                           check=True, capture_output=True, cwd=tmp)
            spec = tmp / "spec.yaml"
            spec.write_text("slug: bench-cli\nmodel: {name: sphere}\nspace: {x0: {low: -1, high: 1}}\n"
                            "objectives: [{metric: f}]\nbudget: {evaluations: 8}\n")
            # stored by the baseline: this tree reads older specs, the baseline may not know newer fields
            subprocess.run([sys.executable, "-m", "huntflow.flows.cli", "campaign", "add", str(spec)],
                           env=sides["baseline"], check=True, capture_output=True, cwd=tmp)
            t0 = time.perf_counter()  # evaluations to summarize and report on (inline generations)
            subprocess.run([sys.executable, "-m", "huntflow.flows.cli", "tick", "--until-done", "--max-ticks", "3"],
                           env=sides["this"], check=True, capture_output=True, timeout=900, cwd=tmp)
            setup_seconds = time.perf_counter() - t0
            evaluated = json.loads(subprocess.run([sys.executable, "-m", "huntflow.flows.cli", "status", "--json"],
                                                  env=sides["this"], check=True, capture_output=True,
                                                  text=True, cwd=tmp).stdout)[0]["evaluations_succeeded"]
            load_before = os.getloadavg()
            times: dict[str, dict[str, list[float]]] = {" ".join(c): {"baseline": [], "this": []} for c in COMMANDS}
            timeouts = {"baseline": 0, "this": 0}
            for _ in range(args.repeat):
                for cmd in COMMANDS:
                    for side in ("baseline", "this"):
                        took, late = _time(cmd, sides[side], args.timeout, tmp)
                        times[" ".join(cmd)][side].append(took)
                        timeouts[side] += late
            load_after = os.getloadavg()
        finally:
            server.cleanup()
    result = {
        "benchmark": "cli_latency", "baseline": ref[:12], "repeat": args.repeat,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s)", "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after], "timeouts": timeouts,
        "setup_tick_seconds": round(setup_seconds, 1), "evaluations_succeeded": evaluated,
        "median_seconds": {c: {s: round(statistics.median(v), 3) for s, v in d.items()} for c, d in times.items()},
        "speedup": {c: round(statistics.median(d["baseline"]) / statistics.median(d["this"]), 2) for c, d in times.items()},
    }
    for c, d in result["median_seconds"].items():
        print(f"{c:32s} baseline {d['baseline']:6.2f} s   this {d['this']:6.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
