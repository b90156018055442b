"""``huntflow tick | demo | serve``: the commands that run flows (at most one Prefect API per
process: the ephemeral one when ``PREFECT_API_URL`` is unset)."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from huntflow.flows.cli.common import JSON_OPTION, best_text, console, err, prefect_env, progress_rows
from huntflow.flows.cli.read import progress_table

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _campaign_ids(slug: str | None) -> list[str] | None:
    if slug is None:
        return None
    from huntflow.errors import InputError
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        try:
            return [str(campaigns.get_campaign(conn, slug)["campaign_id"])]
        except KeyError:
            raise InputError(f"no campaign {slug!r}") from None


def run_ticks(slug: str | None, until_done: bool, max_ticks: int, show_progress: bool = True,
              poll_seconds: float = 2.0, say: Any = console) -> tuple[int, Any]:
    """Run ticks back to back in this process; returns how many ran and the
    :class:`~huntflow.flows.until_done.Verdict` that stopped them (None: one tick, or max_ticks).
    One progress bar per campaign (evaluations used of its budget, its best with rung and
    certification, as ``status`` says it). After a tick that moved nothing, the loop waits
    (saying for what, on ``say``) or stops (:mod:`huntflow.flows.until_done`)."""
    prefect_env()
    from prefect import flow

    from huntflow.flows import artifacts
    from huntflow.flows.tick import no_heartbeats, run_tick

    @flow(name="hunt-tick", log_prints=True)
    def ticking() -> tuple[int, Any]:  # one flow run for the whole loop; each tick's stages are its task runs
        try:
            with owned_loop() as (beat, executor):
                return _tick_loop(slug, until_done, max_ticks, show_progress, poll_seconds,
                                  lambda only: run_tick(only, beat=beat), say, executor)
        finally:
            artifacts.flush()  # published in the background while the ticks ran

    with no_heartbeats():
        return ticking()


@contextlib.contextmanager
def owned_loop() -> Iterator[tuple[Any, Any]]:
    """``with owned_loop() as (beat, executor):`` — one lease owner (``loop:<id>``) and its
    heartbeat for all the ticks of a loop that owns its process, and the executor its inline
    generations run on (:mod:`huntflow.tasks.inline`) while the ticks go on. At the end the
    executor is drained (nothing left ``dispatched``), then the leases are released."""
    from uuid import uuid4

    from huntflow.store import leases
    from huntflow.store.connection import database_url, session
    from huntflow.tasks.inline import Executor

    owner = f"loop:{uuid4()}"
    with leases.Heartbeat(database_url(), owner) as beat:
        try:
            with Executor(owner) as executor:
                yield beat, executor
        finally:
            try:
                with session() as conn:
                    leases.release_all(conn, owner)
            except Exception:  # the leases go with the heartbeat's session anyway
                pass


def _tick_loop(slug: str | None, until_done: bool, max_ticks: int, show_progress: bool, poll_seconds: float,
               run_tick, say: Any = console, executor: Any = None) -> tuple[int, Any]:
    """The loop :func:`run_ticks` runs inside its one flow run. While the ``executor`` computes
    a generation of the loop, the next tick starts when one finishes (or at once when the last
    tick moved something), without polling."""
    from uuid import UUID

    from huntflow.flows import heap
    from huntflow.flows import until_done as ud
    from huntflow.store import waits
    from huntflow.store.connection import session

    only = _campaign_ids(slug)
    ids = [UUID(c) for c in only] if only else None

    def look(what):
        with session() as conn:
            return what(conn, ids)

    ticks = 0
    rows = look(waits.loop_rows)  # read after every tick: its cost follows the generation count
    started = {r["slug"] for r in rows if r["status"] == "active"}
    verdict, said, key, tick_next = None, None, look(waits.progress_key), True
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
                  console=console, disable=not show_progress or not until_done) as progress:
        bars = {r["slug"]: progress.add_task(escape(r["slug"]), total=max(1, r["evaluations_budget"]),
                                             completed=r["evaluations_used"], best=escape(best_text(r, 4)))
                for r in rows if r["status"] == "active"}
        while ticks < max_ticks:
            ran = executor.ran if executor is not None else 0
            if tick_next:
                run_tick(only)
                ticks += 1
                if ticks == 1:
                    heap.settle()  # warm now: the collector stops walking the imported heap
            rows = look(waits.loop_rows)
            for r in rows:
                if r["slug"] in bars:
                    progress.update(bars[r["slug"]], total=max(1, r["evaluations_budget"]),
                                    completed=min(r["evaluations_used"], r["evaluations_budget"]), best=escape(best_text(r, 4)))
            if not until_done:
                break
            verdict = ud.finished(rows, started)
            if verdict is not None:
                break
            before, key = key, look(waits.progress_key)
            if tick_next and before != key:
                continue  # work moved: tick again at once
            if executor is not None and (executor.busy() or executor.ran > ran):
                # ours computes (the loop keeps its lease meanwhile): tick once it is done
                executor.wait_past(ran, max(poll_seconds, 0.1))
                tick_next = True
                continue
            verdict = ud.decide(look(waits.blockers), poll_seconds)
            if not tick_next and verdict.tick_after and verdict.action != "stop":
                tick_next = True  # the lease we waited for is free: tick now
                continue
            if verdict.message and verdict.message != said:
                say.print(verdict.message)
                said = verdict.message
            if verdict.action == "stop":
                break
            time.sleep(verdict.seconds)
            tick_next = verdict.tick_after
    if verdict is not None and verdict.action == "stop" and verdict.message and verdict.message != said:
        say.print(verdict.message)
    return ticks, verdict


def tick(
    until_done: bool = typer.Option(False, "--until-done", help="tick back to back until no campaign is active"
                                    " (exit 1 when one failed, 3 when the rest wait for a decision)"),
    campaign: Optional[str] = typer.Option(None, "--campaign", "-c", help="only this campaign (slug)"),
    max_ticks: int = typer.Option(10_000, "--max-ticks", min=1, help="stop after this many ticks"),
    poll: float = typer.Option(2.0, "--poll", min=0.0,
                               help="seconds to wait after a tick that moved nothing, before looking again"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the hunt-tick flow now, once or until done."""
    n, verdict = run_ticks(campaign, until_done, max_ticks, poll_seconds=poll, show_progress=not as_json,
                           say=err if as_json else console)
    if as_json:
        print(json.dumps(_ran(n, verdict, progress_rows(campaign))))
    else:
        progress_table(progress_rows(campaign), title=f"after {n} tick(s)")
    if verdict is not None and verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


def _ran(ticks: int, verdict: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``tick --json`` / ``demo --json`` print: ticks run, why they stopped, the campaigns."""
    stopped = None if verdict is None else {"action": verdict.action, "message": verdict.message,
                                            "exit_code": verdict.exit_code}
    return {"ticks": ticks, "stopped": stopped, "campaigns": rows}


def demo(
    spec_file: Path = typer.Option(EXAMPLES / "rosenbrock_4d.yaml", "--spec", help="campaign spec to run"),
    max_ticks: int = typer.Option(500, "--max-ticks", min=1),
    tolerance: float = typer.Option(1e-2, "--tolerance", help="allowed distance of the best objective from the known optimum"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add the example campaign and tick until it is done (embedded Postgres, ephemeral Prefect)."""
    _open_store_soon()  # the database starts beside the API, the warm-up's imports and compile
    prefect_env(wait=False)  # the API is spawned now; its answer is awaited in a thread
    try:
        _demo(spec_file, max_ticks, tolerance, as_json)
    finally:
        # Nothing is left to collect: skip the interpreter's last garbage collection over
        # Prefect's, JAX's and nevergrad's heaps (1-7 s at exit on this machine); the atexit
        # handlers (the API's stop, the database's release) still run.
        gc.freeze()


def _demo(spec_file: Path, max_ticks: int, tolerance: float, as_json: bool) -> None:
    from huntflow.engine.spec import load_spec
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    spec = load_spec(spec_file)
    _warm(spec)  # needs no database: the embedded server starts meanwhile (_open_store_soon)
    with session() as conn:
        slug, n = spec.slug, 1
        while True:
            try:
                campaigns.get_campaign(conn, slug)
            except KeyError:
                break
            n += 1
            slug = f"{spec.slug}-{n}"
        spec = spec.model_copy(update={"slug": slug})
        campaigns.insert_campaign(conn, spec)
    model = spec.model.resolve().jax
    say = err if as_json else console
    say.print(f"demo campaign [bold]{escape(slug)}[/]: {escape(spec.title or spec.model.label)}")
    ticks, stopped = run_ticks(slug, True, max_ticks, show_progress=not as_json, say=say)
    rows = progress_rows(slug)
    known = model.known_optimum(spec.param_names, spec.model.fixed) if model is not None else None
    best = rows[0]["best_objective"]
    gap = abs(best - known.value) if known is not None and best is not None else None
    if as_json:
        print(json.dumps({**_ran(ticks, stopped, rows), "known_optimum": None if known is None else known.value,
                          "gap": gap, "tolerance": tolerance}))
    else:
        progress_table(rows, title=f"{slug} after {ticks} tick(s)")
    if stopped is not None and stopped.exit_code:
        raise typer.Exit(stopped.exit_code)
    if gap is not None:
        if not as_json:
            verdict = "[green]within[/]" if gap <= tolerance else "[red]outside[/]"
            console.print(f"best objective {best:.6g}; known optimum {known.value:g}; gap {gap:.3g} {verdict} tolerance {tolerance:g}")
        if gap > tolerance:
            raise typer.Exit(1)


def _open_store_soon() -> threading.Thread:
    """Start the embedded database and apply the migrations in a thread (initdb and the server's
    start are subprocesses: the GIL is free for the warm-up meanwhile). The first ``session()``
    waits for it; a failure is raised there again, in the command's own words."""

    def start() -> None:
        from huntflow.store.connection import session

        try:
            with session():
                pass
        except Exception:
            pass

    thread = threading.Thread(target=start, name="store-start", daemon=True)
    thread.start()
    return thread


def _warm(spec: Any) -> None:
    """While the API starts: what the first tick would otherwise wait for — the tick's and
    Prefect's engine modules, the optimizer's import and first ask (a throwaway hunt; the tick
    starts its own from the same seed) and the model's compiled executable for the first
    generation (kept in this process). The executable compiles in a thread beside the rest:
    XLA's compile runs without the GIL, the imports and the ask need it."""
    from huntflow.tasks.warmup import warm_campaign

    compiling = threading.Thread(target=warm_campaign, args=(spec,), name="demo-warm-compile", daemon=True)
    compiling.start()  # warm_campaign never raises (a failure is logged; the tick compiles)
    import prefect.flow_engine  # noqa: F401  (imported here, not after the API answers)
    import prefect.task_engine  # noqa: F401

    import huntflow.flows.tick  # noqa: F401
    from huntflow.engine.optimize import Hunt

    try:
        Hunt.start(spec).ask()
    except Exception:  # the tick meets the same problem and says it in its own words
        pass
    compiling.join()


def serve(
    interval_minutes: float = typer.Option(5.0, "--interval", help="minutes between scheduled ticks"),
) -> None:
    """Serve the hunt-tick flow on a schedule from this process (no work pool needed): the
    scheduled ticks (an overlapping one is dropped) and the campaigns' own chained ticks."""
    prefect_env()
    from prefect import serve as prefect_serve
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from huntflow.flows.tick import hunt_tick

    prefect_serve(
        hunt_tick.to_deployment(name="every-5-minutes", interval=interval_minutes * 60,
                                concurrency_limit=ConcurrencyLimitConfig(
                                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)),
        hunt_tick.to_deployment(name="chained", concurrency_limit=4),
    )


def register(app: typer.Typer) -> None:
    app.command()(tick)
    app.command()(demo)
    app.command()(serve)
