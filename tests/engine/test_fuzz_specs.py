"""Hypothesis fuzz of specs and result documents: zero tracebacks.

Every input either validates or raises a HuntflowError subclass (SpecError /
ResultDocumentError, both InputError); a spec that validates also starts a hunt (what evolve
does first), so nothing accepted at ``campaign add`` fails its first evolve. The default run
fuzzes a few hundred cases; ``-m slow`` runs the long variant (RELIABILITY.md has its figures).
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntflow.engine.optimize import Hunt
from huntflow.engine.results import validate_result_document
from huntflow.engine.spec import load_spec, parse_spec
from huntflow.errors import HuntflowError, InputError

BASE = {
    "slug": "fuzz-spec", "model": {"name": "sphere", "fixed": {}},
    "space": {"x0": {"low": -1.0, "high": 1.0}, "x1": {"low": -1.0, "high": 1.0, "log": False}},
    "objectives": [{"metric": "f", "goal": "minimize", "target": 0.1}],
    "constraints": [], "fidelities": [{"name": "lo", "settings": {"bias": 0.1}}, {"name": "hi"}],
    "budget": {"evaluations": 64, "patience": 5}, "optimizer": {"name": "cma", "population": 8, "options": {}},
    "review": {"spot_check_top": 1}, "seed": 1, "priority": 0, "dtype": "float32", "max_attempts": 3,
}
OPTION_NAMES = ["scalarization", "exploit_share", "recover_share", "nsga2_size", "max_in_flight", "prefilter",
                "prefilter_threshold", "prefilter_k", "prefilter_min_data", "bogus"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "\x00", "a\x00", "[bold]x[/", "$\\frac$", "hypervolume", "chebyshev", "cgl", "sphere",
                     "nsga2", "float64", "1e400", "NaN"]),
    st.sampled_from([0, 1, -1, 2**31, 2**31 - 1, 10**12, 2 * 10**9, 1e-300, 1e308, 0.5, 1.5]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=8)
PATHS = [("slug",), ("title",), ("model", "name"), ("model", "fixed", "noise"), ("space", "x0", "low"),
         ("space", "x1", "high"), ("space", "x1", "log"), ("space", "x2"), ("objectives", 0, "metric"),
         ("objectives", 0, "target"), ("objectives", 0, "goal"), ("constraints",), ("fidelities", 0, "settings", "bias"),
         ("fidelities", 0, "budget"), ("fidelities", 0, "promote_top_k"), ("fidelities", 1, "name"),
         ("fidelities", 0, "settings", "grid"), ("budget", "evaluations"), ("budget", "wall_time_hours"),
         ("budget", "patience"), ("optimizer", "name"), ("optimizer", "population"), ("reference_point",),
         ("review", "metric_abs_max"), ("review", "spot_check_top"), ("gates", "promotion"), ("seed",), ("priority",),
         ("dtype",), ("max_attempts",), ("extra_field",)] + [("optimizer", "options", n) for n in OPTION_NAMES]


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
        if not isinstance(node, (dict, list)):
            return
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        pass


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(BASE)
    if draw(st.booleans()):
        spec.update(model={"name": "cgl", "fixed": {}}, space={"alpha": {"low": 0.0, "high": 1.0}},
                    objectives=[{"metric": "energy"}], fidelities=[{"name": "lo", "settings": {"grid": 16, "steps": 4}},
                                                                   {"name": "hi", "settings": {"grid": 16, "steps": 8}}])
    for _ in range(draw(st.integers(1, 4))):
        _set(spec, draw(st.sampled_from(PATHS)), draw(values))
    return spec


def check_spec(data) -> bool:
    """True when accepted (and the hunt starts); False when refused with a HuntflowError."""
    try:
        spec = parse_spec(data)
    except InputError as e:
        assert str(e)
        return False
    Hunt.start(spec)  # accepted => the first evolve can start it
    return True


def check_document(doc) -> None:
    try:
        parsed = validate_result_document(doc, generation_id="g-1", n_candidates=3, required_metrics=["f"])
    except HuntflowError:
        return
    for p in parsed:
        assert 0 <= p.index < 3
        assert all(v is None or isinstance(v, float) for v in p.metrics.values())
        if p.ok:
            assert p.metrics.get("f") is not None


documents = st.fixed_dictionaries({
    "format": st.sampled_from(["huntflow.result/1", "other", None]),
    "generation_id": st.sampled_from(["g-1", "g-2", 7]),
    "provenance": st.one_of(st.just({}), values),
    "candidates": st.one_of(values, st.lists(st.fixed_dictionaries({
        "index": st.one_of(st.integers(-2, 5), scalars), "status": st.sampled_from(["ok", "failed", "weird", None]),
        "metrics": st.one_of(st.dictionaries(st.sampled_from(["f", "g", ""]), scalars, max_size=3), values),
        "failure_category": scalars}), max_size=5)),
})


def _run(n: int):
    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(spec=mutated_specs(), doc=documents)
    def fuzz(spec, doc):
        check_spec(spec)
        check_document(doc)

    fuzz()


def test_fuzz_specs_and_documents_raise_only_huntflow_errors():
    _run(300)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10 000 cases outlast the suite's 600 s per test on a loaded machine
def test_fuzz_specs_and_documents_long():
    _run(10_000)


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                     st.sampled_from([b"slug: a\nslug: b\n", b"\xff\xfe", b"a: &x [*x]", b"!!python/object:os.system x",
                                      b"{a: 1, a: 2}", b"[1, 2", b"a: .nan\n", b"- - - -"])))
def test_fuzz_spec_files_raise_only_spec_errors(raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("fz") / "spec.yaml"
    path.write_bytes(raw)
    with pytest.raises(InputError):
        load_spec(path)


def test_the_fuzz_base_spec_is_valid():
    assert check_spec(copy.deepcopy(BASE))
    assert not math.isnan(parse_spec(copy.deepcopy(BASE)).budget.evaluations)
