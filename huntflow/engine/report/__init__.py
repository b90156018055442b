"""A campaign's report: a JSON-able dict and a Markdown document, from its rows alone.

Pure functions of plain data — the campaign row, its parsed spec, and its evaluation,
generation, trajectory, finding and stage-run rows as the store returns them (see
:func:`huntflow.store.reports.report_inputs`) — so a report can be rebuilt from a database dump
or a test fixture. :func:`write` adds the files: ``report.md``, ``report.json`` and the summary's
``evaluations.csv`` and PNG plots (:mod:`huntflow.engine.summary`).

Sections (keys of :func:`build`'s dict):
  campaign    header: slug, title, model, status, completion reason, mode, created / finished,
              evaluations used (not pending) of the budget, optimizer, seed, objectives,
              constraints, fidelity ladder names;
  evaluations counts by status and failure category, the first feasible evaluation;
  best        the best feasible succeeded evaluation (:func:`~huntflow.engine.summary.best_of`:
              top fidelity first). ``certified`` is true only when it was evaluated at the top
              fidelity; then its params, metrics, objectives (with targets), constraint values
              (``g <= 0`` is satisfied), provenance, HDF5 artifact path and where its result
              document is stored. ``None`` while nothing is feasible;
  front       (several objectives) the feasible non-dominated set at the highest rung that has
              a feasible evaluation (top rung first; one point per param hash), objectives in the
              user's sign, and its hypervolume against ``spec.reference_point``;
  ladder      per rung: evaluations, succeeded, feasible, pass rate; promotions from each rung to
              the next: candidates, mean and largest objective change, feasible at the higher rung;
  trajectory  learn's rows: best vs generation, the mode changes with the generation where each
              happened, the generation the best was last improved at, the current stagnation
              count against ``budget.patience``;
  findings    review findings counted by severity and kind, the most severe few listed;
  verification what review's perturbed re-runs cost: batches, evaluations and their share of the
              search's evaluations and evaluation wall time (None without the inputs);
  stages      per stage: runs, succeeded / failed / skipped / running / crashed, retried runs, attempts,
              mean and max duration, the last error;
  files       what :func:`write` wrote (empty from :func:`build`).

Numbers are kept as numbers in the dict (non-finite ones become ``null``, so the dict is strict
JSON) and shown with 6 significant digits in the Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from huntflow.engine import summary as kpi
from huntflow.engine.report import render, sections
from huntflow.engine.report.values import FORMAT, Row, code, jsonable, num, text
from huntflow.engine.spec import CampaignSpec

__all__ = ["FORMAT", "build", "code", "jsonable", "markdown", "num", "text", "write"]


def build(
    campaign: Row,
    spec: CampaignSpec,
    evaluations: Iterable[Row],
    trajectories: Iterable[Row] = (),
    findings: Iterable[Row] = (),
    stage_runs: Iterable[Row] = (),
    generations: Iterable[Row] = (),
    *,
    verification: Row | None = None,
    generated_at: dt.datetime | None = None,
    kpis: Row | None = None,
) -> Row:
    """The report of one campaign as a strict-JSON dict (see the module docstring for its keys).

    Args:
        campaign: the ``hunt.campaigns`` row.
        spec: its parsed spec.
        evaluations: rows as :func:`~huntflow.store.generations.campaign_evaluations` returns them.
        trajectories, findings, stage_runs: the campaign's rows of those tables.
        generations: its generation rows (for artifact paths; ``has_result_document`` or
            ``result_document`` says whether a result document is stored).
        verification: :func:`huntflow.store.verifications.share` of the campaign (review's cost).
        kpis: :func:`huntflow.engine.summary.kpis` of ``evaluations`` when the caller has them
            (the dashboard draws its plots from the same numbers: computed once, not twice).
    """
    evals = list(evaluations)
    gens = {g["generation_id"]: g for g in generations}
    stage_rows = list(stage_runs)
    kpis = kpi.kpis(spec, evals) if kpis is None else kpis
    report = {
        "format": FORMAT,
        "generated_at": generated_at or dt.datetime.now(dt.timezone.utc),
        "campaign": {**sections.header(campaign, spec, evals),
                     "ticks": len({r.get("tick_id") for r in stage_rows if r.get("tick_id") is not None})},
        "evaluations": sections.evaluation_counts(evals, kpis),
        "best": sections.best(spec, evals, gens),
        "front": sections.front(spec, evals),
        "ladder": sections.ladder(spec, kpis),
        "trajectory": sections.trajectory(spec, list(trajectories), campaign),
        "findings": sections.findings(list(findings), gens),
        "verification": sections.verification(verification),
        "stages": sections.stages(stage_rows),
        "files": {},
    }
    return jsonable(report)

def markdown(report: Row) -> str:
    """The report as a Markdown document (tables, 6 significant digits)."""
    lines: list[str] = []
    for part in (render.header, render.best, render.front, render.ladder, render.trajectory, render.findings,
                 render.stages, render.evaluations, render.files):
        lines += part(report)
    return "\n".join(lines).rstrip() + "\n"

def write(inputs: Row, out_dir: Path, *, plots: bool = True, generated_at: dt.datetime | None = None) -> Row:
    """Write ``report.md``, ``report.json``, ``evaluations.csv`` and (with ``plots``) the summary's
    PNG plots into ``out_dir``; returns the report with ``files`` filled in.

    Args:
        inputs: the keyword arguments of :func:`build` (``campaign``, ``spec``, ``evaluations``,
            ``trajectories``, ``findings``, ``stage_runs``, ``generations``), e.g.
            :func:`huntflow.store.reports.report_inputs`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec, evals = inputs["spec"], list(inputs["evaluations"])
    numbers = kpi.kpis(spec, evals)  # once, for the report and its plots
    report = build(inputs["campaign"], spec, evals, inputs.get("trajectories", ()), inputs.get("findings", ()),
                   inputs.get("stage_runs", ()), inputs.get("generations", ()),
                   verification=inputs.get("verification"), generated_at=generated_at, kpis=numbers)
    csv_path = kpi.write_csv(spec, evals, out_dir / "evaluations.csv")
    pngs = kpi.plot(spec, numbers, out_dir) if plots else []
    md_path, json_path = out_dir / "report.md", out_dir / "report.json"
    report["files"] = {"dir": str(out_dir), "markdown": str(md_path), "json": str(json_path), "csv": str(csv_path),
                       "plots": [str(p) for p in pngs]}
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown(report))
    return report
