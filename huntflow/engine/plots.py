"""Plots of a campaign's KPIs (:func:`huntflow.engine.summary.kpis`) a scientist can show as they are.

* ``best_so_far``: the best feasible objective so far, one line per fidelity rung (named), the
  campaign's best (:func:`~huntflow.engine.summary.best_of`) marked and labelled certified or not,
  the target as a dashed line;
* ``feasibility_by_fidelity``: pass rate per rung with the counts (feasible / evaluated) beside it;
* ``promotion_deltas``: each promoted candidate's objective at the lower vs the higher rung, the
  metric and the rungs named on the axes and in the legend;
* ``pareto_front`` (two objectives): the feasible front at the rung it was taken from.

A campaign with nothing to show gets a figure saying so, never blank axes. Figures are built
with matplotlib's object API (no pyplot state), so building them is thread-safe; :func:`png`
encodes one for an artifact.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from huntflow.engine.spec import CampaignSpec

SIZE = (6.4, 4.0)


def _t(text) -> str:
    """User text (rung and metric names) for matplotlib: ``$`` would start mathtext."""
    return str(text).replace("$", r"\$")


def _figure(size=SIZE):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _empty(ax, title: str, message: str) -> None:
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="0.35", transform=ax.transAxes)


def best_so_far(spec: CampaignSpec, summary: dict[str, Any]):
    fig, ax = _figure()
    metric = _t(spec.objectives[0].metric)
    title = f"{spec.slug}: best feasible {metric} so far"
    curves = summary["best_by_rung"]
    if not any(v is not None for c in curves.values() for v in c):
        _empty(ax, title, "no evaluations yet" if not summary["evaluations"] else "no feasible evaluation yet")
        return fig
    ys_all = []
    top = spec.fidelities[-1].name
    for rung, curve in curves.items():
        xs = [i + 1 for i, v in enumerate(curve) if v is not None]
        ys = [v for v in curve if v is not None]
        if ys:
            ys_all += ys
            ax.plot(xs, ys, drawstyle="steps-post", linewidth=2 if rung == top else 1.3,
                    label=_t(rung) + (" (top rung: certifies)" if rung == top and len(curves) > 1 else ""))
    best = summary.get("best")
    if best is not None:
        curve = curves[best["best_fidelity_name"]]
        at = next(i + 1 for i, v in enumerate(curve) if v is not None and v == best["objective"])
        mark = "certified" if best["best_certified"] else "not certified"
        ax.plot([at], [best["objective"]], marker="*", markersize=15, color="tab:red", linestyle="none",
                label=f"best {best['objective']:.4g} ({_t(best['best_fidelity_name'])}, {mark})", zorder=5)
    target = spec.objectives[0].target
    if target is not None:
        ax.axhline(target, color="tab:red", linestyle="--", linewidth=1, label=f"target {target:g}")
    if all(y > 0 for y in ys_all) and (max(ys_all) / min(ys_all) > 100 or (target is not None and target > 0)):
        ax.set_yscale("log")
    ax.set(xlabel="evaluations (in the order they were asked)", ylabel=f"best feasible {metric}"
           f" ({spec.objectives[0].goal})", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def feasibility(spec: CampaignSpec, summary: dict[str, Any]):
    fig, ax = _figure((6.4, 3.6))
    rows = summary["feasibility"]
    title = "feasible share by fidelity rung"
    if not any(r["evaluations"] for r in rows):
        _empty(ax, title, "no evaluations yet")
        return fig
    names = [_t(r["fidelity"]) for r in rows]
    rates = [r["pass_rate"] or 0.0 for r in rows]
    bars = ax.bar(names, rates, color="tab:green", alpha=0.75)
    for bar, r in zip(bars, rows):
        label = "none yet" if not r["evaluations"] else f"{r['feasible']}/{r['evaluations']} ({(r['pass_rate'] or 0):.0%})"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    xytext=(0, 3), textcoords="offset points", fontsize=9)
    ax.set(ylim=(0, 1.15), ylabel="feasible / evaluated", xlabel="fidelity rung", title=title)
    return fig


def promotion_deltas(spec: CampaignSpec, summary: dict[str, Any]):
    fig, ax = _figure((5.6, 5.0))
    deltas = summary["promotion_deltas"]
    metric = _t(spec.objectives[0].metric)
    title = f"promotion: {metric} at the lower vs the higher rung"
    if not deltas:
        _empty(ax, title, "no candidate promoted yet")
        return fig
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in deltas:
        pairs.setdefault((d["from"], d["to"]), []).append(d)
    values = []
    for (lo, hi), ds in pairs.items():
        xs, ys = [d["objective_low"] for d in ds], [d["objective_high"] for d in ds]
        values += xs + ys
        ax.scatter(xs, ys, label=f"{_t(lo)} → {_t(hi)} ({len(ds)})", alpha=0.8)
    lim = [min(values), max(values)]
    ax.plot(lim, lim, color="gray", linestyle=":", label="no change")
    if len(pairs) == 1:
        (lo, hi), = pairs
        ax.set(xlabel=f"{metric} at {_t(lo)} (lower rung)", ylabel=f"{metric} at {_t(hi)} (higher rung)")
    else:
        ax.set(xlabel=f"{metric} at the lower rung", ylabel=f"{metric} at the higher rung")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def pareto_front(spec: CampaignSpec, summary: dict[str, Any]):
    if len(spec.objectives) != 2:
        return None
    fig, ax = _figure((5.6, 4.4))
    pts = summary["front"]
    o1, o2 = spec.objectives
    title = "feasible Pareto front" + (f" at {_t(summary['front_rung'])}" if summary.get("front_rung") else "")
    if not pts:
        _empty(ax, title, "no feasible evaluation yet")
        return fig
    sign = [1 if o.goal == "minimize" else -1 for o in (o1, o2)]
    pts = sorted([p[0] * sign[0], p[1] * sign[1]] for p in pts)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", drawstyle="steps-post")
    ax.set(xlabel=f"{o1.metric} ({o1.goal})", ylabel=f"{o2.metric} ({o2.goal})", title=f"{title}: {len(pts)} point(s)")
    ax.grid(alpha=0.3)
    return fig


FIGURES = {"best_vs_evaluation": best_so_far, "feasibility_by_fidelity": feasibility,
           "promotion_deltas": promotion_deltas, "pareto_front": pareto_front}


def figures(spec: CampaignSpec, summary: dict[str, Any], names=None) -> dict[str, Any]:
    """``{name: Figure}`` for the plots that apply to this campaign (``names``: a subset)."""
    out = {}
    for name, build in FIGURES.items():
        if names is None or name in names:
            fig = build(spec, summary)
            if fig is not None:
                out[name] = fig
    return out


def png(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write(spec: CampaignSpec, summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every plot that applies as ``<name>.png`` into ``out_dir``; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(spec, summary).items():
        path = out_dir / f"{name}.png"
        path.write_bytes(png(fig))
        written.append(path)
    return written
