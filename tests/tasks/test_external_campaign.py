"""A command model's campaign on the real database: failures become rows, kits run with no database."""

from __future__ import annotations

import json
import shutil
import sys
import uuid

import pytest
from typer.testing import CliRunner

from huntflow.engine.spec import parse_spec
from huntflow.flows.cli import app
from huntflow.store import campaigns, generations
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, kit, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

runner = CliRunner()
NO_DATABASE = "postgresql://nobody:secret@127.0.0.1:1/none"

# candidate i behaves as BEHAVIOUR[i]: one of each failure, and two that work
PROGRAM = r'''#!{python}
import json, math, sys, time
job = json.load(open(sys.argv[1]))
how = {behaviour!r}[job["index"]]
x = job["params"]["x"]
if how == "exit":
    sys.stderr.write("segmentation fault (pretend)\n"); sys.exit(139)
if how == "garbage":
    print("<<< not json >>>")
elif how == "hang":
    time.sleep(60)
elif how == "nan":
    print(json.dumps({{"f": math.nan}}))
elif how == "missing":
    json.dump({{"g": 1.0}}, open("metrics.json", "w"))
else:
    json.dump({{"f": (x - 0.5) ** 2}}, open("metrics.json", "w"))
'''
BEHAVIOUR = ["ok", "exit", "garbage", "hang", "nan", "missing", "ok", "ok"]


def _ctx(operator: str = "inline") -> TickContext:
    tick = uuid.uuid4()
    return TickContext(tick_id=tick, owner=f"tick:{tick}", operator=operator)


@pytest.fixture
def spec(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM.format(python=sys.executable, behaviour=BEHAVIOUR))
    prog.chmod(0o755)
    return parse_spec({
        "slug": "byo-command-failures",
        "model": {"command": [str(prog), "{input}"], "metrics": ["f"], "workers": 4, "walltime_seconds": 1.5},
        "space": {"x": {"low": 0.0, "high": 1.0}},
        "objectives": [{"metric": "f"}],
        "budget": {"evaluations": len(BEHAVIOUR)},
        "optimizer": {"name": "random", "population": len(BEHAVIOUR)},
        "review": {"spot_check_top": 1},
        "seed": 1,
    })


def test_each_failure_is_recorded_with_its_category_and_the_campaign_completes(db, spec):
    cid = campaigns.insert_campaign(db, spec)
    for stage, logic in [(Stage.EVOLVE, evolve.run), (Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run),
                         (Stage.REVIEW, review.run), (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]:
        run_stage(stage, _ctx(), cid, logic)
    (gen,) = db.execute("select * from hunt.generations where campaign_id = %s and kind <> 'verification'",
                        (cid,)).fetchall()
    assert gen["status"] == "told"
    # review re-ran the best candidate: a repeat run (the program declares no perturbations)
    (check,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'verification'",
                          (cid,)).fetchall()
    assert check["meta"]["verification"]["perturbation"] == "repeat" and check["status"] == "reviewed"
    rows = sorted(generations.evaluations(db, gen["generation_id"]), key=lambda r: r["candidate_index"])
    assert [r["failure_category"] for r in rows] == [None, "exit_code", "invalid_output", "timeout", "nonfinite",
                                                     "invalid_output", None, None]
    assert [r["status"] for r in rows].count("succeeded") == 3
    detail = {r["candidate_index"]: r["failure_detail"] for r in rows}
    assert detail[0] is None
    assert detail[1]["code"] == 139 and "segmentation fault" in detail[1]["stderr_tail"]
    assert "<<< not json >>>" in detail[2]["found"] and detail[3]["walltime_seconds"] == 1.5
    assert "missing metric(s) ['f']" in detail[5]["message"]
    for r in rows:
        src = r["provenance"]["model_source"]
        assert src["kind"] == "command" and src["executable"] == spec.model.command[0]
        assert len(src["sha256"][src["executable"]]) == 64
    assert 1.4 < rows[3]["wall_seconds"] < 30
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    assert row["model"] == "command:prog.py"


def test_a_kit_of_a_command_model_runs_without_a_database(db, spec, monkeypatch, tmp_path):
    cid = campaigns.insert_campaign(db, spec)
    run_stage(Stage.EVOLVE, _ctx("manual"), cid, evolve.run)
    run_stage(Stage.DISPATCH, _ctx("manual"), cid, dispatch.run)
    (waiting,) = kit.waiting(db)
    directory = tmp_path / "kit"
    shutil.copytree(waiting["kit"], directory)
    assert json.loads((directory / "kit.json").read_text())["model"]["command"] == spec.model.command
    with monkeypatch.context() as m:
        m.setenv("SUPABASE_DB_URL", NO_DATABASE)
        m.setenv("HUNTFLOW_DATA_DIR", str(tmp_path / "elsewhere"))
        refused = runner.invoke(app, ["kit", "run", str(directory), "--json"])  # a program from outside
        result = runner.invoke(app, ["kit", "run", str(directory), "--trust-code", "--json"])
    assert refused.exit_code == 2 and "model.command" in refused.output and "--trust-code" in refused.output
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == 3
    doc = json.loads((directory / "result.json").read_text())
    assert [c["failure_category"] for c in doc["candidates"]][1:4] == ["exit_code", "invalid_output", "timeout"]
    assert (directory / "artifact.h5").is_file() and list(directory.glob("artifact.a*/c00000/input.json"))
    shutil.copytree(directory, waiting["kit"], dirs_exist_ok=True)
    result = runner.invoke(app, ["kit", "import", waiting["kit"], "--json"])
    assert result.exit_code == 0, result.output
    run_stage(Stage.PARSE, _ctx(), cid, parse.run)
    rows = generations.evaluations(db, uuid.UUID(waiting["generation_id"]))
    assert sorted(r["failure_category"] or "ok" for r in rows) == sorted(
        ["ok", "exit_code", "invalid_output", "timeout", "nonfinite", "invalid_output", "ok", "ok"])


def test_a_re_run_generation_of_a_seeded_function_gives_the_same_results(db, tmp_path):
    (tmp_path / "byo_seeded_sim.py").write_text(
        "import numpy as np\n"
        "def sim(params, *, fidelity, seed, workdir):\n"
        "    return {'f': params['x'] + float(np.random.default_rng(seed).normal())}\n")
    spec = parse_spec({"slug": "byo-seeded", "space": {"x": {"low": 0.0, "high": 1.0}},
                       "model": {"function": "byo_seeded_sim:sim", "metrics": ["f"], "pythonpath": [str(tmp_path)],
                                 "workers": 2},
                       "objectives": [{"metric": "f"}], "budget": {"evaluations": 4},
                       "optimizer": {"name": "random", "population": 4}, "seed": 8})
    cid = campaigns.insert_campaign(db, spec)
    run_stage(Stage.EVOLVE, _ctx(), cid, evolve.run)
    run_stage(Stage.DISPATCH, _ctx(), cid, dispatch.run)
    (gen,) = db.execute("select * from hunt.generations where campaign_id = %s and kind <> 'verification'",
                        (cid,)).fetchall()
    first = [c["metrics"]["f"] for c in gen["result_document"]["candidates"]]
    # as if the run had died after succeeding: the generation goes back and runs again (attempt 2)
    assert generations.retry_or_fail(db, gen["generation_id"], [GS.SUCCEEDED], "test: interrupted") is not None
    run_stage(Stage.DISPATCH, _ctx(), cid, dispatch.run)
    again = generations.get(db, gen["generation_id"])
    assert again["attempt"] == 2 and again["status"] == "succeeded"
    assert [c["metrics"]["f"] for c in again["result_document"]["candidates"]] == first
    assert len(set(first)) == 4 and all(c["status"] == "ok" for c in again["result_document"]["candidates"])
