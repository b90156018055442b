"""``huntflow worker``: a warm worker for a work pool (:mod:`huntflow.flows.warm`)."""

from __future__ import annotations

from typing import Optional

import typer

from huntflow.flows.cli.common import console


def worker(
    pool: str = typer.Option("gpu", "--pool", "-p", help="the work pool to serve (a process pool, e.g. gpu)"),
    limit: int = typer.Option(1, "--limit", min=1, help="generations evaluating at once (1 per device: they queue)"),
    prefetch: int = typer.Option(1, "--prefetch", min=0, help="runs claimed ahead of the device: started while"
                                 " the previous generation evaluates, each waits for a free slot"),
    poll: float = typer.Option(0.5, "--poll", min=0.05, help="seconds between polls of the pool"),
    ticks: str = typer.Option("local", "--ticks", help="where a finished generation's next tick runs:"
                              " local (in this process, at once) or deployment (HUNTFLOW_TICK_DEPLOYMENT)"),
    name: Optional[str] = typer.Option(None, "--name", help="the worker's name in the Prefect UI"),
    run_once: bool = typer.Option(False, "--run-once", help="poll once, finish what started, exit"),
    warm_up: bool = typer.Option(True, "--warm-up/--no-warm-up", help="compile the executables of the active pool"
                                 " campaigns' first generations as soon as they appear (before they are dispatched)"),
) -> None:
    """Serve a work pool from this long-lived process: each flow run (a generation) runs here,
    with JAX, compiled executables and the device kept warm between generations, and a finished
    generation's campaign is ticked here at once. Replaces `prefect worker start --pool gpu`
    (which starts a process per run); needs PREFECT_API_URL and the database settings."""
    import os

    from huntflow.errors import InputError

    if ticks not in ("local", "deployment"):
        raise InputError(f"--ticks: must be local or deployment, got {ticks!r}")
    if not os.environ.get("PREFECT_API_URL"):
        raise InputError("PREFECT_API_URL: a worker serves a Prefect server's work pool; set it")
    from huntflow.flows.warm import serve

    console.print(f"warm worker on pool [bold]{pool}[/] (limit {limit}, prefetch {prefetch}, poll {poll:g} s,"
                  f" ticks {ticks}{', warm-up' if warm_up else ''})")
    serve(pool, limit=limit, poll_seconds=poll, ticks=ticks, name=name, run_once=run_once, prefetch=prefetch,
          warm_up=warm_up)


def register(app: typer.Typer) -> None:
    app.command()(worker)
