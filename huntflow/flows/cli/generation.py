"""``huntflow generation run``: one generation evaluated in this process (what slurm jobs run)."""

from __future__ import annotations

import json
import os
from typing import Optional

import typer
from rich.markup import escape

from huntflow.flows.cli.common import JSON_OPTION, console, err, fail

app = typer.Typer(help="Run one generation by hand or from a batch job (the slurm operator's jobs do).",
                  no_args_is_help=True)


@app.command("run")
def generation_run(
    generation_id: str = typer.Argument(..., help="the generation's id (hunt.generations.generation_id)"),
    attempt: Optional[int] = typer.Option(None, "--attempt", min=1,
                                          help="run only if the generation is at this attempt (batch jobs pass theirs)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluate one planned or dispatched generation in this process (no Prefect): one batched
    JAX call, its HDF5 artifact, the result document and `succeeded`. A generation that already
    succeeded, or is at another attempt, is left alone. Exit 1 when the evaluation failed (the
    generation is sent back for another attempt; out of attempts it is failed, and with
    `PREFECT_API_URL` set `huntflow.campaign.generation.failed` is emitted)."""
    from uuid import UUID

    from huntflow.errors import HuntflowError

    try:
        UUID(generation_id)
    except ValueError:
        fail(f"generation id must be a UUID, got {generation_id!r}")
    from huntflow.tasks.execute import execute_generation

    try:
        summary = execute_generation(generation_id, attempt=attempt)
    except KeyError:
        fail(f"no generation {generation_id}")
    except Exception as e:
        if not isinstance(e, HuntflowError):
            err.print(f"[bold red]evaluation failed:[/] {escape(f'{type(e).__name__}: {e}')}", soft_wrap=True)
        if os.environ.get("PREFECT_API_URL"):  # out of attempts: tell the UI's automations (no tick saw it fail)
            from huntflow.flows.events import report_generation_failure

            if report_generation_failure(generation_id):
                err.print("reported huntflow.campaign.generation.failed (out of attempts)")
        if isinstance(e, HuntflowError):
            raise  # one line and its exit code from the root handler
        raise typer.Exit(1)
    from huntflow.config import get_settings

    if summary["status"] == "succeeded" and os.environ.get("PREFECT_API_URL") and get_settings().chain_ticks:
        from huntflow.flows.generation import trigger_tick

        summary["next_tick_triggered"] = trigger_tick(summary["campaign_id"])  # else the schedule picks it up
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"generation {generation_id}: {summary['status']}"
                      + (f", {summary['ok']}/{summary['candidates']} ok in {summary['wall_seconds']} s"
                         if summary["status"] == "succeeded" else f" (was {summary.get('was')})"))
