"""A mixed integer / categorical / continuous / fixed campaign through the real tick: the rows
hold the user's values, the JAX model gets the choice index, and no point is evaluated twice."""

from __future__ import annotations

from collections import Counter

import pytest

from huntflow.engine import artifacts
from huntflow.store import campaigns, generations

pytestmark = pytest.mark.usefixtures("prefect_harness")

KINDS = ["euler", "rk4", "leapfrog"]


def test_a_mixed_space_campaign_completes_with_typed_params_and_no_repeated_point(db, make_spec):
    from huntflow.flows.tick import hunt_tick

    spec = make_spec(
        slug="mixed-space",
        model={"name": "mixed"},
        space={"x": {"low": 0.0, "high": 1.0}, "n": {"type": "int", "low": 1, "high": 5},
               "kind": {"choices": KINDS}},
        objectives=[{"metric": "f", "goal": "minimize"}],
        constraints=[{"metric": "g", "max": 0.0}],
        budget={"evaluations": 32},
        optimizer={"name": "cma", "population": 8},
    )
    cid = campaigns.insert_campaign(db, spec)
    for _ in range(10):
        hunt_tick()
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
    row = campaigns.get_campaign(db, cid)
    assert row["status"] == "completed", row["completion_reason"]
    evals = generations.campaign_evaluations(db, cid)
    assert evals and all(e["status"] == "succeeded" for e in evals)
    for e in evals:
        p = e["params"]
        assert set(p) == {"x", "n", "kind"}
        assert type(p["n"]) is int and 1 <= p["n"] <= 5 and p["kind"] in KINDS and type(p["x"]) is float
        # the model saw the choice's index: f is the benchmark's value for that index
        c = KINDS.index(p["kind"])
        f = (p["x"] - 0.3) ** 2 + 0.1 * (p["n"] - 3) ** 2 + 0.5 * min(abs(c - 1), 2)
        assert e["metrics"]["f"] == pytest.approx(f, rel=1e-4, abs=1e-5)
    per_rung = Counter((e["fidelity"], e["param_hash"]) for e in evals)
    assert max(per_rung.values()) == 1
    path = db.execute("select artifact_path from hunt.generations where campaign_id = %s and artifact_path is not null"
                      " order by generation_index limit 1", (cid,)).fetchone()["artifact_path"]
    art = artifacts.read_generation(path)
    kind_col = list(art.param_names).index("kind")
    assert set(art.params[:, kind_col].tolist()) <= {0.0, 1.0, 2.0}
