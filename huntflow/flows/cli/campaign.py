"""``huntflow campaign add | extend | list | show | pause | resume | cancel | delete``.

Everything a researcher does to a campaign without SQL. Rows only: no Prefect, no JAX (the
spec is checked against its model at ``add``, which loads the model registry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from huntflow.flows.cli.common import (
    JSON_OPTION, best_text, console, fail, plain, progress_json, progress_rows, show_table,
)

app = typer.Typer(help="Add, inspect, pause, resume, cancel and delete campaigns.", no_args_is_help=True)


def add_campaign_file(path: Path) -> dict[str, Any]:
    """Validate a spec file and store it; returns the new campaign's progress row."""
    from huntflow.engine.spec import load_spec
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    spec = load_spec(path)
    with session() as conn:
        campaigns.insert_campaign(conn, spec)
        return progress_json(campaigns.progress(conn, spec.slug)[0])


def _conn_do(fn, slug: str):
    """Run ``fn(conn, slug)``; a missing campaign is bad input (exit 2)."""
    from huntflow.store.connection import session

    with session() as conn:
        try:
            return fn(conn, slug)
        except KeyError:
            fail(f"no campaign {slug!r}")


@app.command("add")
def campaign_add(spec_file: Path = typer.Argument(..., help="campaign spec (YAML)"), as_json: bool = JSON_OPTION) -> None:
    """Validate SPEC_FILE and store it as an active campaign."""
    row = add_campaign_file(spec_file)
    if as_json:
        print(json.dumps(row))
    else:
        console.print(f"added campaign [bold]{escape(row['slug'])}[/] (budget {row['evaluations_budget']} evaluations)")


@app.command("extend")
def campaign_extend(
    slug: str = typer.Argument(...),
    evaluations: int = typer.Option(..., "--evaluations", "-n", help="evaluations to add to the budget"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add evaluations to a campaign's budget (a completed campaign becomes active again)."""
    from huntflow.errors import TerminalStateError
    from huntflow.store import campaigns

    try:
        row = _conn_do(lambda c, s: campaigns.extend_budget(c, s, evaluations), slug)
    except (TerminalStateError, ValueError) as e:
        fail(str(e))
    if as_json:
        print(json.dumps({"slug": slug, "evaluations_budget": row["evaluations_budget"], "status": row["status"]}))
        return
    console.print(f"{escape(slug)}: budget now {row['evaluations_budget']} evaluations, status {row['status']}")


@app.command("list")
def campaign_list(as_json: bool = JSON_OPTION) -> None:
    """Every campaign: status, budget used, best (rung, certified)."""
    rows = progress_rows()
    if as_json:
        print(json.dumps(rows))
        return
    show_table(f"{len(rows)} campaign(s)", ("slug", "status", "used/budget", "best", "reason"),
               ([r["slug"], r["status"], f"{_used(r)}/{r['evaluations_budget']}", best_text(r),
                 r["completion_reason"] or ""] for r in rows), keep=("slug",), right=("used/budget",))


def _used(r: dict[str, Any]) -> int:
    return r["evaluations_succeeded"] + r["evaluations_failed"] + r["evaluations_rejected"] + r["evaluations_filtered"]


@app.command("show")
def campaign_show(slug: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """One campaign: its spec in short, progress, best with its parameters, generations not yet told."""
    from huntflow.store import campaigns

    def read(conn, s):
        row = campaigns.get_campaign(conn, s)
        best = None
        if row["best_evaluation_id"] is not None:
            best = conn.execute("select params, fidelity, metrics from hunt.evaluations where evaluation_id = %s",
                                (row["best_evaluation_id"],)).fetchone()
        return (row, progress_json(campaigns.progress(conn, s)[0]), best,
                campaigns.unfinished_generations(conn, row["campaign_id"]))

    row, prog, best, unfinished = _conn_do(read, slug)
    spec = row["spec"]
    out = {
        **prog, "campaign_id": str(row["campaign_id"]), "title": row["title"], "model": row["model"],
        "seed": row["seed"], "priority": row["priority"], "created_at": plain(row["created_at"]),
        "completed_at": plain(row["completed_at"]),
        "fidelities": [f["name"] for f in spec.get("fidelities", [])],
        "objectives": spec.get("objectives"), "space": spec.get("space"),
        "best_params": None if best is None else best["params"],
        "best_metrics": None if best is None else best["metrics"],
        "unfinished_generations": [{k: plain(g[k]) for k in ("generation_index", "kind", "fidelity_name", "status", "operator")}
                                   for g in unfinished],
    }
    if as_json:
        print(json.dumps(out, default=str))
        return
    console.print(f"[bold]{escape(slug)}[/] {escape(row['title'] or '')}")
    console.print(f"  model {escape(row['model'])}, seed {row['seed']}, priority {row['priority']}, "
                  f"fidelities {' → '.join(out['fidelities'])}")
    console.print(f"  status {prog['status']}{' (' + prog['completion_reason'] + ')' if prog['completion_reason'] else ''},"
                  f" mode {prog['mode']}, stage {prog['stage'] or '—'}, {_used(prog)}/{prog['evaluations_budget']}"
                  f" evaluations used, {prog['generations']} generation(s), {prog['gates_pending']} gate(s) pending")
    console.print(f"  best {escape(best_text(prog))}")
    if best is not None:
        console.print("    " + escape(", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in best["params"].items())))
    for g in out["unfinished_generations"]:
        console.print(f"  generation {g['generation_index']} ({g['kind']}, {g['fidelity_name']}): {g['status']}"
                      f" on {g['operator']}")


def _control(action: str, slug: str, as_json: bool) -> None:
    from huntflow.tasks import control

    out = _conn_do(getattr(control, action), slug)
    if as_json:
        print(json.dumps(out))
        return
    console.print(escape(out["message"]))
    for g in out.get("generations") or out.get("in_flight") or []:
        console.print(f"  {escape(g['generation'])} ({g['was']}, {g['operator']}): {escape(g['what'])}")


@app.command("pause")
def campaign_pause(slug: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Stop asking and launching; generations in flight finish and are told after `resume`."""
    _control("pause", slug, as_json)


@app.command("resume")
def campaign_resume(slug: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Make a paused campaign active again; the next tick carries on where it stopped."""
    _control("resume", slug, as_json)


@app.command("cancel")
def campaign_cancel(slug: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """End a campaign for good: unfinished generations are cancelled, running ones stopped where
    possible (a result that still arrives is discarded). Its rows stay for the report."""
    _control("cancel", slug, as_json)


@app.command("delete")
def campaign_delete(
    slug: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a campaign and all its rows (refused while generations of it run: cancel it first).
    Files under $HUNTFLOW_DATA_DIR (artifacts, reports) are kept."""
    from huntflow.config import get_settings
    from huntflow.store import campaigns

    rows = progress_rows(slug)
    if not rows:
        fail(f"no campaign {slug!r}")
    if not yes:
        typer.confirm(f"delete campaign {slug} ({rows[0]['status']}, {rows[0]['evaluations']} evaluations)"
                      " and all its rows?", abort=True)
    gone = _conn_do(campaigns.delete_campaign, slug)
    kept = get_settings().artifacts_dir / slug
    out = {"slug": slug, "deleted": True, "generations": gone["generations"], "evaluations": gone["evaluations"],
           "files_kept": str(kept)}
    if as_json:
        print(json.dumps(out))
        return
    console.print(f"deleted {escape(slug)}: {gone['generations']} generation(s), {gone['evaluations']} evaluation(s);"
                  f" files kept under {escape(str(kept))}")
