"""``huntflow status | summary | report``: read rows, never start Prefect or import JAX.

All three name the same best candidate (:func:`huntflow.engine.summary.best_of`, top fidelity
first) with its rung and whether it is certified.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from huntflow.flows.cli.common import JSON_OPTION, best_text, console, fail, progress_rows, show_table


def progress_table(rows: list[dict[str, Any]], title: str = "campaigns") -> None:
    """The campaigns table ``status``, ``tick`` and ``demo`` print."""
    show_table(
        title, ("slug", "status", "mode", "stage", "generations", "evaluations", "budget", "best", "reason"),
        ([r["slug"], r["status"], r["mode"] or "", r["stage"] or "", r["generations"],
          f"{r['evaluations_succeeded']}/{r['evaluations']}", r["evaluations_budget"], best_text(r),
          r["completion_reason"] or (f"waiting: {r['gates_pending']} gate(s)" if r.get("gates_pending") else "")]
         for r in rows),
        keep=("slug",), right=("generations", "evaluations", "budget"))


def status(
    slug: Optional[str] = typer.Argument(None, help="one campaign (default: all)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show campaigns' progress (the hunt.campaign_progress view)."""
    rows = progress_rows(slug)
    if slug and not rows:
        fail(f"no campaign {slug!r}")
    if as_json:
        print(json.dumps(rows))
    else:
        progress_table(rows)


def summary(
    slug: str = typer.Argument(..., help="campaign slug"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for the CSV and PNG plots"
                                       " (default: $HUNTFLOW_DATA_DIR/summaries/SLUG)"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write the PNG plots"),
    as_json: bool = JSON_OPTION,
) -> None:
    """KPIs of a campaign; writes every evaluation to CSV and plots the KPIs as PNG."""
    from huntflow.config import get_settings
    from huntflow.engine import summary as kpi
    from huntflow.store import campaigns, generations
    from huntflow.store.connection import session

    with session() as conn:
        try:
            row = campaigns.get_campaign(conn, slug)
        except KeyError:
            fail(f"no campaign {slug!r}")
        spec = campaigns.spec_of(row)
        evals = generations.campaign_evaluations(conn, row["campaign_id"])
    out = out or get_settings().data_dir / "summaries" / slug
    result = kpi.kpis(spec, evals)
    csv_path = kpi.write_csv(spec, evals, out / "evaluations.csv")
    written = kpi.plot(spec, result, out) if plots else []
    result.update({"slug": slug, "status": row["status"], "csv": str(csv_path), "plots": [str(p) for p in written],
                   "hypervolume": (row["search_summary"] or {}).get("hypervolume")})
    if as_json:
        print(json.dumps(result, default=str))
        return
    best = result["best"]
    said = "—" if best is None else best_text({"best_objective": best["objective"], **best})
    console.print(f"[bold]{escape(slug)}[/] ({row['status']}): {result['evaluations']} evaluations, best "
                  f"{escape(said)}, first feasible at evaluation {result['first_feasible_at']}")
    show_table("feasibility by fidelity", ("fidelity", "evaluations", "succeeded", "feasible", "pass rate"),
               ([r["fidelity"], r["evaluations"], r["succeeded"], r["feasible"],
                 "—" if r["pass_rate"] is None else f"{r['pass_rate']:.0%} ({r['feasible']}/{r['evaluations']})"]
                for r in result["feasibility"]), keep=("fidelity",))
    if result["promotion_deltas"]:
        deltas = [d["objective_delta"] for d in result["promotion_deltas"]]
        console.print(f"promotions: {len(deltas)}, {spec.objectives[0].metric} change lower→higher rung: mean "
                      f"{sum(deltas) / len(deltas):+.4g}, max |change| {max(abs(d) for d in deltas):.4g}")
    for rung, curve in result["best_by_rung"].items():
        values = [v for v in curve if v is not None]
        if values:
            console.print(f"best so far at {escape(rung)}: {values[-1]:.6g} after {len(curve)} evaluation(s)")
    console.print(f"wrote {escape(str(csv_path))} and {len(written)} plot(s) in {escape(str(out))}", soft_wrap=True)


def report(
    slug: str = typer.Argument(..., help="campaign slug"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for report.md, report.json, the CSV and"
                                       " PNG plots (default: $HUNTFLOW_DATA_DIR/reports/SLUG)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """The campaign's report: best (certified?) candidate, front, ladder, trajectory, findings, stage health."""
    from huntflow.engine.report import num
    from huntflow.store.connection import session
    from huntflow.tasks.report import write_report

    with session() as conn:
        try:
            result = write_report(conn, slug, out)
        except KeyError:
            fail(f"no campaign {slug!r}")
    if as_json:
        print(json.dumps(result))
        return
    c, best, files = result["campaign"], result["best"], result["files"]
    console.print(f"[bold]{escape(slug)}[/] ({c['status']}{', ' + c['completion_reason'] if c['completion_reason'] else ''}):"
                  f" {c['evaluations_used']}/{c['evaluations_budget']} evaluations,"
                  f" {result['trajectory']['generations']} generation(s) recorded")
    if best is None:
        console.print("no feasible candidate yet")
    else:
        mark = "[green]certified[/]" if best["certified"] else "[yellow]not certified[/]"
        console.print(f"best {num(best['objective'])} ({escape(best['fidelity_name'])}, {mark}): "
                      + escape(", ".join(f"{k}={num(v)}" for k, v in best["params"].items())))
    if result["front"] is not None:
        console.print(f"Pareto front: {result['front']['size']} point(s), hypervolume {num(result['front']['hypervolume'])}")
    f = result["findings"]
    if f["total"]:
        console.print("findings: " + ", ".join(f"{n} {s}" for s, n in f["by_severity"].items() if n))
    console.print(f"wrote {escape(files['markdown'])}, {escape(files['json'])}, {escape(files['csv'])} and"
                  f" {len(files['plots'])} plot(s)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(summary)
    app.command()(report)
