"""CGL throughput and achieved FFT memory bandwidth at a GPU-sized workload.

``evaluate_population("cgl", ...)`` at ``--grid``/``--population`` (warm: the compiling call is
reported apart), and the engine's 2-D FFT (``Fourier2D``, the layout the solver uses) and XLA's
``jnp.fft`` on a batch of ``population`` fields of ``grid²`` complex64: microseconds per
transform and the bandwidth that implies at one read and one write of the field per transform
(a lower bound on the traffic), against the device's peak: a measured device-to-device copy of
the same bytes and, for known devices, the vendor's nominal figure. Prints one JSON object last.
Run by ``benchmarks/gpu_check.sh``; works on a CPU too (small sizes), for a dry run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOMINAL_TB_S = {"H200": 4.8, "H100": 3.35, "A100": 2.0, "L4": 0.3}


def _median_wall(fn, runs: int = 5) -> float:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument("--population", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=20, help="inverse+forward transform pairs per timed loop")
    args = ap.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.engine_throughput import batched
    from huntflow.engine.spectral import Fourier2D

    p, n = args.population, args.grid
    load = os.getloadavg()
    run = batched(p, n, args.steps, repeats=3)
    four = Fourier2D(n, jnp.complex64)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, n, p)) + 1j * rng.standard_normal((n, n, p))).astype(np.complex64)
    xl = jax.device_put(x)
    xj = jax.device_put(np.moveaxis(x, -1, 0).copy())

    @jax.jit
    def fused(v):
        return jax.lax.scan(lambda v, _: (four.forward(four.inverse(v) * 0.5), None), v, None, length=args.pairs)[0]

    @jax.jit
    def xla(v):
        return jax.lax.scan(lambda v, _: (jnp.fft.fft2(jnp.fft.ifft2(v) * 0.5), None), v, None,
                            length=args.pairs)[0]

    @jax.jit
    def copy(v):
        return jax.lax.scan(lambda v, _: (v * 0.5 + 0.0j, None), v, None, length=args.pairs)[0]

    for f, v in ((fused, xl), (xla, xj), (copy, xj)):
        jax.block_until_ready(f(v))
    transforms = 2 * args.pairs * p
    field_bytes = n * n * 8
    out = {"benchmark": "gpu_fft", "device": str(jax.devices()[0]), "device_kind": jax.devices()[0].device_kind,
           "backend": jax.default_backend(), "grid": n, "population": p, "steps": args.steps,
           "engine": run, "load_start": load}
    for name, f, v in (("fused", fused, xl), ("xla", xla, xj)):
        wall = _median_wall(lambda: jax.block_until_ready(f(v)))
        out[f"{name}_us_per_transform"] = wall / transforms * 1e6
        out[f"{name}_gb_s"] = 2 * field_bytes * transforms / wall / 1e9
    wall = _median_wall(lambda: jax.block_until_ready(copy(xj)))
    out["copy_gb_s"] = 2 * field_bytes * p * args.pairs / wall / 1e9  # one read + one write per pass
    nominal = next((v for k, v in NOMINAL_TB_S.items() if k in out["device_kind"]), None)
    out["nominal_peak_gb_s"] = None if nominal is None else nominal * 1000
    best = max(out["fused_gb_s"], out["xla_gb_s"])
    out["fft_fraction_of_copy"] = best / out["copy_gb_s"]
    out["fft_fraction_of_nominal"] = None if nominal is None else best / (nominal * 1000)
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
