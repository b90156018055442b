"""What the orchestration-overhead benchmark's sections share: the run's scratch directory (set
in the environment before huntflow is imported), the demo campaign, and small helpers."""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(tempfile.mkdtemp(prefix="huntflow-bench-"))
if not os.environ.get("HUNTFLOW_BENCH_KEEP"):  # removed at exit, after the embedded server's own stop (atexit: last in, first out)
    atexit.register(shutil.rmtree, DATA, ignore_errors=True)
os.environ["HUNTFLOW_DATA_DIR"] = str(DATA / "data")
os.environ["PREFECT_HOME"] = str(DATA / "prefect-home")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ["HUNTFLOW_OPERATOR"] = "inline"


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def demo_spec(slug: str, budget: int | None = None, **update):
    from huntflow.engine.spec import load_spec

    spec = load_spec(ROOT / "examples" / "rosenbrock_4d.yaml")
    if budget is not None:
        update["budget"] = spec.budget.model_copy(update={"evaluations": budget})
    return spec.model_copy(update={"slug": slug, **update})


def add_campaign(spec) -> uuid.UUID:
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        return campaigns.insert_campaign(conn, spec)


def stage_seconds(cid: uuid.UUID, last: int) -> dict:
    from huntflow.store.connection import session

    with session() as conn:
        rows = conn.execute(
            "select stage::text as stage, extract(epoch from finished_at - started_at) as s from hunt.stage_runs"
            " where campaign_id = %s and finished_at is not null order by started_at desc limit %s",
            (cid, last * 6),
        ).fetchall()
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["stage"], []).append(float(r["s"]))
    return {k: med(v) for k, v in by.items()}


def tick_seconds(cids: list[uuid.UUID] | None) -> float:
    """One tick of the given campaigns (all active ones when None), in seconds."""
    from huntflow.flows.tick import run_tick

    t = time.perf_counter()
    run_tick([str(c) for c in cids] if cids else None)
    return time.perf_counter() - t
