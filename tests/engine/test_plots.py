"""Campaign plots (huntflow.engine.plots): what they say, read back from the figures."""

from __future__ import annotations

from huntflow.engine import plots, summary
from huntflow.engine.spec import parse_spec


def _spec(**over):
    base = {"slug": "plot-sphere", "model": {"name": "sphere"},
            "space": {"x0": {"low": -1.0, "high": 1.0}, "x1": {"low": -1.0, "high": 1.0}},
            "objectives": [{"metric": "f", "target": 0.01}],
            "fidelities": [{"name": "coarse", "settings": {"bias": 0.3}}, {"name": "fine"}],
            "budget": {"evaluations": 32}}
    base.update(over)
    return parse_spec(base)


def _e(i, fidelity, objective, h, feasible=True, status="succeeded"):
    return {"evaluation_id": f"e{i}", "fidelity": fidelity, "objective": objective, "objectives": [objective],
            "param_hash": h, "feasible": feasible, "status": status, "params": {"x0": 0.1 * i, "x1": 0.0},
            "constraints": [], "ask_id": i, "candidate_index": 0}


def _texts(fig) -> str:
    ax = fig.axes[0]
    parts = [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
    legend = ax.get_legend()
    if legend is not None:
        parts += [t.get_text() for t in legend.get_texts()]
    return " | ".join(parts)


def test_an_empty_campaign_says_so_instead_of_blank_axes():
    spec = _spec()
    figs = plots.figures(spec, summary.kpis(spec, []))
    assert set(figs) == {"best_vs_evaluation", "feasibility_by_fidelity", "promotion_deltas"}
    for name, fig in figs.items():
        assert "yet" in _texts(fig), name
        assert not fig.axes[0].axison


def test_best_per_rung_marks_the_certified_best_and_names_rungs_counts_and_metric():
    spec = _spec()
    evals = [_e(0, 0, 1.19, "a"), _e(1, 0, 3.0, "b"), _e(2, 1, 2.59, "a"), _e(3, 0, 9.0, "c", feasible=False)]
    k = summary.kpis(spec, evals)
    # one best everywhere: the fine (certified) 2.59, although coarse saw a smaller number
    assert k["best_objective"] == 2.59 and k["best"]["best_certified"] and k["best"]["best_fidelity_name"] == "fine"
    figs = plots.figures(spec, k)
    best = _texts(figs["best_vs_evaluation"])
    assert "coarse" in best and "fine" in best and "best 2.59 (fine, certified)" in best and "target 0.01" in best
    feas = _texts(figs["feasibility_by_fidelity"])
    assert "2/3 (67%)" in feas and "1/1 (100%)" in feas
    promo = _texts(figs["promotion_deltas"])
    assert "f at coarse (lower rung)" in promo and "f at fine (higher rung)" in promo and "coarse → fine (1)" in promo


def test_an_uncertified_best_is_labelled_so_and_pngs_are_written(tmp_path):
    spec = _spec()
    k = summary.kpis(spec, [_e(0, 0, 1.19, "a")])
    assert "best 1.19 (coarse, not certified)" in _texts(plots.figures(spec, k)["best_vs_evaluation"])
    files = summary.plot(spec, k, tmp_path)
    assert sorted(p.name for p in files) == ["best_vs_evaluation.png", "feasibility_by_fidelity.png",
                                             "promotion_deltas.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files)
