"""Verification of the nonlocal CGL solver against exact solutions and known theory.

Each physics check runs plain, under ``jit`` and under ``vmap`` (``MODES``): in vmap mode the
candidate shares a batch with a different companion candidate and must come out the same.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.models import REGISTRY, Status
from huntflow.engine.models.cgl import CGL, CGLParams, simulate, spectrum_metrics

MODES = ("plain", "jit", "vmap")


def params(alpha=0.0, beta=0.0, kappa=0.0, ell=1.0, sigma=0.0, dtype=jnp.float32) -> CGLParams:
    return CGLParams(*(jnp.asarray(v, dtype) for v in (alpha, beta, kappa, ell, sigma)))


def _final(solver: CGL, steps: int, p: CGLParams, field, key):
    state = solver.init(p, key=key, field=field)
    state, _ = simulate(solver.step, state, steps=steps, record_every=steps, observe=lambda s: ())
    return solver.field(state)


_final_jit = jax.jit(_final, static_argnums=(0, 1))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _final_vmap(solver, steps, p, field, keys):
    return jax.vmap(lambda p, key: _final(solver, steps, p, field, key))(p, keys)


def run(mode: str, solver: CGL, p: CGLParams, field, steps: int, *, seed: int = 0, companion=None):
    """Final field A (N, N) after ``steps`` steps from ``field`` (None: the key's random field).

    plain: eager ``solver.step`` in a Python loop; jit: the ``simulate`` driver under ``jit``;
    vmap: the jitted driver under ``vmap`` in a batch with a different companion candidate.
    """
    key = jax.random.key(seed)
    field = None if field is None else jnp.asarray(field, solver.cdtype)
    if mode == "plain":
        state = solver.init(p, key=key, field=field)
        for _ in range(steps):
            state = solver.step(state)
        return np.asarray(solver.field(state))
    if mode == "jit":
        return np.asarray(_final_jit(solver, steps, p, field, key))
    other = companion if companion is not None else p._replace(alpha=p.alpha + 0.3)
    batch_p = jax.tree.map(lambda a, b: jnp.stack([a, b]), p, other)
    keys = jnp.stack([key, jax.random.key(seed + 1)])
    return np.asarray(_final_vmap(solver, steps, batch_p, field, keys)[0])


def grid(n: int, length: float):
    x = np.arange(n) * length / n
    return np.meshgrid(x, x, indexing="ij")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kappa", [0.0, 0.6])
def test_plane_wave_is_exact_solution_with_nonlocal_dispersion(mode, kappa):
    n, length, dt, steps = 16, 4 * math.pi, 0.05, 40
    alpha, beta, ell = 0.7, -0.4, 1.5
    q = (2 * math.pi / length) * np.array([1.0, 1.0])
    q2 = float(q @ q)
    a = math.sqrt(1 - q2 + kappa * (math.exp(-0.5 * ell**2 * q2) - 1))
    omega = alpha * q2 + beta * a**2
    x, y = grid(n, length)
    phase = q[0] * x + q[1] * y
    solver = CGL(n, length, dt)
    out = run(mode, solver, params(alpha, beta, kappa, ell), a * np.exp(1j * phase), steps)
    t = steps * dt
    exact = a * np.exp(1j * (phase - omega * t))
    np.testing.assert_allclose(np.abs(out), a, rtol=2e-5)
    np.testing.assert_allclose(out, exact, atol=5e-5)
    # the frequency is really held: the wrong (local) ω would be off by far more
    if kappa:
        a_local = math.sqrt(1 - q2)
        wrong = a_local * np.exp(1j * (phase - (alpha * q2 + beta * a_local**2) * t))
        assert np.max(np.abs(out - wrong)) > 1e-2


@pytest.mark.parametrize("mode", MODES)
def test_benjamin_feir_newell_criterion_separates_stable_and_unstable(mode):
    n, length, dt, steps = 32, 50.0, 0.2, 200
    rng = np.random.default_rng(3)
    start = 1.0 + 1e-3 * (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    solver = CGL(n, length, dt)

    def deviation(field):
        return float(np.sqrt(np.mean(np.abs(field - field.mean()) ** 2)))

    stable = params(alpha=0.5, beta=0.5)  # 1 + αβ = 1.25 > 0
    unstable = params(alpha=2.0, beta=-1.5)  # 1 + αβ = -2 < 0
    d0 = deviation(start)
    d_stable = deviation(run(mode, solver, stable, start, steps, companion=unstable))
    d_unstable = deviation(run(mode, solver, unstable, start, steps, companion=stable))
    assert d_stable < 0.7 * d0, (d0, d_stable)
    assert d_unstable > 30 * d0, (d0, d_unstable)


def smooth_start(n, length):
    x, y = grid(n, length)
    k = 2 * math.pi / length
    return 0.6 + 0.3 * np.exp(1j * k * x) + 0.2j * np.exp(1j * k * (x + 2 * y)) + 0.1 * np.cos(k * y)


ORDER_CASE = {"n": 16, "length": 4 * math.pi, "t_end": 1.0}


def _order_params():
    return params(alpha=0.8, beta=-0.6, kappa=0.4, ell=1.2, dtype=jnp.float64)


@functools.lru_cache(maxsize=None)
def _order_reference(scheme: str) -> np.ndarray:
    """The dt = 0.1/32 solution (jit), shared by the three modes of one scheme."""
    n, length, t_end = ORDER_CASE["n"], ORDER_CASE["length"], ORDER_CASE["t_end"]
    dt = 0.1 / 32
    with jax.enable_x64(True):
        solver = CGL(n, length, dt, scheme, dtype="float64")
        return run("jit", solver, _order_params(), smooth_start(n, length), round(t_end / dt))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scheme, order", [("etdrk2", 2), ("etdrk4", 4)])
def test_halving_dt_shows_the_scheme_order(mode, scheme, order):
    n, length, t_end = ORDER_CASE["n"], ORDER_CASE["length"], ORDER_CASE["t_end"]
    start = smooth_start(n, length)
    ref = _order_reference(scheme)
    with jax.enable_x64(True):
        p = _order_params()

        def final(dt):
            solver = CGL(n, length, dt, scheme, dtype="float64")
            return run(mode, solver, p, start, round(t_end / dt))

        coarse, fine = (np.linalg.norm(final(dt) - ref) / np.linalg.norm(ref) for dt in (0.1, 0.05))
    rate = math.log2(coarse / fine)
    assert abs(rate - order) < 0.3, (coarse, fine, rate)


@pytest.mark.parametrize("mode", MODES)
def test_noise_free_runs_are_bitwise_deterministic_and_noise_uses_the_key(mode):
    n, length, steps = 16, 20.0, 30
    quiet, noisy = CGL(n, length, 0.05), CGL(n, length, 0.05, noisy=True)
    p, p_noise = params(0.5, -1.2, 0.3, 1.0), params(0.5, -1.2, 0.3, 1.0, sigma=0.05)
    first = run(mode, quiet, p, None, steps, seed=5)
    again = run(mode, quiet, p, None, steps, seed=5)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, run(mode, quiet, p, None, steps, seed=6))
    with_noise = run(mode, noisy, p_noise, None, steps, seed=5)
    assert np.array_equal(with_noise, run(mode, noisy, p_noise, None, steps, seed=5))
    assert np.max(np.abs(with_noise - first)) > 1e-3
    # σ = 0 through the noisy code path reproduces the quiet run exactly
    np.testing.assert_allclose(run(mode, noisy, p, None, steps, seed=5), first, rtol=0, atol=0)


def _line_spectrum(shells, length, n=64, amps=None):
    x, _ = grid(n, length)
    k = 2 * math.pi / length
    amps = amps or [1.0 / (i + 1) for i in range(len(shells))]
    field = sum(a * np.exp(1j * k * s * x) for a, s in zip(amps, shells))
    return jnp.fft.fft2(jnp.asarray(field, jnp.complex64))


_spectrum_metrics = jax.jit(spectrum_metrics, static_argnums=1)  # one compile, not one per eager op
TARGETS = np.log([2, 3, 5, 7]) / np.log(2)


def test_log_prime_sse_follows_its_definition_on_known_peaks():
    length = 2 * math.pi * 8  # shell s sits at |k| = s/8
    k = 2 * math.pi / length
    shells = [5, 8, 12, 14]  # ratios 1, 1.6, 2.4, 2.8 against targets 1, 1.585, 2.322, 2.807
    out = _spectrum_metrics(_line_spectrum(shells, length), length)
    err2 = (np.array(shells[1:]) / shells[0] - TARGETS[1:]) ** 2
    expected = np.sum(err2 / (1.0 + err2))  # isolated lines: full weight, MISS_COST = 1
    # parabolic refinement may move a line peak by a small fraction of a shell
    np.testing.assert_allclose(np.asarray(out["peak_wavenumbers"]), np.array(shells) * k, atol=0.02 * k)
    np.testing.assert_allclose(float(out["log_prime_sse"]), expected, atol=5e-3)
    # one line: all three pairs missing, each costs MISS_COST (bounded, not the target squared)
    single = _spectrum_metrics(_line_spectrum([5], length), length)
    np.testing.assert_allclose(float(single["log_prime_sse"]), 3.0, rtol=1e-5)
    # badly placed peaks cost less than missing ones, and each costs at most MISS_COST
    bad = float(_spectrum_metrics(_line_spectrum([2, 9, 15, 30], length), length)["log_prime_sse"])
    assert 1.5 < bad < 3.0


def test_a_perfect_log_prime_spectrum_scores_zero_and_weak_peaks_fade_in_smoothly():
    length = 2 * math.pi * 8
    # a Gaussian ring at each exact position 10·t_j = 10, 15.85, 23.22, 28.07 (near whole shells:
    # prominence is judged against the adjacent shells, so a ring midway between two is weak)
    n = 64
    m = np.fft.fftfreq(n, 1.0 / n)
    rad = np.sqrt(m[:, None] ** 2 + m[None, :] ** 2)
    base = 10.0

    def ring_field(power4):
        spec = sum(p * np.exp(-0.5 * ((rad - base * t) / 0.6) ** 2) for p, t in zip([1, 1, 1, power4], TARGETS))
        return jnp.asarray(np.sqrt(spec) * n * n, jnp.complex64)  # |Â|²/N⁴ = spec

    perfect = float(_spectrum_metrics(ring_field(1.0), length)["log_prime_sse"])
    assert perfect < 0.05, perfect
    # the fourth peak sinks towards the power floor: the score rises monotonically and boundedly
    powers = [1.0, 3e-2, 1e-2, 5e-3, 2e-3, 1e-3, 1e-4]
    scores = [float(_spectrum_metrics(ring_field(p), length)["log_prime_sse"]) for p in powers]
    assert all(b >= a - 1e-4 for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] - scores[0] > 0.9 and scores[-1] <= 1.0 + perfect + 1e-3, scores
    assert max(np.diff(scores)) < 0.7, scores  # no single jump of a whole missing-peak term


def test_log_prime_sse_varies_across_pattern_forming_parameters():
    names = ("alpha", "beta", "kappa", "ell")
    rng = np.random.default_rng(0)
    box = [(0.5, 3.0), (-3.0, -0.5), (-1.0, 0.5), (1.0, 4.0)]  # examples/cgl_log_prime.yaml
    x = np.stack([rng.uniform(lo, hi, 16) for lo, hi in box], axis=1)
    assert np.mean(1 + x[:, 0] * x[:, 1] < 0) > 0.5  # mostly Benjamin–Feir–Newell unstable
    batch = evaluate_population("cgl", names, x, seed=1, fixed={"L": 80.0},
                                fidelity={"grid": 32, "steps": 300, "dt": 0.1})
    assert all(s == Status.OK for s in batch.statuses())
    sse = batch.metrics["log_prime_sse"]
    assert np.all((sse >= 0) & (sse <= 3.0))
    assert len(np.unique(np.round(sse, 4))) >= 8 and np.ptp(sse) > 0.2, sse
    assert np.all(batch.metrics["h_norm"] < 0.05)


def test_status_flags_blowup_and_invalid_params_without_breaking_the_batch():
    names = ("alpha", "beta", "kappa", "ell")
    good = [[0.5, -0.5, 0.2, 1.0], [-1.0, 1.5, 0.8, 2.0]]
    bad = [[0.5, -0.5, -2000.0, 1.0], [0.5, -0.5, 0.2, -1.0]]
    # the settings (and P = 4) of test_evaluate and test_artifacts: one compiled executable for all
    fixed, fidelity = {"L": 30.0}, {"grid": 16, "steps": 20, "dt": 0.05}
    batch = evaluate_population("cgl", names, np.array(good + bad), seed=3, fixed=fixed, fidelity=fidelity)
    assert batch.statuses() == [Status.OK, Status.OK, Status.BLOWUP, Status.INVALID_PARAMS]
    assert all(np.isnan(v[3]) for v in batch.metrics.values())
    alone = evaluate_population("cgl", names, np.array(good + good), seed=3, fixed=fixed, fidelity=fidelity)
    for name, values in alone.metrics.items():
        assert np.all(np.isfinite(values))
        np.testing.assert_array_equal(batch.metrics[name][:2], values[:2])


def test_model_contract_and_validation():
    model = REGISTRY.get("cgl")
    assert model.metric_names(("alpha",), {}) == ("log_prime_sse", "h_norm", "energy", "max_amp")
    model.validate(("alpha", "ell"), {"sigma": 0.0, "L": 30.0}, {"grid": 16, "steps": 10, "dt": 0.1})
    bad = [
        (("gamma",), {}, {}, "gamma"),
        (("alpha",), {"alpha": 1.0}, {}, "fixed.alpha"),
        (("alpha",), {"L": -1.0}, {}, "fixed.L"),
        (("alpha",), {}, {"grid": 15}, "grid"),
        (("alpha",), {}, {"steps": 0}, "steps"),
        (("alpha",), {}, {"dt": 0.0}, "dt"),
        (("alpha",), {}, {"scheme": "rk4"}, "scheme"),
        (("alpha",), {}, {"resolution": 3}, "resolution"),
    ]
    for names, fixed, fidelity, word in bad:
        with pytest.raises(ValueError, match=word):
            model.validate(names, fixed, fidelity)
