"""What every ``huntflow`` command shares: consoles, errors, JSON rows, tables that never cut.

Imports only typer/rich and leaf modules, so ``huntflow --help`` and the read-only commands
stay fast; each command imports the store, engine or Prefect it needs inside its body.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from huntflow.errors import InputError

console = Console()
err = Console(stderr=True)

PROGRESS_FIELDS = ("slug", "status", "mode", "stage", "generations", "evaluations", "evaluations_pending",
                   "evaluations_succeeded", "evaluations_failed", "evaluations_rejected", "evaluations_filtered",
                   "evaluations_budget", "best_objective", "best_fidelity", "best_fidelity_name", "best_certified",
                   "completion_reason", "gates_pending")

JSON_OPTION = typer.Option(False, "--json", help="print JSON (for scripts) instead of a table")


def fail(message: str) -> None:
    """Refuse a bad argument: one line on stderr, exit 2 (the CLI's error handler prints it)."""
    raise InputError(message)


EPHEMERAL_API_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The API writes each task run from its state-change events (three per task run, six task
    # runs per tick); by default one transaction per event, which cost the ephemeral API ~2x the
    # CPU of batches written at most a second apart (the UI shows a task run <= 1 s later).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}
"""Environment defaults (a value already set wins) for the Prefect API a command starts itself
(the ephemeral one inherits this process's environment). What only that server may be given —
no automations, no event stream-out, an uncompressed events websocket — is added to its own
environment alone (:data:`huntflow.flows.ephemeral.SERVER_DEFAULTS`), so no ``prefect server``
a child process starts inherits it."""


def prefect_defaults() -> None:
    """Apply :data:`EPHEMERAL_API_DEFAULTS` (before the API starts)."""
    for key, value in EPHEMERAL_API_DEFAULTS.items():
        os.environ.setdefault(key, value)


def prefect_env(wait: bool = True) -> None:
    """Defaults that make the ephemeral Prefect API start reliably on a small machine and ingest
    task runs cheaply (:data:`EPHEMERAL_API_DEFAULTS`), and the API started (``wait=False``:
    starting in a thread, for a command with its own start to do)."""
    prefect_defaults()
    from huntflow.flows.ephemeral import start_guarded, start_soon

    if wait:
        start_guarded()  # the ephemeral API, stopped by a watchdog should this process be killed
    else:
        start_soon()


def plain(value: Any) -> Any:
    """A JSON-able scalar (UUIDs, datetimes, Decimals become strings)."""
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    if isinstance(value, (dict, list)):
        return value
    return str(value)


def progress_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(row.get(k)) for k in PROGRESS_FIELDS}


def progress_rows(slug: str | None = None) -> list[dict[str, Any]]:
    """``hunt.campaign_progress`` rows as JSON-able dicts (all campaigns, or ``slug``'s)."""
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        return [progress_json(r) for r in campaigns.progress(conn, slug)]


def number(v: Any) -> str:
    return "—" if v is None else f"{v:.6g}"


def best_text(row: dict[str, Any], digits: int = 6) -> str:
    """The campaign's best as every command says it: value, rung, certified or not."""
    best = row.get("best_objective")
    if best is None:
        return "—"
    rung = row.get("best_fidelity_name") or "?"
    mark = "certified" if row.get("best_certified") else "not certified"
    return f"{best:.{digits}g} ({rung}, {mark})"


def show_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               keep: Iterable[str] = (), right: Iterable[str] = ()) -> None:
    """Print a table whose ``keep`` columns (slugs, paths: values a user copies) are never cut.

    Those columns never wrap, and the table is printed at least as wide as they need, whatever
    the terminal width or when the output is piped (the terminal may soft-wrap the line; the
    text stays whole). Other columns wrap.
    """
    keep, right = set(keep), set(right)
    table = Table(title=title)
    for col in columns:
        table.add_column(col, no_wrap=col in keep, overflow="ignore" if col in keep else "fold",
                         justify="right" if col in right else "left")
    for r in rows:  # cells are text, never rich markup (rung names, messages are user text)
        table.add_row(*("" if v is None else escape(str(v)) for v in r))
    need = Measurement.get(console, console.options.update_width(10_000), table).minimum
    out = console if need <= console.width else Console(
        file=console.file, width=need, force_terminal=console.is_terminal, color_system=console.color_system)
    out.print(table)
