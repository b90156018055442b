"""The ``huntflow`` command line (typer + rich), one module per command group.

Commands that only read or write rows (``status``, ``summary``, ``report``, ``campaign``,
``gate``, ``kit``) and ``generation run`` never start Prefect, and none of them imports JAX or
Prefect unless it runs something: every module here imports what a command needs inside the
command, so ``--help`` and the read-only commands answer in about a second. Commands that run
flows (``tick``, ``demo``, ``serve``) start at most one Prefect API per process (the ephemeral
one when ``PREFECT_API_URL`` is unset).

Errors: a :class:`~huntflow.errors.HuntflowError` reaching the top is one line on stderr and
the process exits with its ``exit_code`` (2 for bad input, 1 otherwise); anything unexpected
is one line too and exit 1. ``--debug`` (or ``HUNTFLOW_DEBUG=1``) keeps the traceback.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer
from typer.core import TyperGroup

from huntflow.errors import HuntflowError

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it falls back to /tmp
# and warns on every command. The fallback is fine for huntflow.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")

DEBUG_ENV = "HUNTFLOW_DEBUG"


def _debugging(ctx: typer.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def _one_line(message: str) -> None:
    typer.echo(typer.style("error:", fg="red", bold=True) + " " + message, err=True)


class HuntflowGroup(TyperGroup):
    """The root command group: turns errors into one line and an exit code (see module doc)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except HuntflowError as e:
            if _debugging(ctx):
                raise
            _one_line(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _one_line("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:
            if _debugging(ctx):
                raise
            _one_line(f"unexpected {type(e).__name__}: {e} (run with --debug or {DEBUG_ENV}=1 for the traceback)")
            raise typer.Exit(1) from None


app = typer.Typer(cls=HuntflowGroup, help="huntflow: closed-loop parameter hunts.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help=f"show tracebacks (or set {DEBUG_ENV}=1)")) -> None:
    """huntflow: closed-loop parameter hunts."""


from huntflow.flows.cli import campaign, gate, generation, kit, read, run, worker  # noqa: E402  (register commands)

app.add_typer(campaign.app, name="campaign")
app.add_typer(gate.app, name="gate")
app.add_typer(generation.app, name="generation")
app.add_typer(kit.app, name="kit")
read.register(app)
run.register(app)
worker.register(app)
from huntflow.flows.db_cli import db_app  # noqa: E402  (the embedded database: db start|stop|status|url)
app.add_typer(db_app, name="db")

# kept importable from here (tests, benchmarks)
add_campaign_file = campaign.add_campaign_file
run_ticks = run.run_ticks


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
