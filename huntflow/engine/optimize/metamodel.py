"""A faster, identical quadratic metamodel for nevergrad's ``MetaModel`` (what NGOpt runs).

At the demo's size (4 parameters, 32 workers, a budget of a few thousand) NGOpt picks
``MetaModel`` over CMA: once per batch of ``num_workers`` asks it fits a quadratic to the best
``k`` points and minimises that fit with Powell (``45 * dim + 30`` evaluations of it). Upstream
each of those evaluations runs scikit-learn's ``PolynomialFeatures.fit_transform`` and
``LinearRegression.predict`` with their input validation, about 1 ms each, so the fit costs
~0.2 s per batch. :func:`learn_on_k_best` is upstream's function (nevergrad 1.0.12,
``optimization/metamodel.py``, MIT licence) for ``algorithm="quad", degree=2`` with that loss
evaluated in numpy: the same products in the same order and the same ``row @ coef + intercept``,
so every value, and so Powell's path and the point asked, is bit for bit upstream's
(tests/engine/test_optimize_metamodel.py compares the two). Other algorithms go to upstream unchanged.
:func:`install` points nevergrad's optimizer module at it (idempotent).
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from huntflow.engine.optimize import powell as scipy_powell

_UPSTREAM: Any = None
_OPTIMIZERLIB: Any = None


def _quad_features(X: np.ndarray) -> np.ndarray:
    """``PolynomialFeatures(degree=2).fit_transform`` of (n, d) ``X``: 1, x_i, then x_i * x_j
    for i <= j in sklearn's order (dense, exact products)."""
    n, d = X.shape
    cols = [np.ones(n), *(X[:, i] for i in range(d))]
    cols += [X[:, i] * X[:, j] for i in range(d) for j in range(i, d)]
    return np.stack(cols, axis=1)


def learn_on_k_best(archive: Any, k: int, algorithm: str = "quad", degree: int = 2,
                    shape: Any = None, para: Any = None) -> Any:
    """Approximate optimum learnt from the ``k`` best points of ``archive`` (upstream's
    contract: raises ``MetaModelFailure`` when the fit is unusable)."""
    from nevergrad.optimization.metamodel import MetaModelFailure

    if algorithm != "quad" or degree != 2:
        return _UPSTREAM(archive, k, algorithm, degree, shape, para)
    # upstream sorts the whole archive by "average"; nsmallest is sorted(...)[:k] (stable too)
    best = heapq.nsmallest(k, archive.bytesdict.items(), key=lambda kv: kv[1].mean)
    first_k = [(np.frombuffer(b), v) for b, v in best]
    assert len(first_k) == k
    middle = np.array(sum(p[0] for p in first_k) / k)
    normalization = 1e-15 + np.sqrt(np.sum((first_k[-1][0] - first_k[0][0]) ** 2))
    y = np.asarray([c[1].pessimistic_confidence_bound for c in first_k])
    X = np.asarray([(c[0] - middle) / normalization for c in first_k])
    X2 = _quad_features(X)
    if not max(y) - min(y) > 1e-20:
        raise MetaModelFailure
    y = (y - min(y)) / (max(y) - min(y))
    coef, intercept, model_outputs = linear_fit(X2, y)
    dtype = X[0].dtype
    indices = np.argsort(y)
    ordered = [model_outputs[i] for i in indices]
    if not np.all(np.diff(ordered) > 0):
        raise MetaModelFailure("Unlearnable objective function.")
    if np.average(0.5 + 0.5 * np.sign(np.diff(ordered))) < 0.6:
        raise MetaModelFailure("Unlearnable objective function.")

    d = X.shape[1]
    left, right = np.triu_indices(d)  # sklearn's order of the products x_i * x_j, i <= j
    row = np.empty((1, 1 + d + len(left)))
    row[0, 0] = 1.0

    def loss_function_sm(x: Any) -> float:  # _quad_features of one point, into one buffer
        x = np.asarray(x, dtype=dtype).ravel()
        row[0, 1:1 + d] = x
        np.multiply(x[left], x[right], out=row[0, 1 + d:])
        return float((row @ coef + intercept)[0])

    try:
        minimum = powell(loss_function_sm, X.shape[1], 45 * X.shape[1] + 30)
    except RuntimeError:  # upstream's backup when its Powell thread fails
        minimum = _upstream_de(loss_function_sm, X.shape[1])
    except ValueError as e:
        raise MetaModelFailure(f"Infinite meta-model optimum in learn_on_k_best: {e}.") from e
    if loss_function_sm(minimum) > y[0]:
        raise MetaModelFailure("Not a good proposal.")
    if np.sum(minimum**2) > 1.0:
        raise MetaModelFailure("huge meta-model optimum in learn_on_k_best.")
    return middle + normalization * minimum.flatten()


def linear_fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any, np.ndarray]:
    """``(coef_.T, intercept_, predict(X))`` of scikit-learn's ``LinearRegression().fit(X, y)``
    for dense float64 ``X`` (n, p) and ``y`` (n,): with scikit-learn 1.9.1 the same operations
    it runs past its input validation (copies, column means subtracted, ``scipy.linalg.lstsq``
    with ``cond=1e-6``, ``intercept = y_mean - X_mean @ coef``, ``X @ coef + intercept``), so
    the same bits; another version goes through scikit-learn itself."""
    import sklearn

    if sklearn.__version__ != "1.9.1" or X.dtype != np.float64 or y.dtype != np.float64 or X.ndim != 2 or y.ndim != 1:
        from sklearn.linear_model import LinearRegression

        model = LinearRegression().fit(X, y)
        return model.coef_.T, model.intercept_, model.predict(X)
    from scipy import linalg

    Xc, yc = np.array(X, copy=True), np.array(y, copy=True)
    x_offset = np.asarray(np.average(Xc, axis=0)).astype(Xc.dtype, copy=False)
    Xc -= x_offset
    y_offset = np.asarray(np.average(yc, axis=0))
    yc -= y_offset
    coef = np.ravel(linalg.lstsq(Xc, yc, cond=1e-6)[0].T).astype(x_offset.dtype, copy=False)
    intercept = y_offset - x_offset @ coef
    return coef.T, intercept, X @ coef + intercept


class _Spent(Exception):
    """The evaluation budget is spent (upstream's Powell thread blocks there for good)."""


def powell(f: Any, dim: int, budget: int) -> np.ndarray:
    """What ``ng.optimizers.Powell(parametrization=dim, budget=budget).minimize(f).value``
    returns, without its thread and per-evaluation parameter objects: scipy's Powell from the
    origin (``tol=0``, restarted from its result while budget remains, as nevergrad's
    ``_NonObjectMinimizeBase`` does), cut off at ``budget`` evaluations, and the recommendation
    nevergrad makes then: the point of least loss in its archive (``current_bests["minimum"]``,
    with its tie and re-evaluation rules), or scipy's result when scipy finished first."""
    archive: dict[bytes, list] = {}  # point bytes -> [point, least loss], insertion ordered
    best: list = [None, np.inf]

    def objective(x: np.ndarray) -> float:
        if count[0] >= budget:
            raise _Spent
        count[0] += 1
        x = np.array(x, dtype=float)
        loss = float(f(x))
        key = x.tobytes()
        entry = archive.get(key)
        if entry is None:
            archive[key] = entry = [x, loss]
            if loss <= best[1]:
                best[:] = entry
        else:
            entry[1] = min(entry[1], loss)
            if best[0] is entry[0]:  # upstream's "reboot": the first least point of the archive
                best[:] = min(archive.values(), key=lambda e: e[1])
            elif entry[1] <= best[1]:
                best[:] = entry
        return loss

    count = [0]
    best_x, best_res = np.zeros(dim), np.inf
    try:
        while budget - count[0] > 0:
            res_x, res_fun = scipy_powell.minimize(objective, best_x, budget - count[0])
            if res_fun < best_res:
                best_res, best_x = res_fun, res_x
    except _Spent:
        return np.array(best[0], copy=True)
    return np.array(best[0] if best[0] is not None else best_x, copy=True)


def _upstream_de(f: Any, dim: int) -> np.ndarray:
    from nevergrad.optimization import callbacks
    from nevergrad.optimization.base import registry

    optimizer = registry["DE"](parametrization=dim, budget=45 * dim + 30)
    optimizer.register_callback("ask", callbacks.EarlyStopping.timer(20))
    return optimizer.minimize(f).value


def install() -> None:
    """Make nevergrad's ``MetaModel`` (and so NGOpt) use :func:`learn_on_k_best`, and its CMA
    per-candidate bookkeeping skipped where it cannot change anything (:mod:`.ngfast`)."""
    global _UPSTREAM, _OPTIMIZERLIB
    from huntflow.engine.optimize import ngfast

    if _OPTIMIZERLIB is not None and _OPTIMIZERLIB.learn_on_k_best is learn_on_k_best and ngfast.installed():
        return  # the common case: every ask and tell calls this
    from nevergrad.optimization import metamodel, optimizerlib

    ngfast.install()

    if _UPSTREAM is None:
        _UPSTREAM = metamodel.learn_on_k_best
        _OPTIMIZERLIB = optimizerlib
    if optimizerlib.learn_on_k_best is not learn_on_k_best:
        optimizerlib.learn_on_k_best = learn_on_k_best
