"""The numpy quad metamodel (engine/optimize/metamodel.py) returns exactly what nevergrad's
own ``learn_on_k_best`` returns, and NGOpt asks the same points with it installed."""

from __future__ import annotations

import nevergrad as ng
import numpy as np
import pytest
from nevergrad.optimization import metamodel as upstream
from nevergrad.optimization.metamodel import MetaModelFailure

from huntflow.engine.optimize import metamodel


def _archive(seed: int, dim: int, n: int, f):
    opt = ng.optimizers.registry["CMA"](parametrization=ng.p.Array(shape=(dim,)), budget=n)
    opt.parametrization.random_state = np.random.RandomState(seed)
    for _ in range(n):
        c = opt.ask()
        opt.tell(c, f(c.value))
    return opt.archive


def _outcome(fn, archive, k):
    try:
        return fn(archive, k, "quad", 2, None, None)
    except MetaModelFailure as e:
        return type(e)


PROBLEMS = {
    "sphere": lambda x: float(np.sum((x - 0.3) ** 2)),
    "rosenbrock": lambda x: float(sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))),
    "rastrigin": lambda x: float(10 * len(x) + np.sum(x**2 - 10 * np.cos(2 * np.pi * x))),
}


CASES = [pytest.param(name, dim, marks=[] if (name, dim) in {("sphere", 4), ("rosenbrock", 4)} else pytest.mark.slow)
         for name in sorted(PROBLEMS) for dim in (2, 4, 6)]


@pytest.mark.parametrize(("name", "dim"), CASES)
def test_learn_on_k_best_is_upstreams_bit_for_bit(name, dim):
    k = int(dim * (dim - 1) / 2 + 2 * dim + 1)
    metamodel.install()
    proposals = 0
    for seed in range(3):
        archive = _archive(seed, dim, 3 * k, PROBLEMS[name])
        ours, theirs = _outcome(metamodel.learn_on_k_best, archive, k), _outcome(upstream.learn_on_k_best, archive, k)
        if isinstance(theirs, type):
            assert ours is theirs
        else:
            assert np.array_equal(ours, theirs), (seed, ours, theirs)
            proposals += 1
    if (name, dim) == ("sphere", 4):
        assert proposals  # a quadratic is learnable: the comparison covers a proposal, not only failures


def test_ngopt_asks_the_same_points_with_the_fast_metamodel():
    from nevergrad.optimization import optimizerlib

    def run() -> list:
        param = ng.p.Array(shape=(4,), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(7)
        opt = ng.optimizers.registry["NGOpt"](parametrization=param, budget=600, num_workers=8)
        asked = []
        for _ in range(12):
            batch = [opt.ask() for _ in range(8)]
            for c in batch:
                opt.tell(c, PROBLEMS["rosenbrock"](4 * c.value - 2))
            asked += [c.value.tolist() for c in batch]
        return asked

    calls = []

    def counting(*args):
        calls.append(1)
        return metamodel.learn_on_k_best(*args)

    optimizerlib.learn_on_k_best = counting
    try:
        fast = run()
    finally:
        metamodel.install()
    assert calls  # NGOpt ran its metamodel here
    optimizerlib.learn_on_k_best = upstream.learn_on_k_best
    try:
        slow = run()
    finally:
        metamodel.install()
    assert fast == slow


def test_demo_ngopt_batches_are_the_same_with_the_bookkeeping_skipped():
    """The demo's NGOpt (4 parameters, 32 a batch, budget 2400) asks bit for bit the same
    batches with :mod:`huntflow.engine.optimize.ngfast` installed as with upstream nevergrad."""
    import hashlib

    from nevergrad.optimization import optimizerlib
    from nevergrad.parametrization import core

    from huntflow.engine.optimize import ngfast
    from huntflow.engine.optimize.backends import make_backend

    from huntflow.engine.optimize import ngstack

    def batches() -> tuple[list[str], dict]:
        backend = make_backend("ngopt", 4, 7, 2400, 32)
        digests = []
        for g in range(8):
            asked = [backend.ask() for _ in range(32)]
            if g == 3:  # a known point told again (what dedup does) and a suggestion (exploit/recover)
                backend.tell(asked[0][0], PROBLEMS["rosenbrock"](4 * asked[0][1] - 2))
                token, u = backend.suggest(np.full(4, 0.75))
                backend.tell(token, PROBLEMS["rosenbrock"](4 * u - 2))
            for token, u in asked:
                backend.tell(token, PROBLEMS["rosenbrock"](4 * u - 2))
            digests.append(hashlib.sha256(b"".join(u.tobytes() for _, u in asked)).hexdigest())
        recommended = backend.optimizer.recommend().value.tobytes()
        return digests + [hashlib.sha256(recommended).hexdigest()], _state(backend.optimizer)

    metamodel.install()
    assert optimizerlib._CMA.__dict__["es"].fget is ngfast._es
    assert core.Parameter.satisfies_constraints is ngfast._satisfies_constraints
    assert ngstack.stack(make_backend("ngopt", 4, 7, 2400, 32).optimizer) is None  # not before the first ask
    fast, fast_state = batches()
    with ngfast.upstream():
        assert core.Parameter.satisfies_constraints is not ngfast._satisfies_constraints
        slow, slow_state = batches()
    assert core.Parameter.satisfies_constraints is ngfast._satisfies_constraints
    assert len(set(fast)) == len(fast) and fast == slow
    assert fast_state.pop("fast_path_applies") and not slow_state.pop("fast_path_applies")
    assert fast_state == slow_state


def _state(ng) -> dict:
    """What NGOpt's three levels hold, less the candidates' random uids."""
    from huntflow.engine.optimize import ngstack

    def mv(v):
        return (v.count, v.mean, v._minimum, v.square, v.variance, v.parameter.value.tobytes(), v.parameter.loss,
                v.parameter.generation, v.parameter._frozen)

    out = {}
    levels = (ng, ng.optim, ng.optim._optim)
    for i, opt in enumerate(levels):
        out[i] = {
            "counts": (opt._num_ask, opt._num_tell, opt._num_tell_not_asked, len(opt._asked), opt.skip_constraints,
                       opt._num_objectives),
            "curve": list(opt.optim_curve),
            "archive": [(k, mv(v)) for k, v in opt.archive.bytesdict.items()],
            "bests": {n: mv(v) for n, v in opt.current_bests.items()},
        }
    cma = levels[2]
    es = cma.es
    out["cma"] = (list(map(bytes, cma._to_be_asked)), [c.value.tobytes() for c in cma._to_be_told],
                  [(c.value.tobytes(), c.loss) for c in cma._parents], es.mean.tobytes(), float(es.sigma),
                  es.countiter, es.C.tobytes())
    out["uids"] = [sorted(opt._asked) == sorted(levels[0]._asked) for opt in levels[1:]]
    out["fast_path_applies"] = ngstack.stack(ng) is not None  # (never inside ngfast.upstream())
    return out


def _left_half(x) -> bool:
    return float(x[0]) < 0.5


def test_constraints_and_tabu_lists_still_go_through_upstream():
    """A parameter with a cheap constraint, or a tabu list, is checked by upstream's code."""
    from huntflow.engine.optimize import ngfast

    metamodel.install()
    param = ng.p.Array(shape=(2,), lower=0.0, upper=1.0)
    param.register_cheap_constraint(_left_half)
    inside, outside = param.spawn_child(new_value=np.array([0.2, 0.9])), param.spawn_child(new_value=np.array([0.7, 0.1]))
    assert inside.satisfies_constraints() and not outside.satisfies_constraints()
    tabu = ng.p.Array(shape=(2,), lower=0.0, upper=1.0)
    tabu.specify_tabu_length(4)
    first = tabu.spawn_child(new_value=np.array([0.3, 0.3]))
    again = tabu.spawn_child(new_value=np.array([0.3, 0.3]))
    assert first.satisfies_constraints(tabu) and not again.satisfies_constraints(tabu)  # the second is tabu
    with ngfast.upstream():
        assert not outside.satisfies_constraints()


def _scipy_powell(f, x0, maxiter):
    from scipy import optimize as scipyoptimize

    res = scipyoptimize.minimize(f, x0, method="Powell", options={"maxiter": maxiter}, tol=0)
    return res.x, res.fun


def test_powell_port_walks_scipys_path_bit_for_bit():
    """engine/optimize/powell.py hands ``f`` the same points as scipy's Powell and returns the
    same result, on convex and indefinite quadratics (the metamodel's fits) and a quartic."""
    from huntflow.engine.optimize import powell

    rng = np.random.default_rng(3)
    cases = 0
    for trial in range(40):
        d = int(rng.integers(2, 6))
        a = rng.normal(size=(d, d))
        h = a @ a.T if trial % 3 else a + a.T  # every third indefinite (its line searches run off)
        b, c = rng.normal(size=d), float(rng.normal())
        quartic = trial % 7 == 0

        def run(minimize):
            seen = []

            def f(x):
                x = np.array(x, dtype=float)
                if len(seen) >= 120:
                    raise OverflowError  # a budget, as the metamodel's objective has one
                seen.append(x.tobytes())
                v = float(c + b @ x + x @ h @ x) + (float(np.sum(x**4)) if quartic else 0.0)
                return v

            try:
                x, fun = minimize(f, np.zeros(d), 20)
                out = (np.asarray(x).tobytes(), float(fun))
            except OverflowError:
                out = "spent"
            return seen, out

        ours, theirs = run(powell.minimize), run(_scipy_powell)
        assert ours == theirs, trial
        cases += 1
    assert cases == 40


def test_fast_freeze_and_items_leave_parameters_as_upstream_does():
    """ngfast's freeze returns early only for a parameter frozen before: a child of a frozen
    parameter starts unfrozen and freezing it freezes its subparameters; items lists the same
    subparameters as upstream's generator."""
    from nevergrad.parametrization import utils

    from huntflow.engine.optimize import ngfast

    metamodel.install()
    parent = ng.p.Array(shape=(3,), lower=0.0, upper=1.0)
    parent.freeze()
    child = parent.spawn_child(new_value=np.array([0.1, 0.2, 0.3]))
    subs = [v for _, v in child._subobjects.items()]
    assert subs and not child._frozen and not any(v._frozen for v in subs)
    child.freeze()
    assert child._frozen and all(v._frozen for v in subs)
    assert all(v._frozen for _, v in subs[0]._subobjects.items())
    with ngfast.upstream():
        theirs = list(utils.Subobjects.items(child._subobjects))
    assert child._subobjects.items() == theirs


def test_linear_fit_is_sklearns_bit_for_bit():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(5)
    for n, p in ((15, 15), (28, 28), (40, 10), (15, 21)):  # square, and rank-deficient (n < p + 1, n < p)
        X, y = rng.normal(size=(n, p)), rng.random(n)
        model = LinearRegression().fit(X, y)
        coef, intercept, outputs = metamodel.linear_fit(X, y)
        assert coef.tobytes() == model.coef_.T.tobytes()
        assert np.asarray(intercept).tobytes() == np.asarray(model.intercept_).tobytes()
        assert outputs.tobytes() == model.predict(X).tobytes()


def test_demo_ngopt_resumed_from_a_pickle_asks_what_the_live_one_asks():
    """The fast path (ngstack) keeps only nevergrad's own state: a backend pickled after the
    metamodel has started (what a checkpoint holds) asks the same batches as the live one."""
    import pickle

    from huntflow.engine.optimize import ngstack
    from huntflow.engine.optimize.backends import make_backend

    def step(backend) -> bytes:
        asked = [backend.ask() for _ in range(32)]
        for token, u in asked:
            backend.tell(token, PROBLEMS["rosenbrock"](4 * u - 2))
        return b"".join(u.tobytes() for _, u in asked)

    live = make_backend("ngopt", 4, 7, 2400, 32)
    for _ in range(3):
        step(live)
    assert ngstack.stack(live.optimizer) is not None
    resumed = pickle.loads(pickle.dumps(live))
    assert [step(live) for _ in range(3)] == [step(resumed) for _ in range(3)]
