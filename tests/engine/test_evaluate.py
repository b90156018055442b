"""Batched evaluation: device sharding and the persistent compilation cache (in subprocesses,
because the device count and the cache are fixed when JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from huntflow.engine.evaluate import evaluate_population

NAMES = ("alpha", "beta", "ell")
PARAMS = [[0.5, -1.2, 1.0], [1.5, -1.5, 2.5], [0.1, 0.2, -1.0], [2.0, 0.3, 0.7], [-1.0, 1.0, 1.5], [0.0, 0.0, 3.0]]
FIDELITY = {"grid": 8, "steps": 6, "dt": 0.05}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from huntflow.engine.evaluate import evaluate_population
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
    r = evaluate_population("cgl", {names!r}, np.array({params!r}), seed=2, fidelity={fidelity!r})
    print(json.dumps({{"devices": jax.device_count(), "device_count": r.device_count,
        "compile_seconds": r.compile_seconds, "cache_hits": len(hits), "status": r.status.tolist(),
        "metrics": {{k: v.tolist() for k, v in r.metrics.items()}}}}))
    """
).format(names=NAMES, params=PARAMS, fidelity=FIDELITY)


def run_script(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_population_is_sharded_over_devices_with_padding(tmp_path):
    sharded = run_script({"XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                          "HUNTFLOW_DATA_DIR": str(tmp_path)})
    assert sharded["devices"] == 4 and sharded["device_count"] == 4  # P = 6 padded to 8
    local = evaluate_population("cgl", NAMES, np.array(PARAMS), seed=2, fidelity=FIDELITY)
    assert sharded["status"] == local.status.tolist() == [0, 0, 3, 0, 0, 0]
    for name, values in local.metrics.items():
        np.testing.assert_allclose(np.array(sharded["metrics"][name], dtype=float), values,
                                   rtol=1e-5, atol=1e-7, equal_nan=True)


def test_second_process_loads_compiled_executable_from_persistent_cache(tmp_path):
    env = {"HUNTFLOW_DATA_DIR": str(tmp_path), "XLA_FLAGS": ""}
    first = run_script(env)
    assert (tmp_path / "jax-cache").is_dir() and any((tmp_path / "jax-cache").iterdir())
    second = run_script(env)
    assert first["cache_hits"] == 0 and second["cache_hits"] >= 1
    assert second["compile_seconds"] < 0.6 * first["compile_seconds"], (first, second)
    assert second["metrics"] == first["metrics"]


def test_a_candidate_result_does_not_depend_on_its_batch_mates():
    import pytest

    full = evaluate_population("cgl", NAMES, np.array(PARAMS), seed=2, fidelity=FIDELITY)
    other = np.array(PARAMS[:3] + [[1.0, 1.0, 1.0]] * 3)
    mixed = evaluate_population("cgl", NAMES, other, seed=2, fidelity=FIDELITY)
    for name, values in full.metrics.items():
        np.testing.assert_array_equal(mixed.metrics[name][:3], values[:3])
        assert not np.array_equal(mixed.metrics[name][3:], values[3:])
    with pytest.raises(ValueError, match="shape"):
        evaluate_population("cgl", NAMES, np.array(PARAMS)[:, :2], seed=2, fidelity=FIDELITY)
