"""The ``huntflow`` command line (typer + rich).

Commands that only read or write rows (``status``, ``campaign add``, ``campaign extend``,
``summary``, ``report``, ``gate``, ``kit``) and ``generation run`` (one generation evaluated in
this process, what a slurm job runs) never start Prefect; commands that run flows (``tick``, ``demo``,
``serve``) start at most one Prefect API per process (the ephemeral one when ``PREFECT_API_URL``
is unset).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from huntflow.errors import HuntflowError, SpecError, StoreError

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it falls back to /tmp
# and warns on every command. The fallback is fine for huntflow.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")

app = typer.Typer(help="huntflow: closed-loop parameter hunts.", no_args_is_help=True, add_completion=False)
campaign_app = typer.Typer(help="Add and manage campaigns.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
gate_app = typer.Typer(help="Human decisions campaigns wait for (spec.gates): list, show, approve, reject.",
                       no_args_is_help=True)
app.add_typer(gate_app, name="gate")
generation_app = typer.Typer(help="Run one generation by hand or from a batch job (the slurm operator's jobs do).",
                             no_args_is_help=True)
app.add_typer(generation_app, name="generation")
kit_app = typer.Typer(help="Generations that travel as kit directories (HUNTFLOW_OPERATOR=manual): list, run, import.",
                      no_args_is_help=True)
app.add_typer(kit_app, name="kit")
from huntflow.flows.db_cli import db_app  # noqa: E402  (the embedded database: db start|stop|status|url)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRESS_FIELDS = ("slug", "status", "mode", "stage", "generations", "evaluations", "evaluations_pending",
                   "evaluations_succeeded", "evaluations_failed", "evaluations_rejected", "evaluations_filtered",
                   "evaluations_budget", "best_objective", "completion_reason", "gates_pending")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _prefect_env() -> None:
    """Defaults that make the ephemeral Prefect API start reliably on a small machine."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from huntflow.flows.ephemeral import start_guarded

    start_guarded()  # the ephemeral API, stopped by a watchdog should this process be killed


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in PROGRESS_FIELDS:
        v = row.get(k)
        out[k] = v if v is None or isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _progress_rows(slug: str | None = None) -> list[dict[str, Any]]:
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        return [_jsonable(r) for r in campaigns.progress(conn, slug)]


def _table(rows: list[dict[str, Any]], title: str = "campaigns") -> Table:
    table = Table(title=title)
    for col in ("slug", "status", "mode", "stage", "generations", "evaluations", "budget", "best objective", "reason"):
        table.add_column(col, justify="right" if col in ("generations", "evaluations", "budget") else "left")
    for r in rows:
        best = r["best_objective"]
        table.add_row(
            r["slug"], r["status"], r["mode"] or "", r["stage"] or "", str(r["generations"]),
            f"{r['evaluations_succeeded']}/{r['evaluations']}", str(r["evaluations_budget"]),
            "—" if best is None else f"{best:.6g}",
            r["completion_reason"] or (f"waiting: {r['gates_pending']} gate(s)" if r.get("gates_pending") else ""),
        )
    return table


def add_campaign_file(path: Path) -> dict[str, Any]:
    """Validate a spec file and store it; returns the new campaign's progress row."""
    from huntflow.engine.spec import load_spec
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    spec = load_spec(path)
    with session() as conn:
        campaigns.insert_campaign(conn, spec)
        return _jsonable(campaigns.progress(conn, spec.slug)[0])


@campaign_app.command("add")
def campaign_add(
    spec_file: Path = typer.Argument(..., help="campaign spec (YAML)"),
    as_json: bool = typer.Option(False, "--json", help="print the new campaign as JSON"),
) -> None:
    """Validate SPEC_FILE and store it as an active campaign."""
    try:
        row = add_campaign_file(spec_file)
    except SpecError as e:
        _fail(str(e))
    except HuntflowError as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(row))
    else:
        console.print(f"added campaign [bold]{row['slug']}[/] (budget {row['evaluations_budget']} evaluations)")


@campaign_app.command("extend")
def campaign_extend(
    slug: str = typer.Argument(...),
    evaluations: int = typer.Option(..., "--evaluations", "-n", help="evaluations to add to the budget"),
) -> None:
    """Add evaluations to a campaign's budget (a completed campaign becomes active again)."""
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    try:
        with session() as conn:
            row = campaigns.extend_budget(conn, slug, evaluations)
    except KeyError as e:
        _fail(str(e.args[0]))
    except (HuntflowError, ValueError) as e:
        _fail(str(e))
    console.print(f"{slug}: budget now {row['evaluations_budget']} evaluations, status {row['status']}")


def _gate_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("gate_id", "slug", "kind", "status", "generation_id", "subject", "requested_at", "decided_at",
            "decided_by", "note")
    return {k: (v if v is None or isinstance(v, (int, float, str, bool, dict, list)) else str(v))
            for k, v in ((k, row.get(k)) for k in keys)}


def _gate_line(row: dict[str, Any]) -> str:
    subject = row["subject"] or {}
    if row["kind"] == "promotion":
        what = (f"{subject.get('kind', 'promotion')} of {len(subject.get('candidates', []))} candidate(s)"
                f" to {subject.get('fidelity')!s}")
    else:
        best = subject.get("best") or {}
        what = f"complete ({subject.get('reason')}), best {best.get('objective', '—')}"
    return what


@gate_app.command("list")
def gate_list(
    slug: Optional[str] = typer.Argument(None, help="one campaign (default: all)"),
    every: bool = typer.Option(False, "--all", help="decided gates too, not only pending ones"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON array"),
) -> None:
    """Gates waiting for a decision (or all of them with --all)."""
    from huntflow.store import gates
    from huntflow.store.connection import session

    with session() as conn:
        rows = gates.listing(conn, slug=slug, status=None if every else "pending")
    if as_json:
        print(json.dumps([_gate_json(r) for r in rows]))
        return
    table = Table(title="gates" if every else "pending gates")
    for col in ("gate", "campaign", "kind", "status", "what", "requested", "decided by"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["gate_id"])[:8], r["slug"], r["kind"], r["status"], escape(_gate_line(r)),
                      r["requested_at"].strftime("%Y-%m-%d %H:%M"), r["decided_by"] or "")
    console.print(table)


@gate_app.command("show")
def gate_show(
    ref: str = typer.Argument(..., help="gate id (or its first 6+ characters), or a campaign slug with one pending gate"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Everything a gate asks about: the held candidates, or the completion reason and best."""
    from huntflow.store import gates
    from huntflow.store.connection import session

    with session() as conn:
        try:
            row = gates.resolve(conn, ref)
        except (KeyError, ValueError) as e:
            _fail(str(e))
    if as_json:
        print(json.dumps(_gate_json(row)))
        return
    console.print(f"[bold]gate {row['gate_id']}[/] ({row['slug']}, {row['kind']}, {row['status']}): {escape(_gate_line(row))}")
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
            _fail(str(e))
    decided["slug"] = row["slug"]
    if as_json:
        print(json.dumps(_gate_json(decided)))
        return
    console.print(f"gate {str(decided['gate_id'])[:8]} ({row['slug']}, {decided['kind']}) {decided['status']}"
                  f" by {who}; the campaign's next tick acts on it")


_KIND = typer.Option(None, "--kind", help="promotion or completion (when a slug is given and both are pending)")
_BY = typer.Option(None, "--by", help="who decides (default: the current user)")
_NOTE = typer.Option("", "--note", help="why (stored with the decision)")
_JSON = typer.Option(False, "--json", help="print the decided gate as JSON")


@gate_app.command("approve")
def gate_approve(ref: str = typer.Argument(..., help="gate id, 6+ character prefix, or campaign slug"),
                 kind: Optional[str] = _KIND, by: Optional[str] = _BY, note: str = _NOTE, as_json: bool = _JSON) -> None:
    """Approve a pending gate: the held generation launches, or the campaign completes."""
    _decide(ref, kind, True, by, note, as_json)


@gate_app.command("reject")
def gate_reject(ref: str = typer.Argument(..., help="gate id, 6+ character prefix, or campaign slug"),
                kind: Optional[str] = _KIND, by: Optional[str] = _BY, note: str = _NOTE, as_json: bool = _JSON) -> None:
    """Reject a pending gate: the held generation is failed (the hunt goes on), or the campaign keeps running."""
    _decide(ref, kind, False, by, note, as_json)


@generation_app.command("run")
def generation_run(
    generation_id: str = typer.Argument(..., help="the generation's id (hunt.generations.generation_id)"),
    attempt: Optional[int] = typer.Option(None, "--attempt", min=1,
                                          help="run only if the generation is at this attempt (batch jobs pass theirs)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Evaluate one planned or dispatched generation in this process (no Prefect): one batched
    JAX call, its HDF5 artifact, the result document and `succeeded`. A generation that already
    succeeded, or is at another attempt, is left alone. Exit 1 when the evaluation failed (the
    generation is sent back for another attempt)."""
    from uuid import UUID

    try:
        UUID(generation_id)
    except ValueError:
        _fail(f"generation id must be a UUID, got {generation_id!r}")
    from huntflow.tasks.execute import execute_generation

    try:
        summary = execute_generation(generation_id, attempt=attempt)
    except KeyError:
        _fail(f"no generation {generation_id}")
    except StoreError as e:
        _fail(str(e))
    except Exception as e:
        err.print(f"[bold red]evaluation failed:[/] {escape(f'{type(e).__name__}: {e}')}")
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


@kit_app.command("list")
def kit_list(as_json: bool = typer.Option(False, "--json", help="print a JSON array")) -> None:
    """Kits that are out: manual generations dispatched and not yet imported."""
    from huntflow.store.connection import session
    from huntflow.tasks import kit

    with session() as conn:
        rows = kit.waiting(conn)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} kit(s) out")
    for col in ("campaign", "generation_index", "kind", "attempt", "kit"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(escape(str(r[c])) for c in ("campaign", "generation_index", "kind", "attempt", "kit")))
    console.print(table)


@kit_app.command("run")
def kit_run(
    directory: Path = typer.Argument(..., help="the kit directory (holds kit.json)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Evaluate a kit here (no database needed): writes result.json and artifact.h5 into it."""
    from huntflow.tasks import kit

    try:
        summary = kit.run_kit(directory)
    except kit.KitError as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"kit {escape(str(directory))}: {summary['ok']}/{summary['candidates']} ok in "
                      f"{summary['wall_seconds']} s; now `huntflow kit import {escape(str(directory))}`")


@kit_app.command("import")
def kit_import(
    directory: Path = typer.Argument(..., help="a kit directory after `huntflow kit run`"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Store a run kit's result for its generation (refused, storing nothing, if it does not check out)."""
    from huntflow.store.connection import session
    from huntflow.tasks import kit

    try:
        with session() as conn:
            summary = kit.import_kit(conn, directory)
    except (kit.KitError, StoreError) as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"imported generation {summary['generation_id']} of {escape(summary['campaign'])}:"
                      f" {summary['candidates']} candidates; the next tick parses it")


@app.command()
def status(
    slug: Optional[str] = typer.Argument(None, help="one campaign (default: all)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON array"),
) -> None:
    """Show campaigns' progress (the hunt.campaign_progress view)."""
    rows = _progress_rows(slug)
    if slug and not rows:
        _fail(f"no campaign {slug!r}")
    if as_json:
        print(json.dumps(rows))
    else:
        console.print(_table(rows))


def _campaign_ids(slug: str | None) -> list[str] | None:
    if slug is None:
        return None
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        try:
            return [str(campaigns.get_campaign(conn, slug)["campaign_id"])]
        except KeyError:
            _fail(f"no campaign {slug!r}")
    return None


def _active(slug: str | None) -> bool:
    rows = _progress_rows(slug)
    return any(r["status"] == "active" for r in rows)


def run_ticks(slug: str | None, until_done: bool, max_ticks: int, show_progress: bool = True,
              poll_seconds: float = 2.0) -> tuple[int, Any]:
    """Run ticks back to back in this process; returns how many ran and the
    :class:`~huntflow.flows.until_done.Verdict` that stopped them (None: one tick, or max_ticks).
    After a tick that moved nothing, the loop waits (saying for what) or stops
    (:mod:`huntflow.flows.until_done`)."""
    _prefect_env()
    from prefect import flow

    from huntflow.flows.tick import no_heartbeats, run_tick

    @flow(name="hunt-tick", log_prints=True)
    def ticking() -> tuple[int, Any]:  # one flow run for the whole loop; each tick's stages are its task runs
        return _tick_loop(slug, until_done, max_ticks, show_progress, poll_seconds, run_tick)

    with no_heartbeats():
        return ticking()


def _tick_loop(slug: str | None, until_done: bool, max_ticks: int, show_progress: bool, poll_seconds: float,
               run_tick) -> tuple[int, Any]:
    """The loop :func:`run_ticks` runs inside its one flow run."""
    from uuid import UUID

    from huntflow.flows import until_done as ud
    from huntflow.store import waits
    from huntflow.store.connection import session

    only = _campaign_ids(slug)
    ids = [UUID(c) for c in only] if only else None

    def look(what):
        with session() as conn:
            return what(conn, ids)

    ticks = 0
    rows = _progress_rows(slug)
    started = {r["slug"] for r in rows if r["status"] == "active"}
    total = sum(r["evaluations_budget"] for r in rows if r["status"] == "active") or 1
    verdict, said, key, tick_next = None, None, look(waits.progress_key), True
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
                  console=console, disable=not show_progress or not until_done) as progress:
        bar = progress.add_task("evaluations", total=total, best="—")
        while ticks < max_ticks:
            if tick_next:
                run_tick(only)
                ticks += 1
            rows = _progress_rows(slug)
            done = sum(r["evaluations_succeeded"] + r["evaluations_failed"] + r["evaluations_rejected"] for r in rows)
            bests = [r["best_objective"] for r in rows if r["best_objective"] is not None]
            progress.update(bar, completed=min(done, total), best=f"{min(bests):.4g}" if bests else "—")
            if not until_done:
                break
            verdict = ud.finished(rows, started)
            if verdict is not None:
                break
            before, key = key, look(waits.progress_key)
            if tick_next and before != key:
                continue  # work moved: tick again at once
            verdict = ud.decide(look(waits.blockers), poll_seconds)
            if not tick_next and verdict.tick_after and verdict.action != "stop":
                tick_next = True  # the lease we waited for is free: tick now
                continue
            if verdict.message and verdict.message != said:
                console.print(verdict.message)
                said = verdict.message
            if verdict.action == "stop":
                break
            time.sleep(verdict.seconds)
            tick_next = verdict.tick_after
    if verdict is not None and verdict.action == "stop" and verdict.message and verdict.message != said:
        console.print(verdict.message)
    return ticks, verdict


@app.command()
def tick(
    until_done: bool = typer.Option(False, "--until-done", help="tick back to back until no campaign is active"
                                    " (exit 1 when one failed, 3 when the rest wait for a decision)"),
    campaign: Optional[str] = typer.Option(None, "--campaign", "-c", help="only this campaign (slug)"),
    max_ticks: int = typer.Option(10_000, "--max-ticks", min=1, help="stop after this many ticks"),
    poll: float = typer.Option(2.0, "--poll", min=0.0,
                               help="seconds to wait after a tick that moved nothing, before looking again"),
) -> None:
    """Run the hunt-tick flow now, once or until done."""
    n, verdict = run_ticks(campaign, until_done, max_ticks, poll_seconds=poll)
    console.print(_table(_progress_rows(campaign), title=f"after {n} tick(s)"))
    if verdict is not None and verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


@app.command()
def demo(
    spec_file: Path = typer.Option(EXAMPLES / "rosenbrock_4d.yaml", "--spec", help="campaign spec to run"),
    max_ticks: int = typer.Option(500, "--max-ticks", min=1),
    tolerance: float = typer.Option(1e-2, "--tolerance", help="allowed distance of the best objective from the known optimum"),
) -> None:
    """Add the example campaign and tick until it is done (embedded Postgres, ephemeral Prefect)."""
    from huntflow.engine.spec import load_spec
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    try:
        spec = load_spec(spec_file)
    except SpecError as e:
        _fail(str(e))
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
    console.print(f"demo campaign [bold]{slug}[/]: {spec.title or spec.model.label}")
    ticks, stopped = run_ticks(slug, True, max_ticks)
    rows = _progress_rows(slug)
    console.print(_table(rows, title=f"{slug} after {ticks} tick(s)"))
    if stopped is not None and stopped.exit_code:
        raise typer.Exit(stopped.exit_code)
    model = spec.model.resolve().jax
    known = model.known_optimum(spec.param_names, spec.model.fixed) if model is not None else None
    best = rows[0]["best_objective"]
    if known is not None and best is not None:
        gap = abs(best - known.value)
        verdict = "[green]within[/]" if gap <= tolerance else "[red]outside[/]"
        console.print(f"best objective {best:.6g}; known optimum {known.value:g}; gap {gap:.3g} {verdict} tolerance {tolerance:g}")
        if gap > tolerance:
            raise typer.Exit(1)


@app.command()
def summary(
    slug: str = typer.Argument(..., help="campaign slug"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for the CSV and PNG plots"
                                       " (default: $HUNTFLOW_DATA_DIR/summaries/SLUG)"),
    as_json: bool = typer.Option(False, "--json", help="print the KPIs as one JSON object"),
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
            _fail(f"no campaign {slug!r}")
        spec = campaigns.spec_of(row)
        evals = generations.campaign_evaluations(conn, row["campaign_id"])
    out = out or get_settings().data_dir / "summaries" / slug
    result = kpi.kpis(spec, evals)
    csv_path = kpi.write_csv(spec, evals, out / "evaluations.csv")
    plots = kpi.plot(spec, result, out)
    result.update({"slug": slug, "status": row["status"], "csv": str(csv_path), "plots": [str(p) for p in plots],
                   "hypervolume": (row["search_summary"] or {}).get("hypervolume")})
    if as_json:
        print(json.dumps(result, default=str))
        return
    best = result["best_objective"]
    console.print(f"[bold]{escape(slug)}[/] ({row['status']}): {result['evaluations']} evaluations, "
                  f"best {('—' if best is None else f'{best:.6g}')}, first feasible at evaluation "
                  f"{result['first_feasible_at']}")
    table = Table(title="feasibility by fidelity")
    for col in ("fidelity", "evaluations", "succeeded", "feasible", "pass rate"):
        table.add_column(col)
    for r in result["feasibility"]:
        rate = "—" if r["pass_rate"] is None else f"{r['pass_rate']:.0%}"
        table.add_row(escape(str(r["fidelity"])), str(r["evaluations"]), str(r["succeeded"]), str(r["feasible"]), rate)
    console.print(table)
    if result["promotion_deltas"]:
        deltas = [d["objective_delta"] for d in result["promotion_deltas"]]
        console.print(f"promotions: {len(deltas)}, objective delta low→high mean {sum(deltas) / len(deltas):+.4g}, "
                      f"max |delta| {max(abs(d) for d in deltas):.4g}")
    curve = [v for v in result["best_vs_evaluation"] if v is not None]
    if curve:
        marks = sorted({max(0, int(len(result["best_vs_evaluation"]) * q) - 1) for q in (0.1, 0.25, 0.5, 0.75, 1.0)})
        console.print("best vs evaluation: " + ", ".join(
            f"{i + 1}: {result['best_vs_evaluation'][i]:.4g}" for i in marks if result["best_vs_evaluation"][i] is not None))
    console.print(f"wrote {csv_path} and {len(plots)} plot(s) in {out}")


@app.command()
def report(
    slug: str = typer.Argument(..., help="campaign slug"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for report.md, report.json, the CSV and"
                                       " PNG plots (default: $HUNTFLOW_DATA_DIR/reports/SLUG)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
) -> None:
    """The campaign's report: best (certified?) candidate, front, ladder, trajectory, findings, stage health."""
    from huntflow.engine.report import num
    from huntflow.flows.report import write_report
    from huntflow.store import campaigns
    from huntflow.store.connection import session

    with session() as conn:
        try:
            campaigns.get_campaign(conn, slug)
        except KeyError:
            _fail(f"no campaign {slug!r}")
        result = write_report(conn, slug, out)
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
        console.print(f"best {num(best['objective'])} ({mark}, fidelity {escape(best['fidelity_name'])}): "
                      + escape(", ".join(f"{k}={num(v)}" for k, v in best["params"].items())))
    if result["front"] is not None:
        console.print(f"Pareto front: {result['front']['size']} point(s), hypervolume {num(result['front']['hypervolume'])}")
    f = result["findings"]
    if f["total"]:
        console.print("findings: " + ", ".join(f"{n} {s}" for s, n in f["by_severity"].items() if n))
    console.print(f"wrote {files['markdown']}, {files['json']}, {files['csv']} and {len(files['plots'])} plot(s)")


@app.command()
def serve(
    interval_minutes: float = typer.Option(5.0, "--interval", help="minutes between scheduled ticks"),
) -> None:
    """Serve the hunt-tick flow on a schedule from this process (no work pool needed)."""
    _prefect_env()
    from huntflow.flows.tick import hunt_tick

    hunt_tick.serve(name="every-5-minutes", interval=interval_minutes * 60)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
