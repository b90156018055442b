"""Poison specs are refused at ``campaign add``, each error naming its field: non-finite numbers,
integers past the database's columns, NUL characters, non-UTF-8 files, duplicate YAML keys,
absurd sizes, unknown or out-of-range optimizer options and ladders the budget cannot pay."""

from __future__ import annotations

import pytest

from huntflow.engine.spec import load_spec, parse_spec
from huntflow.errors import InputError, SpecError

NAN, INF = float("nan"), float("inf")


def _base(**overrides):
    spec = {"slug": "poison", "model": {"name": "sphere"},
            "space": {"x0": {"low": -1, "high": 1}, "x1": {"low": -1, "high": 1}},
            "objectives": [{"metric": "f"}], "budget": {"evaluations": 32}}
    spec.update(overrides)
    return spec


def _cgl(settings, population=16):
    return {"slug": "poison-cgl", "model": {"name": "cgl"}, "space": {"alpha": {"low": 0, "high": 1}},
            "objectives": [{"metric": "energy"}], "budget": {"evaluations": 8},
            "optimizer": {"population": population}, "fidelities": [{"name": "a", "settings": settings}]}


POISON = {
    "nan fidelity setting": (_base(fidelities=[{"name": "a", "settings": {"bias": NAN}}]), "fidelities.0.settings.bias"),
    "string fidelity setting": (_base(fidelities=[{"name": "a", "settings": {"bias": "x"}}]), "fidelities.0"),
    "inf model.fixed": (_base(model={"name": "sphere", "fixed": {"noise": INF}}), "model.fixed.noise"),
    "nan reference_point": (_base(reference_point=[NAN]), "reference_point.0"),
    "nan review": (_base(review={"metric_abs_max": NAN}), "review.metric_abs_max"),
    "inf wall_time_hours": (_base(budget={"evaluations": 32, "wall_time_hours": INF}), "budget.wall_time_hours"),
    "2e9 budget": (_base(budget={"evaluations": 2 * 10**9}), "budget.evaluations"),
    "1e30 budget": (_base(budget={"evaluations": 10**30}), "budget.evaluations"),
    "priority past int4": (_base(priority=2**40), "priority"),
    "NUL in title": (_base(title="a\x00b"), "title"),
    "NUL in a key": (_base(space={"x\x00": {"low": 0, "high": 1}}), "space"),
    "unknown option": (_base(optimizer={"name": "cma", "options": {"scalarisation": "x"}}), "optimizer.options.scalarisation"),
    "unknown scalarization": (_base(optimizer={"name": "cma", "options": {"scalarization": "x"}}),
                              "optimizer.options.scalarization"),
    "exploit share 1.5": (_base(optimizer={"name": "cma", "options": {"exploit_share": 1.5}}),
                          "optimizer.options.exploit_share"),
    "shares over 1": (_base(optimizer={"name": "cma", "options": {"exploit_share": 0.7, "recover_share": 0.7}}),
                      "optimizer.options"),
    "rung budget 1e6": (_base(fidelities=[{"name": "lo", "budget": 10**6}, {"name": "hi"}]), "budget.evaluations"),
    "ladder unpaid": (_base(budget={"evaluations": 4}, fidelities=[{"name": "lo", "promote_top_k": 8}, {"name": "hi"}]),
                      "budget.evaluations"),
    "grid 100000": (_cgl({"grid": 100000}), "fidelities.0"),
    "1e12 steps": (_cgl({"steps": 10**12}), "fidelities.0"),
    "string dt": (_cgl({"dt": "0.1"}), "fidelities.0"),
    "memory": (_cgl({"grid": 4096}, population=4096), "fidelities.0.settings"),
    "too many params": (_base(model={"name": "sphere"}, space={f"x{i}": {"low": 0, "high": 1} for i in range(1001)}),
                        "space"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_spec_is_refused_naming_the_field(name):
    data, field = POISON[name]
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert isinstance(e.value, InputError) and e.value.exit_code == 2
    assert any(f == field or f.startswith(field + ".") for f, _ in e.value.errors), e.value.errors


def test_a_sane_spec_still_passes():
    assert parse_spec(_base(priority=-5, optimizer={"name": "cma", "options": {"exploit_share": 0.5}})).priority == -5


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("slug: a-b\nmodel: {name: sphere}\nslug: c-d\n")
    with pytest.raises(SpecError, match="duplicate key 'slug'"):
        load_spec(path)
    path.write_text("base: &b {low: 0, high: 1}\nslug: merge-ok\nmodel: {name: sphere}\n"
                    "space: {x0: {<<: *b, high: 2}, x1: *b}\nobjectives: [{metric: f}]\nbudget: {evaluations: 8}\n")
    with pytest.raises(SpecError, match="base"):  # merge keys still work; the extra top-level key is refused
        load_spec(path)


def test_non_utf8_and_huge_files_are_one_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("slug: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)
    path.write_bytes(b"a: " + b"x" * (2**20 + 1))
    with pytest.raises(SpecError, match="larger than"):
        load_spec(path)


def test_alias_bombs_are_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="too large"):
        load_spec(path)


def test_extend_refuses_a_budget_past_the_cap(db, make_spec):
    from huntflow.store import campaigns

    campaigns.insert_campaign(db, make_spec())
    for n in (0, -3, 2**40, 10**7):
        with pytest.raises(InputError, match=r"evaluations \(-n\)"):
            campaigns.extend_budget(db, "sphere-3d", n)
    assert campaigns.extend_budget(db, "sphere-3d", 16)["evaluations_budget"] == 64
