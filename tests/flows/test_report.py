"""The campaign report (``huntflow report``, the ``hunt-report`` flow, the tick's report on
completion) on the real stack: embedded Postgres, Prefect harness, JAX, nevergrad.

Two tiny campaigns (a single-objective sphere on a two-rung ladder and a two-objective ZDT1) are
hunted to completion once for the module; every test reads them (the ``db`` fixture would empty
the tables between tests, so the module opens its own connection and empties them once).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from huntflow.engine.optimize.pareto import dominates, hypervolume
from huntflow.flows.cli import add_campaign_file, app
from huntflow.store import campaigns, findings
from huntflow.store.states import Severity

runner = CliRunner()

SPHERE = {
    "slug": "report-sphere", "model": {"name": "sphere"},
    "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
    "objectives": [{"metric": "f", "goal": "minimize"}],
    "fidelities": [{"name": "rough", "settings": {"bias": 0.3}, "promote_top_k": 3}, {"name": "exact"}],
    "budget": {"evaluations": 24}, "optimizer": {"name": "ngopt", "population": 8}, "seed": 5,
}
ZDT = {
    "slug": "report-zdt", "model": {"name": "zdt1"},
    "space": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(3)},
    "objectives": [{"metric": "f1"}, {"metric": "f2"}], "reference_point": [1.1, 10.0],
    "budget": {"evaluations": 16}, "optimizer": {"name": "ngopt", "population": 8}, "seed": 2,
}


def _cli(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def hunted(database_url, prefect_harness, tmp_path_factory):
    """Both campaigns hunted to completion; yields (connection, {slug: campaign row})."""
    from huntflow.flows.tick import hunt_tick
    from huntflow.store.connection import connect

    conn = connect(database_url)
    conn.execute("truncate hunt.campaigns cascade")
    conn.execute("update hunt.settings set value = '4'::jsonb where key = 'max_concurrent_campaigns'")
    specs = tmp_path_factory.mktemp("specs")
    for spec in (SPHERE, ZDT):
        path = specs / f"{spec['slug']}.yaml"
        path.write_text(yaml.safe_dump(spec))
        add_campaign_file(path)
    for _ in range(15):
        hunt_tick()
        rows = {s["slug"]: campaigns.get_campaign(conn, s["slug"]) for s in (SPHERE, ZDT)}
        if all(r["status"] != "active" for r in rows.values()):
            break
    assert all(r["status"] == "completed" for r in rows.values()), {s: r["status"] for s, r in rows.items()}
    try:
        yield conn, rows
    finally:
        conn.close()


def _best_row(conn, cid, top: int) -> dict:
    """The certified best straight from SQL: feasible, succeeded, top rung, smallest objective."""
    return conn.execute(
        "select e.*, g.artifact_path from hunt.evaluations e join hunt.generations g using (generation_id)"
        " where e.campaign_id = %s and e.status = 'succeeded' and e.feasible and e.fidelity = %s"
        " order by e.objective, g.ask_id, e.candidate_index limit 1",
        (cid, top),
    ).fetchone()


def test_completed_campaign_report_names_the_certified_best(hunted, tmp_path):
    conn, rows = hunted
    row = rows["report-sphere"]
    cid = row["campaign_id"]
    findings.insert_findings(conn, cid, None, [
        findings.Finding(Severity.MEDIUM, "slow_generation", "took | long <b>"),
        findings.Finding(Severity.HIGH, "reproducibility", "claimed 1, re-run gives 2"),
    ])
    best = _best_row(conn, cid, top=1)

    result = _cli("report", "report-sphere", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)

    c = rep["campaign"]
    assert (c["slug"], c["model"], c["status"], c["completion_reason"]) == (
        "report-sphere", "sphere", "completed", row["completion_reason"])
    assert c["seed"] == 5 and c["evaluations_budget"] == 24 and c["optimizer"]["name"] == "ngopt"
    assert c["created_at"] and c["finished_at"]
    n_evals = conn.execute("select count(*) as n from hunt.evaluations e join hunt.generations g using (generation_id)"
                           " where e.campaign_id = %s and e.status <> 'pending' and g.kind <> 'verification'",
                           (cid,)).fetchone()["n"]  # review's verification re-runs are not budget
    assert c["evaluations_used"] == n_evals

    b = rep["best"]
    assert b["certified"] is True and b["fidelity_name"] == "exact"
    assert b["evaluation_id"] == str(best["evaluation_id"]) == str(row["best_evaluation_id"])
    assert b["params"] == best["params"]
    assert b["objective"] == pytest.approx(best["objective"]) and row["best_objective"] == pytest.approx(best["objective"])
    assert b["objectives"][0]["value"] == pytest.approx(best["metrics"]["f"])
    assert {"engine_version", "git_commit", "jax_version", "jax_backend", "seed", "fidelity"} <= set(b["provenance"])
    assert b["artifact_path"] == best["artifact_path"] and Path(b["artifact_path"]).is_file()
    assert b["result_document"]["generation_id"] == str(best["generation_id"])

    ladder = rep["ladder"]
    assert [r["name"] for r in ladder["rungs"]] == ["rough", "exact"]
    assert sum(r["evaluations"] for r in ladder["rungs"]) == n_evals
    assert ladder["promotions"] and ladder["promotions"][0]["from"] == "rough"
    traj = rep["trajectory"]
    n_traj = conn.execute("select count(*) as n from hunt.trajectories where campaign_id = %s", (cid,)).fetchone()["n"]
    assert traj["generations"] == n_traj > 0
    assert traj["best_objective"] == pytest.approx(best["objective"])
    assert all(ch["from"] != ch["to"] for ch in traj["mode_changes"])
    assert rep["findings"]["total"] == 2 and rep["findings"]["by_severity"]["high"] == 1
    assert rep["findings"]["most_severe"][0]["kind"] == "reproducibility"
    v = rep["verification"]  # review's cost against the search it checked, from the rows
    n_checks = conn.execute("select count(*) as n from hunt.evaluations e join hunt.generations g using (generation_id)"
                            " where e.campaign_id = %s and e.status <> 'pending' and g.kind = 'verification'",
                            (cid,)).fetchone()["n"]
    assert v["evaluations"] == n_checks > 0 and v["search_evaluations"] == n_evals
    assert v["evaluation_share"] == pytest.approx(n_checks / n_evals)
    stages = {s["stage"]: s for s in rep["stages"]}
    assert set(stages) == {"discover", "dispatch", "parse", "review", "evolve", "learn"}
    assert stages["learn"]["runs"] == rep["campaign"]["ticks"] and stages["learn"]["failed"] == 0

    md = (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["best"] == b
    for section in ("## Best candidate", "**Certified**", "### Provenance", "## Fidelity ladder", "## Trajectory",
                    "## Review findings", "## Stage health"):
        assert section in md, section
    for name, value in best["params"].items():
        assert f"| `{name}` | {value:.6g} |" in md
    assert b["provenance"]["git_commit"] in md and b["artifact_path"] in md
    assert f"Verification: {n_checks} re-run evaluation(s)" in md
    assert "took \\| long \\<b\\>" in md  # free text cannot break the table or inject HTML
    assert (tmp_path / "evaluations.csv").is_file() and rep["files"]["plots"]
    assert all(Path(p).is_file() for p in rep["files"]["plots"])

    # the default output: a short summary and where the files are
    plain = _cli("report", "report-sphere", "--out", str(tmp_path / "again"))
    assert plain.exit_code == 0, plain.output
    assert "certified" in plain.stdout and "report.md" in plain.stdout


def test_status_summary_show_and_report_name_the_same_best(hunted, tmp_path):
    """One definition of the best everywhere: the certified (top rung) best, with its rung."""
    conn, rows = hunted
    row = rows["report-sphere"]
    best = _best_row(conn, row["campaign_id"], top=1)
    rough_min = conn.execute("select min(objective) as m from hunt.evaluations where campaign_id = %s and fidelity = 0"
                             " and status = 'succeeded' and feasible", (row["campaign_id"],)).fetchone()["m"]
    assert rough_min < best["objective"]  # the biased coarse rung looks better: it must not win
    [status] = json.loads(_cli("status", "report-sphere", "--json").stdout)
    summary = json.loads(_cli("summary", "report-sphere", "--no-plots", "--out", str(tmp_path), "--json").stdout)
    shown = json.loads(_cli("campaign", "show", "report-sphere", "--json").stdout)
    rep = json.loads(_cli("report", "report-sphere", "--out", str(tmp_path / "r"), "--json").stdout)
    assert status["best_objective"] == pytest.approx(best["objective"])
    assert (status["best_fidelity_name"], status["best_certified"]) == ("exact", True)
    assert summary["best"]["evaluation_id"] == str(best["evaluation_id"]) == rep["best"]["evaluation_id"]
    assert summary["best_objective"] == pytest.approx(best["objective"]) == rep["best"]["objective"]
    assert summary["best"]["best_certified"] and rep["best"]["certified"]
    assert shown["best_params"] == best["params"] == rep["best"]["params"]
    table = runner.invoke(app, ["status", "report-sphere"], env={"COLUMNS": "200"}).stdout
    assert f"{best['objective']:.6g} (exact, certified)" in " ".join(table.split())


def test_the_tick_wrote_the_report_when_learn_completed_the_campaign(hunted, data_dir):
    conn, rows = hunted
    for slug, row in rows.items():
        out = data_dir / "reports" / slug
        rep = json.loads((out / "report.json").read_text())
        assert rep["campaign"]["status"] == "completed"
        assert rep["best"]["evaluation_id"] == str(row["best_evaluation_id"])
        assert f"# Campaign report: {slug}" in (out / "report.md").read_text()
        assert (out / "evaluations.csv").is_file()
        assert not list(out.glob("*.png"))  # plots are `huntflow report`'s, not the tick's
        # written after learn's row was closed: the last tick's stages all finished
        assert all(st["running"] == 0 for st in rep["stages"]) and rep["stages"][-1]["stage"] == "learn"
        assert rep["stages"][-1]["runs"] == rep["campaign"]["ticks"]


def test_multi_objective_report_lists_the_feasible_front(hunted, tmp_path):
    conn, rows = hunted
    cid = rows["report-zdt"]["campaign_id"]
    result = _cli("report", "report-zdt", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    front = json.loads(result.stdout)["front"]
    assert front["certified"] and front["size"] > 0 and front["hypervolume"] > 0
    feasible = conn.execute(
        "select evaluation_id, objectives from hunt.evaluations where campaign_id = %s and status = 'succeeded'"
        " and feasible", (cid,)).fetchall()
    by_id = {str(e["evaluation_id"]): np.asarray(e["objectives"]) for e in feasible}
    pts = np.asarray([[p["objectives"]["f1"], p["objectives"]["f2"]] for p in front["points"]])
    for p, xy in zip(front["points"], pts):
        assert np.allclose(by_id[p["evaluation_id"]], xy)  # both minimized: the user's sign is the stored one
        assert not any(dominates(other, xy) for other in by_id.values())
    assert front["hypervolume"] == pytest.approx(hypervolume(pts, np.array([1.1, 10.0])))
    md = (tmp_path / "report.md").read_text()
    assert "## Pareto front" in md and f"{front['hypervolume']:.6g}" in md


def test_hunt_report_flow_publishes_the_markdown_artifact(hunted, tmp_path):
    from prefect.artifacts import Artifact

    from huntflow.flows.report import hunt_report

    files = hunt_report("report-zdt", out_dir=str(tmp_path))
    assert Path(files["markdown"]).is_file() and Path(files["json"]).is_file()
    artifact = Artifact.get("report-report-zdt")
    assert artifact is not None and "# Campaign report: report-zdt" in artifact.data


def test_a_just_added_campaign_renders(hunted, tmp_path):
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump({**SPHERE, "slug": "report-fresh"}))
    add_campaign_file(path)
    result = _cli("report", "report-fresh", "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["best"] is None and rep["evaluations"]["total"] == 0 and rep["trajectory"]["generations"] == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "No evaluations yet" in md and "No generation has been told yet" in md


def test_unknown_slug_is_a_clear_error(database_url, tmp_path):
    result = _cli("report", "no-such-campaign", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "no-such-campaign" in result.output
    assert not (tmp_path / "report.md").exists()


def test_render_survives_nan_none_and_hostile_text(make_spec):
    """The renderer alone, on rows with holes: strict JSON out, nothing raised."""
    from huntflow.engine import report

    spec = make_spec(constraints=[{"metric": "f", "max": 10.0}])
    evals = [
        {"evaluation_id": "e0", "generation_id": "g0", "generation_index": 0, "ask_id": 0, "kind": "search",
         "candidate_index": 0, "fidelity": 0, "status": "succeeded", "feasible": True, "objective": 0.5,
         "objectives": [0.5], "constraints": [-9.5], "metrics": {"f": 0.5, "aux": float("nan")},
         "params": {"x0": 0.1, "x1": float("nan"), "x2": None}, "param_hash": "h", "provenance": None,
         "failure_category": None, "wall_seconds": None},
        {"evaluation_id": "e1", "generation_id": "g0", "generation_index": 0, "ask_id": 0, "kind": "search",
         "candidate_index": 1, "fidelity": 0, "status": "failed", "feasible": None, "objective": None,
         "objectives": None, "constraints": None, "metrics": None, "params": {"x0": 1, "x1": 1, "x2": 1},
         "param_hash": "i", "provenance": {}, "failure_category": "nonfinite", "wall_seconds": float("inf")},
    ]
    campaign = {"slug": "sphere-3d", "status": "active", "mode": None, "created_at": None, "evaluations_budget": 48}
    traj = [{"generation_index": 0, "evaluations_used": 2, "best_objective": float("nan"), "improvement": None,
             "feasible_fraction": None, "hypervolume": None, "mode": "explore", "reward": 0.0, "details": None}]
    finds = [{"finding_id": 1, "severity": "critical", "kind": "nonfinite_metric", "message": "a|b\nc`d",
              "evaluation_id": None, "generation_id": None}]
    rep = report.build(campaign, spec, evals, traj, finds, [], [])
    json.dumps(rep, allow_nan=False)
    assert rep["best"]["params"]["x1"] is None and rep["best"]["metrics"]["aux"] is None
    md = report.markdown(rep)
    assert "a\\|b c\\`d" in md and "**Certified**" in md
    assert report.num(1 / 3) == "0.333333" and report.num(float("nan")) == "nan" and report.num(None) == "—"
    assert not math.isnan(rep["best"]["objective"])

    # on a ladder, a best found only below the top rung is reported, and said to be uncertified
    ladder = make_spec(fidelities=[{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}])
    rep = report.build(campaign, ladder, evals[:1])
    assert rep["best"]["certified"] is False and rep["best"]["fidelity_name"] == "rough"
    assert "**Not certified**" in report.markdown(rep)
