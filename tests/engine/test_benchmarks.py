"""Analytic benchmark models: right values, known optima, same answers plain, jitted, vmapped."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.models import REGISTRY, Status


def _names(n):
    return tuple(f"x{i}" for i in range(n))


def reference(name: str, x: np.ndarray) -> dict[str, float]:
    """Independent float64 NumPy formulas."""
    if name == "sphere":
        return {"f": float(np.sum(x**2))}
    if name == "rosenbrock":
        return {"f": float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))}
    if name == "rastrigin":
        return {"f": float(10 * len(x) + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))}
    if name == "rosen_suzuki":
        x1, x2, x3, x4 = x
        return {"f": x1**2 + x2**2 + 2 * x3**2 + x4**2 - 5 * x1 - 5 * x2 - 21 * x3 + 7 * x4,
                "g1": x1**2 + x2**2 + x3**2 + x4**2 + x1 - x2 + x3 - x4 - 8}
    raise KeyError(name)


MODES = ["plain", "jit", "vmap"]


def _run(mode, fn, x, key):
    if mode == "plain":
        return fn(x, key)
    if mode == "jit":
        return jax.jit(fn)(x, key)
    out = jax.vmap(fn)(x[None, :], key[None])
    return jax.tree_util.tree_map(lambda a: a[0], out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,dim", [("sphere", 3), ("rosenbrock", 4), ("rastrigin", 5), ("rosen_suzuki", 4)])
def test_model_matches_numpy_reference(name, dim, mode):
    rng = np.random.default_rng(dim)
    x = rng.uniform(-2, 2, size=dim)
    fn = REGISTRY.get(name).build(_names(dim), {}, {}, dtype=np.float64)
    with jax.enable_x64(True):
        out = _run(mode, fn, jax.numpy.asarray(x), jax.random.key(0))
    for metric, want in reference(name, x).items():
        assert float(out.metrics[metric]) == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert int(out.status) == Status.OK


@pytest.mark.parametrize("name,dim", [("sphere", 3), ("rosenbrock", 4), ("rastrigin", 2), ("ackley", 3),
                                      ("rosen_suzuki", 4), ("constrained_sphere", 3)])
def test_known_optimum_is_attained(name, dim):
    model = REGISTRY.get(name)
    opt = model.known_optimum(_names(dim), {})
    x = np.array([[opt.params[f"x{i}"] for i in range(dim)]])
    res = evaluate_population(name, _names(dim), x, seed=0, dtype="float64")
    assert res.metrics[opt.metric][0] == pytest.approx(opt.value, abs=1e-6)


def test_batch_is_one_call_and_independent_of_batch_composition():
    x = np.random.default_rng(1).uniform(-2, 2, size=(16, 3))
    full = evaluate_population("sphere", _names(3), x, seed=5, fixed={"noise": 0.1})
    part = evaluate_population("sphere", _names(3), x[4:6], seed=5, fixed={"noise": 0.1},
                               candidate_indices=np.array([4, 5]))
    np.testing.assert_array_equal(full.metrics["f"][4:6], part.metrics["f"])
    np.testing.assert_allclose(full.metrics["f_true"], np.sum(x**2, axis=1), rtol=1e-5)
    assert not np.allclose(full.metrics["f"], full.metrics["f_true"])


def test_nonfinite_candidate_is_flagged_without_failing_the_batch():
    x = np.array([[1.0, 1.0], [np.nan, 0.0], [0.0, 0.0]])
    res = evaluate_population("rosenbrock", _names(2), x, seed=0)
    assert res.statuses() == [Status.OK, Status.NONFINITE, Status.OK]
    assert res.metrics["f"][0] == 0.0 and res.metrics["f"][2] == 1.0


def test_bad_names_and_shapes_raise_value_error():
    with pytest.raises(ValueError, match="x0, x1"):
        evaluate_population("sphere", ("a", "b"), np.zeros((2, 2)), seed=0)
    with pytest.raises(ValueError, match="shape"):
        evaluate_population("sphere", _names(3), np.zeros((2, 2)), seed=0)
    with pytest.raises(KeyError, match="unknown model"):
        evaluate_population("nope", _names(2), np.zeros((1, 2)), seed=0)
