"""``huntflow gate list | show | approve | reject``: the human decisions campaigns wait for."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.markup import escape

from huntflow.flows.cli.common import JSON_OPTION, console, fail, plain, show_table

app = typer.Typer(help="Human decisions campaigns wait for (spec.gates): list, show, approve, reject.",
                  no_args_is_help=True)


def _gate_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("gate_id", "slug", "kind", "status", "generation_id", "subject", "requested_at", "decided_at",
            "decided_by", "note")
    return {k: plain(row.get(k)) for k in keys}


def _gate_line(row: dict[str, Any]) -> str:
    subject = row["subject"] or {}
    if row["kind"] == "promotion":
        return (f"{subject.get('kind', 'promotion')} of {len(subject.get('candidates', []))} candidate(s)"
                f" to {subject.get('fidelity')!s}")
    best = subject.get("best") or {}
    return f"complete ({subject.get('reason')}), best {best.get('objective', '—')}"


@app.command("list")
def gate_list(
    slug: Optional[str] = typer.Argument(None, help="one campaign (default: all)"),
    every: bool = typer.Option(False, "--all", help="decided gates too, not only pending ones"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Gates waiting for a decision (or all of them with --all)."""
    from huntflow.store import gates
    from huntflow.store.connection import session

    with session() as conn:
        rows = gates.listing(conn, slug=slug, status=None if every else "pending")
    if as_json:
        print(json.dumps([_gate_json(r) for r in rows]))
        return
    show_table("gates" if every else "pending gates", ("gate", "campaign", "kind", "status", "what", "requested", "decided by"),
               ([str(r["gate_id"]), r["slug"], r["kind"], r["status"], _gate_line(r),
                 r["requested_at"].strftime("%Y-%m-%d %H:%M"), r["decided_by"] or ""] for r in rows),
               keep=("gate", "campaign"))


@app.command("show")
def gate_show(
    ref: str = typer.Argument(..., help="gate id (or its first 6+ characters), or a campaign slug with one pending gate"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Everything a gate asks about: the held candidates, or the completion reason and best."""
    from huntflow.store import gates
    from huntflow.store.connection import session

    with session() as conn:
        try:
            row = gates.resolve(conn, ref)
        except (KeyError, ValueError) as e:
            fail(str(e))
    if as_json:
        print(json.dumps(_gate_json(row), default=str))
        return
    console.print(f"[bold]gate {row['gate_id']}[/] ({escape(row['slug'])}, {row['kind']}, {row['status']}):"
                  f" {escape(_gate_line(row))}")
    console.print_json(json.dumps(row["subject"], default=str))


def _decide(ref: str, kind: Optional[str], approve: bool, by: Optional[str], note: str, as_json: bool) -> None:
    import getpass

    from huntflow.errors import TerminalStateError
    from huntflow.store import gates
    from huntflow.store.connection import session

    who = by or getpass.getuser()
    with session() as conn:
        try:
            row = gates.resolve(conn, ref, kind)
            decided = gates.decide(conn, row["gate_id"], approve, who, note)
        except (KeyError, ValueError, TerminalStateError) as e:
            fail(str(e))
    decided["slug"] = row["slug"]
    if as_json:
        print(json.dumps(_gate_json(decided), default=str))
        return
    console.print(f"gate {decided['gate_id']} ({escape(row['slug'])}, {decided['kind']}) {decided['status']}"
                  f" by {escape(who)}; the campaign's next tick acts on it")


_KIND = typer.Option(None, "--kind", help="promotion or completion (when a slug is given and both are pending)")
_BY = typer.Option(None, "--by", help="who decides (default: the current user)")
_NOTE = typer.Option("", "--note", help="why (stored with the decision)")


@app.command("approve")
def gate_approve(ref: str = typer.Argument(..., help="gate id, 6+ character prefix, or campaign slug"),
                 kind: Optional[str] = _KIND, by: Optional[str] = _BY, note: str = _NOTE,
                 as_json: bool = JSON_OPTION) -> None:
    """Approve a pending gate: the held generation launches, or the campaign completes."""
    _decide(ref, kind, True, by, note, as_json)


@app.command("reject")
def gate_reject(ref: str = typer.Argument(..., help="gate id, 6+ character prefix, or campaign slug"),
                kind: Optional[str] = _KIND, by: Optional[str] = _BY, note: str = _NOTE,
                as_json: bool = JSON_OPTION) -> None:
    """Reject a pending gate: the held generation is failed (the hunt goes on), or the campaign keeps running."""
    _decide(ref, kind, False, by, note, as_json)
