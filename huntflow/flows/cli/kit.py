"""``huntflow kit list | run | import``: generations that travel as kit directories
(``HUNTFLOW_OPERATOR=manual``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from huntflow.flows.cli.common import JSON_OPTION, console, fail, show_table

app = typer.Typer(help="Generations that travel as kit directories (HUNTFLOW_OPERATOR=manual): list, run, import.",
                  no_args_is_help=True)


@app.command("list")
def kit_list(as_json: bool = JSON_OPTION) -> None:
    """Kits that are out: manual generations dispatched and not yet imported."""
    from huntflow.store.connection import session
    from huntflow.tasks import kit

    with session() as conn:
        rows = kit.waiting(conn)
    if as_json:
        print(json.dumps(rows))
        return
    cols = ("campaign", "generation_index", "kind", "attempt", "kit")
    show_table(f"{len(rows)} kit(s) out", cols, ([r[c] for c in cols] for r in rows),
               keep=("campaign", "kit"))


@app.command("run")
def kit_run(directory: Path = typer.Argument(..., help="the kit directory (holds kit.json)"),
            trust_code: bool = typer.Option(False, "--trust-code",
                                            help="run a command, function or pythonpath the kit names "
                                                 "(code from outside: only for kits you trust)"),
            as_json: bool = JSON_OPTION) -> None:
    """Evaluate a kit here (no database needed): writes result.json and artifact.h5 into it.
    Runs only a model installed here unless --trust-code."""
    from huntflow.tasks import kit

    try:
        summary = kit.run_kit(directory, trust_code=trust_code)
    except kit.KitError as e:
        fail(str(e))
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"kit {escape(str(directory))}: {summary['ok']}/{summary['candidates']} ok in "
                      f"{summary['wall_seconds']} s; now `huntflow kit import {escape(str(directory))}`", soft_wrap=True)


@app.command("import")
def kit_import(directory: Path = typer.Argument(..., help="a kit directory after `huntflow kit run`"),
               as_json: bool = JSON_OPTION) -> None:
    """Store a run kit's result for its generation (refused, storing nothing, if it does not check out)."""
    from huntflow.store.connection import session
    from huntflow.tasks import kit

    from huntflow.errors import StoreError

    try:
        with session() as conn:
            summary = kit.import_kit(conn, directory)
    except (kit.KitError, StoreError) as e:
        fail(str(e))
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"imported generation {summary['generation_id']} of {escape(summary['campaign'])}:"
                      f" {summary['candidates']} candidates; the next tick parses it")
