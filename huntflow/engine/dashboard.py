"""A campaign's live dashboard: the Markdown the Prefect UI shows as artifact ``campaign-<slug>``.

Pure: a function of the report dict (:func:`huntflow.engine.report.build`), the evaluation rows
and optional PNG plots, so the same text can be checked in a test. Sections: status line (status,
mode, stage, budget used), the best so far (:func:`~huntflow.engine.summary.best_of`: value, rung,
certified or not, parameters), the last generation's key metrics (each objective and constraint
metric: best, median, worst over its succeeded candidates; for the CGL model ``log_prime_sse``
and ``h_norm``), the trajectory of the last generations, findings by severity, and the plots
embedded as ``data:`` PNG images (the UI's Markdown renderer shows them as ``<img>``).
"""

from __future__ import annotations

import base64
import statistics
from typing import Any

from huntflow.engine.report import code, num, text
from huntflow.engine.spec import CampaignSpec

LAST_TRAJECTORY_ROWS = 8
TOP_FINDINGS = 3
PLOTS_HEADING = "## Plots"


def key_metrics(spec: CampaignSpec) -> list[str]:
    """The metrics a researcher watches: objectives first, then constrained metrics."""
    names: list[str] = []
    for m in [o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]:
        if m not in names:
            names.append(m)
    return names


def last_generation(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest generation with results: counts and each key metric's best/median/worst."""
    done = [e for e in evals if e["status"] != "pending"]
    if not done:
        return None
    ask = max(e["ask_id"] for e in done)
    mine = [e for e in done if e["ask_id"] == ask]
    ok = [e for e in mine if e["status"] == "succeeded" and e.get("metrics")]
    goals = {o.metric: o.goal for o in spec.objectives}
    metrics = {}
    for m in key_metrics(spec):
        vals = sorted(float(e["metrics"][m]) for e in ok if e["metrics"].get(m) is not None)
        if vals:
            lo, hi = vals[0], vals[-1]
            best, worst = (hi, lo) if goals.get(m) == "maximize" else (lo, hi)
            metrics[m] = {"best": best, "median": statistics.median(vals), "worst": worst}
    rung = int(mine[0]["fidelity"])
    return {"generation_index": mine[0].get("generation_index"), "kind": mine[0].get("kind"),
            "fidelity": spec.fidelities[rung].name, "candidates": len(mine), "succeeded": len(ok),
            "feasible": sum(1 for e in ok if e.get("feasible")), "metrics": metrics}


def budget_percent(used: int, budget: int | None) -> float:
    """The share of the evaluation budget used, in percent (one decimal, at most 100)."""
    return round(100.0 * min(1.0, used / max(1, budget or 1)), 1)


def progress_percent(report: dict[str, Any]) -> float:
    c = report["campaign"]
    return budget_percent(c["evaluations_used"], c["evaluations_budget"])


def summary_line(report: dict[str, Any]) -> str:
    """One line for artifact descriptions: status, budget used, best (rung, certified)."""
    c, best = report["campaign"], report["best"]
    said = "no feasible candidate yet" if best is None else (
        f"best {num(best['objective'])} ({best['fidelity_name']}, {'certified' if best['certified'] else 'not certified'})")
    return f"{c['slug']}: {c['status']}, {c['evaluations_used']}/{c['evaluations_budget']} evaluations, {said}"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plots_section(images: dict[str, bytes]) -> str:
    lines = [PLOTS_HEADING, ""]
    for name, png in images.items():
        lines += [f"![{name.replace('_', ' ')}]({png_data_uri(png)})", ""]
    return "\n".join(lines)


def markdown(report: dict[str, Any], spec: CampaignSpec, evals: list[dict[str, Any]],
             plots: str | None = None) -> str:
    """The dashboard Markdown; ``plots`` is a :func:`plots_section` (omitted when ``None``)."""
    c, best, traj, f = report["campaign"], report["best"], report["trajectory"], report["findings"]
    reason = f" ({text(c['completion_reason'])})" if c.get("completion_reason") else ""
    lines = [
        f"# {text(c['slug'])}" + (f" — {text(c['title'])}" if c.get("title") else ""),
        "",
        f"**{text(c['status'])}**{reason} · mode **{text(c.get('mode') or '—')}** · model {code(c['model'])} · "
        f"**{c['evaluations_used']}/{c['evaluations_budget']}** evaluations ({progress_percent(report):g} %) · "
        f"{traj['generations']} generation(s) told",
        "",
        "## Best so far",
        "",
    ]
    if best is None:
        lines.append("No feasible candidate yet.")
    else:
        mark = "**certified**" if best["certified"] else "not certified"
        lines += [f"**{num(best['objective'])}** {code(spec.objectives[0].metric)} at {text(best['fidelity_name'])}"
                  f" ({mark}) — generation {best.get('generation_index')}, candidate {best.get('candidate_index')}", "",
                  "| parameter | value |", "| --- | --- |"]
        lines += [f"| {code(k)} | {num(v)} |" for k, v in best["params"].items()]
    last = last_generation(spec, evals)
    lines += ["", "## Last generation", ""]
    if last is None:
        lines.append("No generation has results yet.")
    else:
        lines += [f"gen-{last['generation_index']} ({text(last['fidelity'])}, {last['kind']}): {last['candidates']}"
                  f" candidates, {last['succeeded']} succeeded, {last['feasible']} feasible", ""]
        if last["metrics"]:
            lines += ["| metric | best | median | worst |", "| --- | --- | --- | --- |"]
            lines += [f"| {code(m)} | {num(v['best'])} | {num(v['median'])} | {num(v['worst'])} |"
                      for m, v in last["metrics"].items()]
    lines += ["", "## Trajectory", ""]
    points = traj["points"][-LAST_TRAJECTORY_ROWS:]
    if not points:
        lines.append("No generation has been told yet.")
    else:
        lines += ["| generation | rung | best so far | improvement | feasible | mode |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {p['generation_index']} | {text(p.get('fidelity') or '')} | {num(p['best_objective'])} |"
                  f" {num(p['improvement'])} | {num(p['feasible_fraction'])} | {text(p['mode'])} |" for p in points]
    lines += ["", "## Findings", ""]
    lines.append(" · ".join(f"{s} **{n}**" for s, n in f["by_severity"].items()) if f["total"] else "No findings.")
    for item in f["most_severe"][:TOP_FINDINGS]:
        lines.append(f"- {item['severity']} {code(item['kind'])}: {text(item['message'])}")
    if plots:
        lines += ["", plots]
    return "\n".join(lines) + "\n"
