"""``huntflow db start | stop | status | url``: the embedded Postgres, kept up until told.

By default the embedded server stops when the last huntflow process using it exits. ``db start``
pins it, so psql, Studio or any client can keep reading it between commands (every huntflow
command reuses it); ``db stop`` unpins it and stops it once no huntflow process uses it
(``--force``: now). With ``SUPABASE_DB_URL`` set there is no embedded server to manage.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

db_app = typer.Typer(help="The embedded Postgres: start (and keep up), stop, status, url.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)


def _pgdata():
    from huntflow.config import get_settings

    settings = get_settings()
    if settings.supabase_db_url:
        _err.print("[bold red]error:[/] SUPABASE_DB_URL is set: huntflow uses that database, not an embedded one")
        raise typer.Exit(1)
    return settings.pgdata_dir


def _print(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info))
        return
    running = f"running (pid {info['pid']})" if info["running"] else "stopped"
    pinned = "kept up until `huntflow db stop`" if info["pinned"] else "stops when the last huntflow process exits"
    _out.print(f"embedded database {escape(info['pgdata'])}: {info['state']}, {running}, {pinned}")
    if info.get("handles"):
        _out.print(f"used by huntflow process(es): {', '.join(map(str, info['handles']))}")
    if info.get("url"):
        _out.print(f"url: {escape(info['url'])}")


@db_app.command("start")
def db_start(as_json: bool = typer.Option(False, "--json", help="print a JSON object")) -> None:
    """Start the embedded database (migrated) and keep it up after this command exits."""
    from huntflow.errors import StoreError
    from huntflow.store import embedded
    from huntflow.store.connection import connect

    pgdata = _pgdata()
    try:
        url = embedded.server(pgdata, keep=True).get_uri()
        connect(url).close()  # applies the migrations
    except StoreError as e:
        _err.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    _print(embedded.status(pgdata), as_json)


@db_app.command("stop")
def db_stop(force: bool = typer.Option(False, "--force", help="stop now, even while huntflow processes use it"),
            as_json: bool = typer.Option(False, "--json", help="print a JSON object")) -> None:
    """Stop the embedded database (once no huntflow process uses it, or now with --force)."""
    from huntflow.errors import StoreError
    from huntflow.store import embedded

    try:
        info = embedded.stop(_pgdata(), force=force)
    except StoreError as e:
        _err.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    if not as_json and info["still_used_by"]:
        _out.print(f"still used by huntflow process(es) {', '.join(map(str, info['still_used_by']))}:"
                   " it stops when the last one exits (or run `huntflow db stop --force`)")
    _print(info, as_json)


@db_app.command("status")
def db_status(as_json: bool = typer.Option(False, "--json", help="print a JSON object")) -> None:
    """Show whether the embedded database runs, is kept up, and who uses it (starts nothing)."""
    from huntflow.store import embedded

    _print(embedded.status(_pgdata()), as_json)


@db_app.command("url")
def db_url() -> None:
    """Print the running embedded database's URL (for psql or Studio)."""
    from huntflow.store import embedded

    url = embedded.running_url(_pgdata().resolve())
    if url is None:
        _err.print("[bold red]error:[/] the embedded database is not running; start it with `huntflow db start`")
        raise typer.Exit(1)
    print(url)
