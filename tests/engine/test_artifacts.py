"""HDF5 generation artifacts: exact round trip, atomic write, clear errors, tier-2 metrics."""

from __future__ import annotations

import numpy as np
import pytest

from huntflow.engine.artifacts import metrics_from_artifact, read_generation, write_generation
from huntflow.engine.evaluate import evaluate_population
from huntflow.errors import ArtifactError

# the settings (and P = 4) of test_evaluate and test_cgl: one compiled executable serves all three
NAMES = ("alpha", "beta", "kappa", "ell")
FIXED = {"L": 30.0}
FIDELITY = {"grid": 16, "steps": 20, "dt": 0.05}


@pytest.fixture(scope="module")
def generation():
    params = np.array([[0.5, -1.2, 0.3, 1.0], [1.5, -1.5, 0.8, 2.5], [0.1, 0.2, 0.0, -1.0], [2.0, 0.3, 0.5, 0.7]])
    result = evaluate_population("cgl", NAMES, params, seed=4, fixed=FIXED, fidelity=FIDELITY)
    return params, result


def write(tmp_path, generation, name="gen-0001.h5"):
    params, result = generation
    return write_generation(
        tmp_path / name, param_names=NAMES, params=params, result=result,
        provenance={"engine_version": "0.1.0", "seed": 4},
        generation={"model": {"name": "cgl", "fixed": FIXED}, "fidelity": FIDELITY, "index": 1},
    )


def test_round_trip_returns_the_same_numbers(tmp_path, generation):
    params, result = generation
    path = write(tmp_path, generation)
    assert [p.name for p in tmp_path.iterdir()] == ["gen-0001.h5"]  # no temporary left behind
    art = read_generation(path)
    assert art.param_names == NAMES
    np.testing.assert_array_equal(art.params, params)
    np.testing.assert_array_equal(art.status, result.status)
    assert set(art.metrics) == set(result.metrics) and set(art.extras) == set(result.extras)
    for name, values in result.metrics.items():
        np.testing.assert_array_equal(art.metrics[name], values)
    for name, values in result.extras.items():
        np.testing.assert_array_equal(art.extras[name], values)
    assert art.provenance == {"engine_version": "0.1.0", "seed": 4}
    assert art.generation["index"] == 1 and art.generation["fidelity"] == FIDELITY


def test_missing_and_corrupt_files_raise_artifact_error(tmp_path, generation):
    with pytest.raises(ArtifactError, match="does not exist"):
        read_generation(tmp_path / "nope.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(ArtifactError, match="corrupt"):
        read_generation(garbage)
    path = write(tmp_path, generation)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError):
        metrics_from_artifact(truncated)


def test_metrics_are_recomputed_from_the_stored_spectrum_and_field(tmp_path, generation):
    params, result = generation
    out = metrics_from_artifact(write(tmp_path, generation))
    assert set(out["recomputed"]) == {"log_prime_sse", "energy", "max_amp"}
    np.testing.assert_array_equal(out["status"], result.status)
    for name in ("log_prime_sse", "energy", "max_amp", "h_norm"):
        np.testing.assert_allclose(out["metrics"][name], result.metrics[name], rtol=1e-4, equal_nan=True)
    assert np.isnan(out["metrics"]["energy"][2])  # the invalid candidate stays NaN


def test_write_rejects_mismatched_shapes(tmp_path, generation):
    params, result = generation
    with pytest.raises(ValueError, match="params"):
        write_generation(tmp_path / "x.h5", param_names=NAMES[:2], params=params, result=result, provenance={})
    with pytest.raises(ValueError, match="leading axis"):
        write_generation(tmp_path / "x.h5", param_names=NAMES, params=params[:2], result=result, provenance={})
    assert not list(tmp_path.iterdir())
