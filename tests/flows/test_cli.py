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
