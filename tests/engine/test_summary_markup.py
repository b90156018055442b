"""User text in rung names (rich markup, matplotlib mathtext) never crashes the summary."""

from __future__ import annotations

from huntflow.engine import summary
from huntflow.engine.spec import parse_spec

NAMES = ["[bold]lo[/", r"$\frac{$"]


def test_markup_like_rung_names_plot_and_print(tmp_path):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    spec = parse_spec({"slug": "markup", "model": {"name": "sphere"},
                       "space": {"x0": {"low": -1, "high": 1}, "x1": {"low": -1, "high": 1}},
                       "objectives": [{"metric": "f"}], "budget": {"evaluations": 32},
                       "fidelities": [{"name": n} for n in NAMES]})
    evals = [{"fidelity": i % 2, "objectives": [0.5 - i / 10], "objective": 0.5 - i / 10, "param_hash": f"h{i // 2}",
              "feasible": True, "status": "succeeded", "metrics": {"f": 0.5 - i / 10}} for i in range(6)]
    kpis = summary.kpis(spec, evals)
    assert [r["fidelity"] for r in kpis["feasibility"]] == NAMES
    written = summary.plot(spec, kpis, tmp_path)
    assert written and all(p.stat().st_size > 0 for p in written)
    table = Table()
    table.add_column("fidelity")
    for r in kpis["feasibility"]:
        table.add_row(escape(r["fidelity"]))  # what `huntflow summary` prints
    console = Console(record=True, width=60)
    console.print(table)
    assert NAMES[0] in console.export_text()
