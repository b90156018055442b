"""Search-space kinds: spec validation at the edge, decoding, encoding, what models receive."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.optimize.backends import to_params
from huntflow.engine.optimize.ladder import param_hash
from huntflow.engine.space import SearchSpace
from huntflow.engine.spec import Bound, Categorical, Fixed, IntParam, parse_spec
from huntflow.errors import SpecError

KINDS = ["euler", "rk4", 0.5, True]


def _spec(space, model="mixed", **kw):
    base = {"slug": "space-t", "model": {"name": model}, "space": space,
            "objectives": [{"metric": "f"}], "budget": {"evaluations": 16}}
    return parse_spec({**base, **kw})


MIXED = {"x": {"low": -1.0, "high": 1.0}, "n": {"type": "int", "low": 0, "high": 6}, "kind": {"choices": KINDS}}


def test_every_kind_parses_and_round_trips_through_its_stored_json():
    spec = _spec(MIXED)
    assert isinstance(spec.space["x"], Bound) and isinstance(spec.space["n"], IntParam)
    assert isinstance(spec.space["kind"], Categorical) and spec.space["kind"].choices == KINDS
    again = parse_spec(spec.model_dump(mode="json"))
    assert again == spec and again.fingerprint() == spec.fingerprint()
    fixed = _spec({**MIXED, "x": {"value": 0.25}})
    assert isinstance(fixed.space["x"], Fixed) and fixed.searched_names == ("n", "kind")
    assert fixed.param_names == ("x", "n", "kind")


def test_a_continuous_bound_stores_as_before_with_or_without_type_float():
    plain = _spec({"x0": {"low": -2, "high": 2}, "x1": {"low": 0.1, "high": 3, "log": True}}, model="sphere")
    typed = _spec({"x0": {"type": "float", "low": -2, "high": 2}, "x1": {"low": 0.1, "high": 3, "log": True}},
                  model="sphere")
    assert plain.model_dump(mode="json")["space"]["x0"] == {"low": -2.0, "high": 2.0, "log": False}
    assert typed.fingerprint() == plain.fingerprint()


@pytest.mark.parametrize("entry, field, text", [
    ({"type": "int", "low": 0.5, "high": 3}, "space.n.low", "must be an integer"),
    ({"type": "int", "low": 3, "high": 3}, "space.n", "must be < high"),
    ({"type": "int", "low": 0, "high": 9, "log": True}, "space.n", "low >= 1"),
    ({"type": "int", "low": True, "high": 9}, "space.n.low", "must be an integer"),
    ({"type": "integer", "low": 0, "high": 9}, "space.n", "type must be one of"),
    ({"choices": ["a"]}, "space.n.choices", "at least 2"),
    ({"choices": ["a", "a"]}, "space.n.choices", "repeated"),
    ({"choices": [1, 1.0]}, "space.n.choices", "repeated"),
    ({"choices": [None, 2]}, "space.n.choices", "choice 0"),
    ({"choices": [1, float("nan")]}, "space.n.choices", "finite"),
    ({"value": [1, 2]}, "space.n.value", "string, number or boolean"),
    ({"choices": [1, 2], "low": 0}, "space.n.low", "Extra inputs"),
    (7, "space.n", "expected {low, high}"),
])
def test_a_bad_parameter_is_refused_naming_its_field(entry, field, text):
    with pytest.raises(SpecError) as info:
        _spec({**MIXED, "n": entry})
    lines = [(f, m) for f, m in info.value.errors if f == field or f.startswith(field + ".")]
    assert lines and any(text in m for _, m in lines), info.value.errors


def test_true_and_one_are_different_choices_and_a_space_of_only_fixed_values_is_refused():
    assert _spec({**MIXED, "kind": {"choices": [True, 1]}}).space["kind"].choices == [True, 1]
    with pytest.raises(SpecError) as info:
        _spec({"x": {"value": 0.1}, "n": {"value": 2}, "kind": {"value": "rk4"}})
    assert ("space", "every parameter is fixed; at least one must be searched") in info.value.errors


def test_continuous_decoding_is_bit_identical_to_the_old_mapping():
    spec = _spec({"x0": {"low": -2, "high": 2}, "x1": {"low": 1e-3, "high": 10, "log": True}}, model="sphere")
    space = SearchSpace.of(spec)
    bounds = [(b.low, b.high, b.log) for b in spec.space.values()]
    for u in np.random.default_rng(0).random((200, 2)):
        assert space.decode(u) == to_params(u, bounds).tolist()
        assert np.array_equal(space.canonical(u), u)
        assert np.array_equal(space.features(u[None, :]), u[None, :])


def test_integers_and_choices_get_equal_shares_of_the_axis_and_decode_to_python_types():
    space = SearchSpace.of(_spec(MIXED))
    grid = (np.arange(7 * 4 * 50) + 0.5) / (7 * 4 * 50)
    ns = [space.decode(np.array([0.0, u, 0.0]))[1] for u in grid]
    kinds = [space.decode(np.array([0.0, 0.0, u]))[2] for u in grid]
    assert all(type(n) is int for n in ns) and sorted(set(ns)) == list(range(7))
    assert {ns.count(v) for v in range(7)} == {200}
    assert [kinds.count(k) for k in KINDS] == [350] * 4 and type(kinds[-1]) is bool


def test_log_integers_cover_every_value_with_shares_growing_like_the_log():
    space = SearchSpace.of(_spec({**MIXED, "n": {"type": "int", "low": 1, "high": 100, "log": True}}))
    ns = [space.decode(np.array([0.0, u, 0.0]))[1] for u in np.linspace(0, 1, 20001)]
    assert sorted(set(ns)) == list(range(1, 101))
    assert ns.count(1) > 10 * ns.count(100)


def test_canonical_points_decode_to_the_same_values_and_encode_inverts_decode():
    space = SearchSpace.of(_spec({**MIXED, "n": {"type": "int", "low": 2, "high": 40, "log": True}}))
    for u in np.random.default_rng(1).random((300, 3)):
        values = space.decode(u)
        c = space.canonical(u)
        assert space.decode(c) == values
        assert c[0] == u[0]  # continuous coordinates are never moved
        e = space.encode(dict(zip(space.names, values)))
        assert space.decode(e) == values and np.allclose(e[1:], c[1:])


def test_a_jax_model_gets_choice_indices_and_functions_get_the_values():
    space = SearchSpace.of(_spec({**MIXED, "x": {"value": "fixed-text"}}))
    params = {"n": 4.0, "kind": 0.5}
    assert space.user_params(params) == {"x": "fixed-text", "n": 4, "kind": 0.5}
    assert space.model_vector(params) == [0.0, 4.0, 2.0]
    assert space.model_vector({"n": 1, "kind": True}) == [0.0, 1.0, 3.0]  # True is not the number 1
    rows = space.model_matrix([{"n": 0, "kind": "euler"}, {"n": 6, "kind": "rk4"}])
    assert rows.dtype == np.float64 and rows.tolist() == [[0.0, 0.0, 0.0], [0.0, 6.0, 1.0]]
    for bad, text in [({"n": 2.5, "kind": "rk4"}, "params.n: expected an integer"),
                      ({"n": 2, "kind": "rk5"}, "params.kind: 'rk5' is not one of the choices"),
                      ({"kind": "rk4"}, "params.n: missing")]:
        with pytest.raises(ValueError, match=text):
            space.model_vector(bad)


def test_features_put_different_choices_at_distance_one_whatever_their_order():
    space = SearchSpace.of(_spec(MIXED))
    pts = np.array([space.encode({"x": 0.0, "n": 3, "kind": k}) for k in KINDS])
    f = space.features(pts)
    d = np.sqrt(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))
    assert np.allclose(d[~np.eye(4, dtype=bool)], 1.0) and np.allclose(np.diag(d), 0.0)


def test_param_hash_keeps_numbers_as_before_and_tells_choices_apart():
    names = ("a", "b")
    assert param_hash([3, 1.0], names) == param_hash([3.0, 1.0000000000001], names)
    assert param_hash(["rk4", 1.0], names) != param_hash(["euler", 1.0], names)
    assert param_hash([True, 1.0], names) != param_hash([1, 1.0], names)
    assert param_hash(["1", 1.0], names) != param_hash([1, 1.0], names)
