"""The manual operator: generations out as kit directories, run without a database, imported back."""

from __future__ import annotations

import json
import shutil

import numpy as np
from typer.testing import CliRunner

from huntflow.engine.evaluate import evaluate_population
from huntflow.flows.cli import app
from huntflow.store import campaigns, generations
from huntflow.tasks import kit

runner = CliRunner()
NO_DATABASE = "postgresql://nobody:secret@127.0.0.1:1/none"  # any database access fails


def _tick(cid):
    from huntflow.flows.tick import hunt_tick

    return hunt_tick([str(cid)])["campaigns"].get(str(cid), {})


def _gens(db, cid):
    return db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()


def _run_elsewhere(directory, tmp_path, monkeypatch):
    """Run a kit copied to another place, with no database reachable, and bring it back."""
    remote = tmp_path / "remote" / directory.name
    shutil.copytree(directory, remote)
    with monkeypatch.context() as m:
        m.setenv("SUPABASE_DB_URL", NO_DATABASE)
        m.setenv("HUNTFLOW_DATA_DIR", str(tmp_path / "elsewhere"))
        result = runner.invoke(app, ["kit", "run", str(remote), "--json"])
    assert result.exit_code == 0, result.output
    shutil.copytree(remote, directory, dirs_exist_ok=True)
    return json.loads(result.stdout)


def test_a_campaign_runs_to_completion_through_kits(db, make_spec, prefect_harness, monkeypatch, tmp_path):
    monkeypatch.setenv("HUNTFLOW_OPERATOR", "manual")
    monkeypatch.setenv("HUNTFLOW_GENERATION_TIMEOUT_SECONDS", "0")  # a kit is never "lost"
    spec = make_spec(slug="kit-sphere", budget={"evaluations": 16})
    cid = campaigns.insert_campaign(db, spec)
    imported = 0
    for _ in range(12):
        out = _tick(cid)
        assert out["parse"]["lost"] == []
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        for waiting in kit.waiting(db):
            directory = kit.kit_dir({"generation_index": waiting["generation_index"],
                                     "generation_id": waiting["generation_id"]}, "kit-sphere", waiting["attempt"])
            assert str(directory) == waiting["kit"]
            _run_elsewhere(directory, tmp_path, monkeypatch)
            result = runner.invoke(app, ["kit", "import", str(directory), "--json"])
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["status"] == "succeeded"
            imported += 1
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    every = _gens(db, cid)
    gens = [g for g in every if g["kind"] != "verification"]
    checks = [g for g in every if g["kind"] == "verification"]  # review's re-runs travel as kits too
    assert imported == len(every) and all(g["operator"] == "manual" for g in every)
    # review re-runs a generation's contenders only (rows that would beat their rung's incumbent):
    # the first generation always has one, a later one only if it improved on the first
    assert [g["status"] for g in gens] == ["told"] * 2 and 1 <= len(checks) <= 2
    assert all(g["status"] == "reviewed" for g in checks) and checks[0]["generation_index"] == 0
    # the numbers are the engine's: re-evaluate the first generation here and compare
    g = gens[0]
    evals = [e for e in generations.campaign_evaluations(db, cid) if e["generation_id"] == g["generation_id"]]
    x = np.array([[e["params"][n] for n in spec.param_names] for e in evals])
    again = evaluate_population("sphere", spec.param_names, x, seed=int(g["seed"]), dtype=spec.dtype)
    np.testing.assert_array_equal(np.array([e["metrics"]["f"] for e in evals]), again.metrics["f"])
    assert all(e["provenance"]["seed"] == g["seed"] and e["provenance"]["jax_backend"] for e in evals)
    assert g["artifact_path"].startswith(str(kit.get_settings().artifacts_dir))


def test_a_kit_that_does_not_check_out_is_refused_and_nothing_is_stored(db, make_spec, prefect_harness, monkeypatch,
                                                                         tmp_path):
    monkeypatch.setenv("HUNTFLOW_OPERATOR", "manual")
    cid = campaigns.insert_campaign(db, make_spec(slug="kit-bad", budget={"evaluations": 8}))
    _tick(cid)
    _tick(cid)
    [g] = _gens(db, cid)
    directory = kit.kit_dir(g, "kit-bad", g["attempt"])
    assert g["status"] == "dispatched" and g["dispatch_ref"] == f"manual:{directory}"

    def refused(fragment):
        result = runner.invoke(app, ["kit", "import", str(directory)])
        assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output
        assert generations.get(db, g["generation_id"])["status"] == "dispatched"

    refused("result.json is missing (run `huntflow kit run` first)")
    _run_elsewhere(directory, tmp_path, monkeypatch)
    good = (directory / "result.json").read_text()
    doc = json.loads(good)
    (directory / "result.json").write_text(json.dumps({**doc, "generation_id": "00000000-0000-0000-0000-000000000000"}))
    refused("generation_id")
    for entry in doc["candidates"]:
        entry["metrics"].pop("f", None)
    (directory / "result.json").write_text(json.dumps(doc))
    refused("malformed")
    (directory / "result.json").write_text("{not json")
    refused("not valid JSON")
    (directory / "result.json").write_text(good)
    kit_json = json.loads((directory / "kit.json").read_text())
    (directory / "kit.json").write_text(json.dumps({**kit_json, "attempt": 2}))
    refused("the kit is attempt 2, the generation is at attempt 1")
    (directory / "kit.json").write_text(json.dumps({**kit_json, "params": [[1.0]]}))
    refused("kit.json: params must be")
    (directory / "kit.json").write_text(json.dumps(kit_json))
    assert runner.invoke(app, ["kit", "import", str(directory)]).exit_code == 0
    assert generations.get(db, g["generation_id"])["status"] == "succeeded"
    result = runner.invoke(app, ["kit", "import", str(directory)])
    assert result.exit_code == 2 and "is succeeded, not waiting for a kit" in " ".join(result.output.split())
