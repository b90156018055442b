"""The huntflow CLI: adding campaigns validates at the edge and loses nothing."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from huntflow.flows.cli import app
from huntflow.store import campaigns

runner = CliRunner()


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _spec(**over):
    base = {"slug": "cli-sphere", "model": {"name": "sphere"},
            "space": {"x0": {"low": -1, "high": 1}, "x1": {"low": -1, "high": 1}},
            "objectives": [{"metric": "f"}], "budget": {"evaluations": 32}}
    base.update(over)
    return base


def test_campaign_add_stores_a_valid_spec(db, tmp_path):
    result = runner.invoke(app, ["campaign", "add", str(_write(tmp_path, "s.yaml", _spec())), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert (row["slug"], row["status"], row["evaluations_budget"]) == ("cli-sphere", "active", 32)
    assert campaigns.get_campaign(db, "cli-sphere")["spec"]["budget"]["evaluations"] == 32


def test_invalid_spec_is_rejected_naming_the_field_and_stores_nothing(db, tmp_path):
    runner.invoke(app, ["campaign", "add", str(_write(tmp_path, "ok.yaml", _spec(slug="kept-one")))])
    bad = _spec(slug="Bad Slug", space={"x0": {"low": 1, "high": -1}, "x1": {"low": -1, "high": 1}},
                budget={"evaluations": 0})
    result = runner.invoke(app, ["campaign", "add", str(_write(tmp_path, "bad.yaml", bad))])
    assert result.exit_code == 2
    assert "space.x0" in result.output and "budget.evaluations" in result.output
    assert "[a-z0-9]" in result.output  # the message is printed as text, not eaten as markup
    slugs = [r["slug"] for r in db.execute("select slug from hunt.campaigns").fetchall()]
    assert slugs == ["kept-one"]


def test_duplicate_slug_is_refused_and_the_stored_campaign_is_intact(db, tmp_path):
    path = _write(tmp_path, "s.yaml", _spec())
    assert runner.invoke(app, ["campaign", "add", str(path)]).exit_code == 0
    again = runner.invoke(app, ["campaign", "add", str(_write(tmp_path, "t.yaml", _spec(seed=99)))])
    assert again.exit_code == 2 and "already exists" in again.output
    assert campaigns.get_campaign(db, "cli-sphere")["seed"] == 0


def test_missing_file_and_unknown_campaign_are_clear_errors(db, tmp_path):
    result = runner.invoke(app, ["campaign", "add", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output
    result = runner.invoke(app, ["status", "no-such-campaign"])
    assert result.exit_code == 2 and "no campaign" in result.output
    result = runner.invoke(app, ["campaign", "extend", "no-such-campaign", "-n", "5"])
    assert result.exit_code == 2 and "no campaign" in result.output


def test_generation_run_names_a_bad_or_unknown_id_and_runs_a_planned_generation_once(db, tmp_path, make_spec):
    bad = runner.invoke(app, ["generation", "run", "not-a-uuid"])
    assert bad.exit_code == 2 and "must be a UUID" in bad.output
    unknown = runner.invoke(app, ["generation", "run", "00000000-0000-0000-0000-000000000000"])
    assert unknown.exit_code == 2 and "no generation" in unknown.output

    from huntflow.store import generations
    import uuid

    from huntflow.tasks._stage import TickContext
    from huntflow.tasks.evolve import run as evolve_run

    cid = campaigns.insert_campaign(db, make_spec(slug="cli-gen", budget={"evaluations": 8}))
    evolve_run(db, campaigns.get_campaign(db, cid), TickContext(tick_id=uuid.uuid4(), owner="test", operator="slurm"))
    [g] = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    gid = str(g["generation_id"])
    stale = runner.invoke(app, ["generation", "run", gid, "--attempt", "3", "--json"])
    assert stale.exit_code == 0 and json.loads(stale.stdout)["status"] == "noop"
    assert generations.get(db, g["generation_id"])["status"] == "planned"
    ran = runner.invoke(app, ["generation", "run", gid, "--json"])
    assert ran.exit_code == 0, ran.output
    out = json.loads(ran.stdout)
    assert out["status"] == "succeeded" and out["candidates"] == 8
    assert generations.get(db, g["generation_id"])["status"] == "succeeded"
    again = runner.invoke(app, ["generation", "run", gid, "--json"])
    assert json.loads(again.stdout) == {"generation_id": gid, "status": "noop", "was": "succeeded"}
