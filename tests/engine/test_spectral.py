"""The fused batched 2-D FFT against NumPy's, and the CGL solver on both FFTs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.spectral import Fourier2D, factor


def _random(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("n", [8, 12, 16, 20, 30, 32, 48])
def test_forward_matches_numpy_fft2_in_its_order_and_inverse_undoes_it(n):
    four = Fourier2D(n, jnp.complex64)
    assert four.fused and sorted(four.order) == list(range(n))
    x = _random((n, n, 3), np.complex64, seed=n)
    ref = np.fft.fft2(x.astype(np.complex128), axes=(0, 1))
    y = four.forward(jnp.asarray(x))
    # position i of each axis holds frequency order[i]; natural() undoes exactly that
    np.testing.assert_allclose(np.asarray(y), ref[four.order][:, four.order], rtol=0, atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(np.asarray(four.natural(y)), ref, rtol=0, atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(np.asarray(four.from_natural(jnp.asarray(ref))), np.asarray(y), atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(np.asarray(four.inverse(y)), x, rtol=0, atol=2e-6)
    assert four.forward(jnp.asarray(x)).dtype == jnp.complex64


def test_float64_transform_is_accurate_to_double_precision():
    with jax.enable_x64(True):
        for n in (16, 24, 40):
            four = Fourier2D(n, jnp.complex128)
            x = _random((n, n), np.complex128, seed=1)
            ref = np.fft.fft2(x)
            y = np.asarray(four.natural(four.forward(jnp.asarray(x))))
            assert np.max(np.abs(y - ref)) < 1e-13 * np.max(np.abs(ref)), n
            assert np.max(np.abs(np.asarray(four.inverse(four.forward(jnp.asarray(x)))) - x)) < 1e-14


def test_any_batch_shape_and_each_field_transforms_alone():
    four = Fourier2D(16)
    x = _random((16, 16, 2, 5), np.complex64)
    y = np.asarray(four.forward(jnp.asarray(x)))
    for i in range(2):
        for j in range(5):
            alone = np.asarray(four.forward(jnp.asarray(x[:, :, i, j])))
            np.testing.assert_allclose(y[:, :, i, j], alone, rtol=1e-6, atol=1e-5)


def test_sizes_with_a_large_prime_factor_fall_back_to_xla_in_natural_order():
    assert factor(32) == (4, 4, 2) and factor(30) == (2, 3, 5) and factor(22) is None
    for four in (Fourier2D(22), Fourier2D(16, fused=False)):
        assert not four.fused and list(four.order) == list(range(four.n))
        x = _random((four.n, four.n), np.complex64)
        np.testing.assert_allclose(np.asarray(four.forward(jnp.asarray(x))), np.fft.fft2(x), rtol=1e-5, atol=1e-4)


NAMES = ("alpha", "beta", "kappa", "ell")
PARAMS = np.array([[0.5, -1.2, 0.3, 1.0], [1.5, -1.0, 0.6, 2.0], [-0.8, 0.4, 0.0, 1.0]])


def test_cgl_results_agree_between_the_fused_and_the_xla_fft():
    runs = {
        fft: evaluate_population("cgl", NAMES, PARAMS, seed=4, fixed={"L": 30.0},
                                 fidelity={"grid": 16, "steps": 40, "dt": 0.05, "fft": fft})
        for fft in ("fused", "xla")
    }
    fused, xla = runs["fused"], runs["xla"]
    assert fused.status.tolist() == xla.status.tolist() == [0, 0, 0]
    for name in ("energy", "max_amp", "log_prime_sse"):
        np.testing.assert_allclose(fused.metrics[name], xla.metrics[name], rtol=2e-4, atol=1e-6)
    # stored extras are in natural order in both: the same downsampled fields and spectra
    np.testing.assert_allclose(fused.extras["field_re"], xla.extras["field_re"], atol=1e-4)
    np.testing.assert_allclose(fused.extras["radial_spectrum"], xla.extras["radial_spectrum"], rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(fused.extras["energy_series"], xla.extras["energy_series"], rtol=2e-4)
    assert fused.extras["energy_series"].shape == (3, 40)  # batch first; record_every = max(1, 40 // 50)


def test_unknown_fft_setting_is_rejected_by_name():
    with pytest.raises(ValueError, match="fidelity setting 'fft'"):
        evaluate_population("cgl", NAMES, PARAMS, seed=0, fidelity={"grid": 16, "steps": 4, "fft": "cufft"})
