"""Campaign specs are validated at the edge; every error names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from huntflow.engine.spec import load_spec, parse_spec
from huntflow.errors import SpecError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def base() -> dict:
    return {
        "slug": "ok-spec",
        "model": {"name": "rosenbrock"},
        "space": {"x0": {"low": -2, "high": 2}, "x1": {"low": -2, "high": 2}},
        "objectives": [{"metric": "f", "target": 1e-3}],
        "budget": {"evaluations": 100},
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_is_valid(path):
    if path.name.startswith("stellarator_"):
        pytest.importorskip("constellaration", reason="the stellarator examples need the 'stellarator' extra")
    spec = load_spec(path)
    assert spec.slug and spec.budget.evaluations > 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"space": {"x0": {"low": 3, "high": 2}, "x1": {"low": 0, "high": 1}}}, "space.x0"),
        ({"space": {"x0": {"low": 0, "high": float("inf")}, "x1": {"low": 0, "high": 1}}}, "space.x0.high"),
        ({"space": {"x0": {"low": float("nan"), "high": 1}, "x1": {"low": 0, "high": 1}}}, "space.x0.low"),
        ({"model": {"name": "no-such-model"}}, "model.name"),
        ({"budget": {"evaluations": 0}}, "budget.evaluations"),
        ({"budget": {"evaluations": -5}}, "budget.evaluations"),
        ({"optimizer": {"name": "adam"}}, "optimizer.name"),
        ({"objectives": [{"metric": "g"}]}, "objectives.0.metric"),
        ({"constraints": [{"metric": "f"}]}, "constraints.0"),
        ({"slug": "Has Spaces"}, "slug"),
        ({"space": {"y": {"low": 0, "high": 1}}}, "fidelities.0"),
        ({"objectives": [{"metric": "f"}, {"metric": "f", "goal": "maximize"}]}, "reference_point"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_spec_names_the_field(patch, field):
    with pytest.raises(SpecError) as info:
        parse_spec({**base(), **patch})
    fields = [f for f, _ in info.value.errors]
    assert field in fields, info.value
    assert field in str(info.value)


def test_several_errors_are_reported_together():
    bad = {**base(), "budget": {"evaluations": 0}, "optimizer": {"name": "adam"}}
    with pytest.raises(SpecError) as info:
        parse_spec(bad)
    assert {"budget.evaluations", "optimizer.name"} <= {f for f, _ in info.value.errors}


def test_unreadable_and_non_yaml_files_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("slug: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(tmp_path / "list.yaml")


def test_constraint_and_objective_values_follow_the_spec():
    spec = parse_spec({
        **base(), "model": {"name": "rosen_suzuki"},
        "space": {f"x{i}": {"low": -3, "high": 3} for i in range(4)},
        "objectives": [{"metric": "f", "goal": "maximize"}],
        "constraints": [{"metric": "g1", "max": 0.0}, {"metric": "g2", "min": -1.0, "max": 2.0}],
    })
    metrics = {"f": 2.0, "g1": 0.5, "g2": -3.0}
    assert spec.objective_values(metrics) == [-2.0]
    assert spec.constraint_values(metrics) == [0.5, -5.0, 2.0]
    assert spec.constraint_names == ["g1.max", "g2.max", "g2.min"]


def test_fingerprint_is_stable_and_content_sensitive():
    a, b = parse_spec(base()), parse_spec(base())
    assert a.fingerprint() == b.fingerprint()
    assert parse_spec({**base(), "seed": 9}).fingerprint() != a.fingerprint()
