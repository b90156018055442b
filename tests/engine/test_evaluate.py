"""Batched evaluation: device sharding and the persistent compilation cache (in subprocesses,
because the device count and the cache are fixed when JAX starts).

The settings (names, fixed, fidelity, P = 4) are the ones ``test_cgl`` and ``test_artifacts``
use, so the in-process compiled executable is shared across the three files. One pair of
subprocesses serves both subprocess checks: both run sharded over 3 host devices (P = 4 padded
to 6) with one persistent cache directory, so the first compiles and stores, the second loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population

NAMES = ("alpha", "beta", "kappa", "ell")
FIXED = {"L": 30.0}
FIDELITY = {"grid": 16, "steps": 20, "dt": 0.05}
PARAMS = [[0.5, -1.2, 0.3, 1.0], [1.5, -1.5, 0.8, 2.5], [0.1, 0.2, 0.0, -1.0], [2.0, 0.3, 0.5, 0.7]]
DEVICES = 3

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from huntflow.engine.evaluate import evaluate_population
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
    r = evaluate_population("cgl", {names!r}, np.array({params!r}), seed=2, fixed={fixed!r}, fidelity={fidelity!r},
                            min_rows_per_device=1)
    print(json.dumps({{"devices": jax.device_count(), "device_count": r.device_count,
        "compile_seconds": r.compile_seconds, "cache_hits": len(hits), "status": r.status.tolist(),
        "metrics": {{k: v.tolist() for k, v in r.metrics.items()}}}}))
    """
).format(names=NAMES, params=PARAMS, fixed=FIXED, fidelity=FIDELITY)


def run_script(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """(cache dir, first run, second run): two sharded processes sharing one persistent cache."""
    data = tmp_path_factory.mktemp("huntflow-data")
    env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}", "HUNTFLOW_DATA_DIR": str(data)}
    first = run_script(env)
    second = run_script(env)
    return data / "jax-cache", first, second


@pytest.fixture(scope="module")
def local():
    return evaluate_population("cgl", NAMES, np.array(PARAMS), seed=2, fixed=FIXED, fidelity=FIDELITY)


def test_population_is_sharded_over_devices_with_padding(two_processes, local):
    _, sharded, _ = two_processes
    assert sharded["devices"] == DEVICES and sharded["device_count"] == DEVICES  # P = 4 padded to 6
    assert local.device_count == 1
    assert sharded["status"] == local.status.tolist() == [0, 0, 3, 0]
    for name, values in local.metrics.items():
        np.testing.assert_allclose(np.array(sharded["metrics"][name], dtype=float), values,
                                   rtol=1e-5, atol=1e-7, equal_nan=True)


def test_second_process_loads_compiled_executable_from_persistent_cache(two_processes):
    cache, first, second = two_processes
    assert cache.is_dir() and any(cache.iterdir())
    assert first["cache_hits"] == 0 and second["cache_hits"] >= 1
    assert second["compile_seconds"] < 0.6 * first["compile_seconds"], (first, second)
    assert second["metrics"] == first["metrics"] and second["status"] == first["status"]


def test_a_candidate_result_does_not_depend_on_its_batch_mates(local):
    other = np.array(PARAMS[:2] + [[1.0, 1.0, 0.2, 1.0]] * 2)
    mixed = evaluate_population("cgl", NAMES, other, seed=2, fixed=FIXED, fidelity=FIDELITY)
    for name, values in local.metrics.items():
        np.testing.assert_array_equal(mixed.metrics[name][:2], values[:2])
    assert mixed.metrics["energy"][3] != local.metrics["energy"][3]  # the changed row did change
    assert not np.array_equal(mixed.extras["field_re"][3], local.extras["field_re"][3])
    # a candidate's index, not its row, seeds it: row 0 evaluated as candidate 0 alone matches
    again = evaluate_population("cgl", NAMES, np.array(PARAMS)[[1, 0, 2, 3]], seed=2, fixed=FIXED,
                                fidelity=FIDELITY, candidate_indices=np.array([1, 0, 2, 3]))
    for name, values in local.metrics.items():
        np.testing.assert_array_equal(again.metrics[name][[1, 0, 2, 3]], values)
    with pytest.raises(ValueError, match="shape"):
        evaluate_population("cgl", NAMES, np.array(PARAMS)[:, :2], seed=2, fidelity=FIDELITY)


DEVICE_SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    from huntflow.engine.evaluate import evaluate_population
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(-2, 2, 64), rng.uniform(-2, 2, 64), rng.uniform(0, 1, 64), rng.uniform(0.5, 4, 64)])
    run = lambda rows, **kw: evaluate_population("cgl", {names!r}, x[:rows], seed=3, fixed={fixed!r},
                                                 fidelity={{"grid": 16, "steps": 8}}, **kw)
    split, whole, small = run(64), run(64, min_rows_per_device=64), run(16)
    print(json.dumps({{"devices": jax.device_count(), "split": split.device_count, "whole": whole.device_count,
        "small": small.device_count, "status": [split.status.tolist(), whole.status.tolist()],
        "energy": [split.metrics["energy"].tolist(), whole.metrics["energy"].tolist()],
        "h_norm": [split.metrics["h_norm"].tolist(), whole.metrics["h_norm"].tolist()]}}))
    """
).format(names=NAMES, fixed=FIXED)


def test_a_cpu_host_gets_one_device_per_core_and_splits_only_large_generations(tmp_path):
    env = {**os.environ, "HUNTFLOW_CPU_DEVICES": "2", "HUNTFLOW_DATA_DIR": str(tmp_path)}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2
    assert (got["split"], got["whole"], got["small"]) == (2, 1, 1)  # 16 rows < 2 × 32: not split
    assert got["status"][0] == got["status"][1]
    np.testing.assert_allclose(got["energy"][0], got["energy"][1], rtol=1e-5)
    np.testing.assert_allclose(got["h_norm"][0], got["h_norm"][1], rtol=1e-3, atol=1e-7)


def test_cpu_device_setting_is_validated_by_name():
    from huntflow.engine.devices import requested_cpu_devices

    assert requested_cpu_devices({"HUNTFLOW_CPU_DEVICES": "3"}) == 3
    assert requested_cpu_devices({}) == requested_cpu_devices({"HUNTFLOW_CPU_DEVICES": "auto"}) == (os.cpu_count() or 1)
    for bad in ("0", "-2", "many", "1.5"):
        with pytest.raises(ValueError, match="HUNTFLOW_CPU_DEVICES"):
            requested_cpu_devices({"HUNTFLOW_CPU_DEVICES": bad})


def test_float64_is_scoped_to_its_call_and_float32_ignores_the_global_x64_setting():
    """A float64 generation must not switch the process to x64 (CI once failed on that leak)."""
    import jax

    names, fixed = ("alpha", "beta", "kappa", "ell"), {"L": 30.0}
    fidelity = {"grid": 16, "steps": 20, "dt": 0.05, "fft": "fused"}
    params = np.array([[0.5, -1.2, 0.3, 1.0], [1.5, -1.0, 0.6, 2.0]])
    before = jax.config.jax_enable_x64
    first = evaluate_population("cgl", names, params, seed=3, fixed=fixed, fidelity=fidelity)
    wide = evaluate_population("cgl", names, params, seed=3, fixed=fixed, fidelity=fidelity, dtype="float64")
    assert jax.config.jax_enable_x64 == before
    assert wide.extras["field_re"].dtype == np.float64
    with jax.enable_x64(not before):  # the other global setting: same float32 numbers
        again = evaluate_population("cgl", names, params, seed=3, fixed=fixed, fidelity=fidelity)
    assert again.extras["field_re"].dtype == np.float32
    for name in first.metrics:
        np.testing.assert_array_equal(first.metrics[name], again.metrics[name])


def _backend_compiles():
    """A list that grows by one per XLA backend compile in this process from now on."""
    import jax

    seen: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: seen.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)
    return seen


def test_compile_population_leaves_the_generation_nothing_to_compile():
    """A warm-up (compile only) builds the very executable the evaluation then uses: its call
    compiles nothing, for a model name and for a model block alike."""
    from huntflow.engine.evaluate import compile_population

    names, fidelity = ("x0", "x1", "x2"), {"bias": 0.25}
    params = np.array([[0.1, 0.2, 0.3]] * 5)
    compiles = _backend_compiles()
    first = compile_population("sphere", names, 5, fidelity=fidelity)
    assert first > 0 and compiles
    assert compile_population({"name": "sphere"}, names, 5, fidelity=fidelity) == 0.0  # the same one
    before = len(compiles)
    out = evaluate_population({"name": "sphere"}, names, params, seed=4, fidelity=fidelity)
    assert len(compiles) == before
    assert out.statuses() == [0] * 5 and np.all(np.isfinite(out.metrics["f"]))
    other = compile_population("sphere", names, 6, fidelity=fidelity)  # another batch shape: its own
    assert other > 0 and len(compiles) > before


def test_compile_population_rejects_bad_settings_and_skips_external_models():
    from huntflow.engine.evaluate import compile_population

    with pytest.raises(ValueError, match="bias"):
        compile_population("sphere", ("x0", "x1"), 4, fidelity={"bias": "lots"})
    block = {"function": "math:hypot", "metrics": ["f"]}
    assert compile_population(block, ("x0", "x1"), 4) == 0.0
