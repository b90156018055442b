"""What a steady tick costs the database: round trips per stage, counted on the real pgserver.

Not a timing test: it counts the client's waits on the server (each execute, each pipeline sync,
each BEGIN/COMMIT) while the demo campaign (4-D Rosenbrock, NGOpt, population 32) ticks inline,
the tick's path without Prefect (discover, the five stages under the lease guard, the failure
accounting, the event snapshots, the lease release). The bounds are what the code does today
plus a little slack; a change that adds round trips to every tick fails here with the per-stage
counts, so it is a decision and not an accident (see docs/architecture.md, "Round trips per tick").
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from huntflow.engine.spec import load_spec
from huntflow.flows import events
from huntflow.store import campaigns, connection
from huntflow.store.connection import session
from huntflow.store.states import Stage
from huntflow.tasks import discover, dispatch, evolve, learn, parse, poison, review
from huntflow.tasks._stage import TickContext, end_campaign, run_stage

STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]
DEMO = Path(__file__).resolve().parents[2] / "examples" / "rosenbrock_4d.yaml"

BOUND_PER_TICK = 27
"""Round trips of one steady tick: ~23 measured (review varies with how many verification batches
it runs); ~127 before statements were merged and pipelined, ~32 before discover became one
statement and a stage's closing rode on the next stage's opening (learn's on the lease's release)."""
BOUND_PER_STAGE = {"discover": 1, "dispatch": 5, "parse": 3, "review": 11, "evolve": 3, "learn": 3,
                   "account": 1, "snapshots": 2, "release": 1}


class _Counter:
    """Counts round trips on this thread, by label: ``Connection.wait`` calls (one per execute,
    BEGIN or COMMIT) outside a pipeline, and one per pipeline block (its statements are sent
    together and waited for once, at its end; when a transaction inside it commits, the block's
    own closing Sync is a second, empty exchange, not counted)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.label: str | None = None
        self._thread = threading.current_thread()
        self._wait, self._pipeline = psycopg.Connection.wait, psycopg.Connection.pipeline
        self._depth = 0

    def _mine(self) -> bool:
        return self.label is not None and threading.current_thread() is self._thread

    def __enter__(self) -> _Counter:
        counter, wait_, pipeline_ = self, self._wait, self._pipeline

        def wait(conn, *args, **kwargs):
            if counter._mine() and counter._depth == 0:
                counter.counts[counter.label] += 1
            return wait_(conn, *args, **kwargs)

        @contextlib.contextmanager
        def pipeline(conn):
            counter._depth += 1
            try:
                with pipeline_(conn) as p:
                    yield p
            finally:
                counter._depth -= 1
                if counter._mine() and counter._depth == 0:
                    counter.counts[counter.label] += 1

        psycopg.Connection.wait, psycopg.Connection.pipeline = wait, pipeline
        return self

    def __exit__(self, *exc) -> None:
        psycopg.Connection.wait, psycopg.Connection.pipeline = self._wait, self._pipeline

    def run(self, label: str, fn, *args, **kwargs):
        self.label = label
        try:
            return fn(*args, **kwargs)
        finally:
            self.label = None


def _tick(cid, counter: _Counter | None = None) -> dict:
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="inline", guarded=True, chained=True)
    c = counter or _Counter()
    claimed = c.run("discover", discover.run, ctx, [cid])
    assert claimed == [cid]
    with session() as conn:
        c.run("snapshots", events.snapshots, conn, [cid])
    out = {stage.value: c.run(stage.value, run_stage, stage, ctx, cid, logic) for stage, logic in STAGES}
    for stage, summary in out.items():
        assert "lease_lost" not in summary, (stage, summary)
    c.run("account", poison.account, ctx.owner, cid, None, None)
    c.run("release", end_campaign, ctx, cid, release=True)  # learn's row closed with the release, as the tick does
    with session() as conn:
        c.run("snapshots", events.snapshots, conn, [cid])
    return out


@pytest.mark.usefixtures("prefect_harness")
def test_a_steady_tick_makes_few_round_trips(db, monkeypatch):
    # the pool's loan check of a connection idle 2 s (a slow machine) is no round trip of the tick's
    monkeypatch.setattr(connection, "CHECK_IDLE_SECONDS", 1e9)
    spec = load_spec(DEMO).model_copy(update={"slug": "round-trips"})
    cid = campaigns.insert_campaign(db, spec)
    for _ in range(3):  # warm: first asks, compiled batch, column lists cached, the pool filled
        _tick(cid)
    ticks = 3
    with _Counter() as counter:
        for _ in range(ticks):
            out = _tick(cid, counter)
    assert out["evolve"]["told"] == 1 and out["parse"], out  # a steady tick: one generation told, one asked
    per_stage = {k: v / ticks for k, v in counter.counts.items()}
    total = sum(per_stage.values())
    shown = ", ".join(f"{k} {v:g}" for k, v in sorted(per_stage.items()))
    assert total <= BOUND_PER_TICK, f"a steady tick makes {total:g} round trips (bound {BOUND_PER_TICK}): {shown}"
    over = {k: v for k, v in per_stage.items() if v > BOUND_PER_STAGE.get(k, 0)}
    assert not over, f"round trips over their stage's bound {BOUND_PER_STAGE}: {over} (all: {shown})"
