"""A ConStellaration P1 campaign end to end: the stellarator model registered through the
``huntflow.models`` entry point, VMEC++ in the function-model process pool, the real tick on the
embedded Postgres, and the report. Very-low-fidelity VMEC++ runs of a few seconds each."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("constellaration", reason="the 'stellarator' extra (constellaration, VMEC++) is not installed")

from huntflow.engine.evaluate import evaluate_population  # noqa: E402
from huntflow.engine.models.stellarator import VIOLATIONS  # noqa: E402
from huntflow.engine.models.stellarator.boundary import fixed_and_space, initial_boundary, params_from_boundary  # noqa: E402
from huntflow.engine.spec import parse_spec  # noqa: E402
from huntflow.store import campaigns, generations  # noqa: E402

VERY_LOW = {"preset": "very_low_fidelity"}
FAILURES = {"invalid_boundary", "vmec_nonconvergence"}


def _p1(**overrides):
    fixed, space = fixed_and_space("p1", 1, 1, half_width=0.1)  # 8 coefficients near the rotating ellipse
    base = {
        "slug": "stellarator-p1-ci",
        "model": {"name": "stellarator", "fixed": fixed, "workers": 2, "walltime_seconds": 300},
        "space": space,
        "objectives": [{"metric": "objective", "goal": "minimize"}],
        "constraints": [{"metric": f"violation_{v}", "max": 0.01} for v in VIOLATIONS["p1"]],
        "fidelities": [{"name": "very-low", "settings": VERY_LOW}],
        "budget": {"evaluations": 4},
        "optimizer": {"name": "ngopt", "population": 4},  # one generation: two VMEC++ runs per worker
        "review": {"spot_check_top": 0},
        "seed": 5,
    }
    base.update(overrides)
    return parse_spec(base)


def test_one_evaluation_through_the_pool_and_an_invalid_boundary_is_its_category(tmp_path):
    spec = _p1()
    x0 = params_from_boundary(initial_boundary("p1"), 1, 1)
    good = [x0[n] for n in spec.param_names]
    bad = [0.9 if n == "rc_m1_n0" else x0[n] for n in spec.param_names]  # minor radius 0.9 at R = 1
    out = evaluate_population(spec.model, spec.param_names, np.array([good, bad]), seed=1, fidelity=VERY_LOW,
                              workdir=tmp_path)
    assert out.failures[0] is None and out.failures[1]["category"] == "invalid_boundary"
    assert out.metrics["objective"][0] == out.metrics["max_elongation"][0] > 1.0
    assert out.metrics["feasible"][0] == 0.0  # the ellipse misses P1's triangularity bound
    assert list(tmp_path.glob("c*/boundary.json"))


@pytest.mark.usefixtures("prefect_harness")
def test_p1_campaign_runs_to_completion_with_the_packages_metrics(db, tmp_path):
    from huntflow.engine.report import build as build_report
    from huntflow.engine.report import markdown
    from huntflow.flows.tick import hunt_tick
    from huntflow.store.reports import report_inputs

    cid = campaigns.insert_campaign(db, _p1())
    for _ in range(4):
        hunt_tick()
        row = campaigns.get_campaign(db, cid)
        if row["status"] != "active":
            break
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    evals = generations.campaign_evaluations(db, cid)
    assert len(evals) == 4
    ok = [e for e in evals if e["status"] == "succeeded"]
    assert ok, [e["failure_category"] for e in evals]
    assert all(e["failure_category"] in FAILURES for e in evals if e["status"] != "succeeded")
    for e in ok:
        m = e["metrics"]
        assert m["objective"] == m["max_elongation"] and all(math.isfinite(v) for v in m.values())
        assert m["feasibility"] == pytest.approx(max(0.0, *(m[f"violation_{v}"] for v in VIOLATIONS["p1"])))
        src = e["provenance"]["model_source"]
        assert src["function"] == "huntflow.engine.models.stellarator.evaluate:evaluate"
        assert src["registered"]["entry_point"] == "huntflow.models:stellarator"
    report = build_report(**report_inputs(db, cid))
    assert report["best"] is None  # 4 evaluations near the rotating ellipse do not reach P1's bounds
    assert "No feasible evaluation yet (4 evaluated)" in markdown(report)
