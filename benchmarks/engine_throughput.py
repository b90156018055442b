"""Engine throughput: batched CGL generations vs one subprocess per candidate vs NumPy.

Measures candidate-steps per second (P candidates × steps / wall seconds) of
``evaluate_population("cgl", ...)`` warm (compilation reported apart), on the original
design's workload (population 64, grid 32, 200 steps, dt 0.05, ETDRK4, float32), against:

* the old design: one subprocess per candidate that starts Python, imports JAX, builds and
  compiles the single-candidate function (with XLA's FFT, as the original worker did; it also
  compiles faster than the fused FFT), runs it and writes a provenance JSON (a handful of
  runs, extrapolated per candidate; run one after another, as the old hub did);
* a NumPy implementation of the same ETDRK4 scheme, vectorised over the population, in
  complex64 (same precision as the engine; the headline ratio) and complex128 (the NumPy
  FFT, pocketfft, runs on one core; the engine's fused FFT runs on all of them, so the CPU-time
  ratio is reported next to the wall-time one);
* the engine itself with ``fft: xla`` (XLA's FFT under ``vmap``: the engine before the fused
  FFT), so the fused FFT's gain is a ratio measured in the same run.

The engine runs in its default configuration: on a CPU host one XLA device per core, a
generation of ≥ 32 candidates per device split over them (:mod:`huntflow.engine.devices`).
The same batch on JAX's single CPU device (``HUNTFLOW_CPU_DEVICES=1``, a subprocess) is
reported too (``single_device``). ``--quick`` keeps the run under two minutes; the full run adds
grids 64 and 128. The last stdout line is one JSON object.

Honesty rules: every timing is warm (the first, compiling call is reported apart as
``compile_seconds``) and the median of ``--repeats`` (≥ 3) runs; the headline JAX-vs-NumPy ratio
comes from *interleaved* runs (JAX, NumPy, JAX, NumPy, ...) so both see the same background load,
and the per-pair ratios are reported too. CPU seconds (``time.process_time``) are recorded next
to wall seconds because the machine may be shared. The machine (cpu count, platform, load
average at start and end) is recorded, together with a per-transform FFT microbenchmark
(``fft``: fused, XLA and NumPy transforms, wall and CPU time): all implementations are FFT-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("alpha", "beta", "kappa", "ell")
FIXED = {"sigma": 0.0, "L": 40.0}


def population(p: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-2, 2, p), rng.uniform(-2, 2, p), rng.uniform(0, 1, p), rng.uniform(0.5, 4, p)])


def fidelity(grid: int, steps: int, fft: str = "auto") -> dict:
    return {"grid": grid, "steps": steps, "dt": 0.05, "fft": fft}


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def batched(p: int, grid: int, steps: int, repeats: int = 3, fft: str = "auto") -> dict:
    from huntflow.engine.evaluate import evaluate_population

    x = population(p)
    fid = fidelity(grid, steps, fft)
    first = evaluate_population("cgl", NAMES, x, seed=1, fixed=FIXED, fidelity=fid)
    walls = [evaluate_population("cgl", NAMES, x, seed=1, fixed=FIXED, fidelity=fid).wall_seconds for _ in range(repeats)]
    wall = statistics.median(walls)
    return {"population": p, "grid": grid, "steps": steps, "fft": fft, "devices": first.device_count,
            "compile_seconds": first.compile_seconds,
            "wall_seconds": wall, "wall_seconds_all": walls, "candidate_steps_per_second": p * steps / wall,
            "ok": int(np.sum(first.status == 0))}


OLD_WORKER = """
import json, sys, time
t0 = time.perf_counter()
import jax, numpy as np
from huntflow.engine.models import REGISTRY
from huntflow.engine.provenance import runtime
params, grid, steps, out = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fn = REGISTRY.get("cgl").build(("alpha", "beta", "kappa", "ell"), {"sigma": 0.0, "L": 40.0},
                               {"grid": grid, "steps": steps, "dt": 0.05, "fft": "xla"}, dtype=np.dtype("float32"))
res = jax.block_until_ready(jax.jit(fn)(np.asarray(params, np.float32), jax.random.key(1)))
doc = {"params": params, "metrics": {k: float(v) for k, v in res.metrics.items()},
       "status": int(res.status), "provenance": runtime(), "seconds": time.perf_counter() - t0}
open(out, "w").write(json.dumps(doc))
"""


def subprocess_design(grid: int, steps: int, runs: int) -> dict:
    """Seconds per candidate of the one-subprocess-per-candidate design (no compile cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "XLA_FLAGS"))}
    env["PYTHONPATH"] = str(ROOT)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(population(runs, seed=5)):
            out = Path(tmp) / f"job-{i}.json"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", OLD_WORKER, json.dumps(row.tolist()), str(grid), str(steps), str(out)],
                           env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
            json.loads(out.read_text())
    return {"runs": runs, "seconds_per_candidate": statistics.mean(times), "seconds": times}


def numpy_etdrk4(params: np.ndarray, a0: np.ndarray, *, length: float, dt: float, steps: int, cdtype) -> np.ndarray:
    """The engine's ETDRK4 scheme in NumPy, vectorised over P: params (P, 4) [α, β, κ, ℓ], a0 (P, N, N)."""
    n = a0.shape[-1]
    k = 2 * np.pi / length * np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    al, be, ka, ell = (params[:, i, None, None] for i in range(4))
    lin = 1 - k2 - 1j * al * k2 + ka * (np.exp(-0.5 * ell**2 * k2) - 1)
    z = dt * lin
    r = z[..., None] + np.exp(1j * np.pi * (np.arange(1, 17) - 0.5) / 8)
    er, ir = np.exp(r), 1 / r
    q = dt * np.mean((np.exp(r / 2) - 1) * ir, -1)
    f1 = dt * np.mean((-4 - r + er * (4 - 3 * r + r * r)) * ir**3, -1)
    f2 = dt * np.mean((2 + r + er * (r - 2)) * ir**3, -1)
    f3 = dt * np.mean((-4 - 3 * r - r * r + er * (4 - r)) * ir**3, -1)
    e, e2, q, f1, f2, f3 = (c.astype(cdtype) for c in (np.exp(z), np.exp(z / 2), q, f1, f2, f3))
    g = (-(1 + 1j * be)).astype(cdtype)

    def nl(v):
        a = np.fft.ifft2(v)
        return np.fft.fft2(g * (a.real**2 + a.imag**2) * a)

    v = np.fft.fft2(a0.astype(cdtype))
    for _ in range(steps):
        nv = nl(v)
        a = e2 * v + q * nv
        na = nl(a)
        b = e2 * v + q * na
        nb = nl(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nl(c)
        v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
    return np.fft.ifft2(v)


def initial_fields(p: int, grid: int) -> np.ndarray:
    """The engine's initial fields A₀ (P, N, N) complex64 for the benchmark population (seed 1)."""
    import jax

    from huntflow.engine.models.cgl import CGL, CGLParams

    x = population(p)
    solver = CGL(grid, FIXED["L"], 0.05)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(np.arange(p, dtype=np.uint32))
    init = jax.vmap(lambda row, k: solver.field(
        solver.init(CGLParams(row[0], row[1], row[2], row[3], row[0] * 0), key=k, amp0=0.1)))
    return np.asarray(init(x.astype(np.float32), keys))


def head_to_head(p: int, grid: int, steps: int, repeats: int) -> dict:
    """Interleaved warm runs of the batched engine and the NumPy scheme (complex64), same load.

    Also times NumPy in complex128 (fewer repeats) and checks that the final energies agree.
    """
    from huntflow.engine.evaluate import evaluate_population

    x = population(p)
    a0 = initial_fields(p, grid)
    run_jax = lambda: evaluate_population("cgl", NAMES, x, seed=1, fixed=FIXED, fidelity=fidelity(grid, steps))
    run_np = lambda cdtype: numpy_etdrk4(x, a0, length=FIXED["L"], dt=0.05, steps=steps, cdtype=cdtype)
    engine = run_jax()  # compiled already in-process by batched(); this is a warm-up
    jax_wall, jax_cpu, jax_call, np_wall, np_cpu = [], [], [], [], []
    for _ in range(repeats):
        box = []
        w, c = timed(lambda: box.append(run_jax()))
        jax_wall.append(w), jax_cpu.append(c), jax_call.append(box[0].wall_seconds)
        w, c = timed(lambda: run_np(np.complex64))
        np_wall.append(w), np_cpu.append(c)
    c128 = [timed(lambda: run_np(np.complex128))[0] for _ in range(max(1, repeats // 2))]
    final = {name: run_np(cd) for name, cd in (("complex64", np.complex64), ("complex128", np.complex128))}
    med = statistics.median
    return {
        "repeats": repeats,
        # whole evaluate_population call (keys, transfers, NumPy conversion) and the compiled call alone
        "jax_wall_seconds": med(jax_wall), "jax_cpu_seconds": med(jax_cpu), "jax_wall_seconds_all": jax_wall,
        "jax_compiled_call_seconds": med(jax_call),
        "numpy": {
            "complex64": {"wall_seconds": med(np_wall), "cpu_seconds": med(np_cpu), "wall_seconds_all": np_wall,
                          "candidate_steps_per_second": p * steps / med(np_wall),
                          "energy_mean": float(np.mean(np.abs(final["complex64"]) ** 2))},
            "complex128": {"wall_seconds": med(c128), "wall_seconds_all": c128,
                           "candidate_steps_per_second": p * steps / med(c128),
                           "energy_mean": float(np.mean(np.abs(final["complex128"]) ** 2))},
            "energy_mean_engine": float(np.mean(engine.metrics["energy"])),
        },
        "pair_ratios": [n / j for n, j in zip(np_wall, jax_wall)],
        "speedup_wall": med(np_wall) / med(jax_wall),
        "speedup_cpu": med(np_cpu) / med(jax_cpu),
    }


def fft_microbench(p: int = 64, grid: int = 32, pairs: int = 50) -> dict:
    """Microseconds per (N, N) complex64 2-D transform: the engine's fused FFT, XLA's, NumPy's.

    Each iteration is an inverse + scale + forward transform of P fields, as in one ETD stage:
    ``Fourier2D`` on (N, N, P) (the engine's layout), ``jnp.fft`` and ``np.fft`` on (P, N, N),
    each in its best layout. CPU seconds are reported too: the fused stages run on all cores.
    """
    import jax
    import jax.numpy as jnp

    from huntflow.engine.spectral import Fourier2D

    four = Fourier2D(grid, jnp.complex64)

    @jax.jit
    def fused_loop(v):
        return jax.lax.scan(lambda v, _: (four.forward(four.inverse(v) * 0.5), None), v, None, length=pairs)[0]

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((p, grid, grid)) + 1j * rng.standard_normal((p, grid, grid))).astype(np.complex64)

    @jax.jit
    def loop(v):
        return jax.lax.scan(lambda v, _: (jnp.fft.fft2(jnp.fft.ifft2(v) * 0.5), None), v, None, length=pairs)[0]

    def np_loop():
        v = x
        for _ in range(pairs):
            v = np.fft.fft2(np.fft.ifft2(v) * np.float32(0.5))
        return v

    xj, xl = jnp.asarray(x), jnp.asarray(np.moveaxis(x, 0, -1).copy())
    jax.block_until_ready(loop(xj)), jax.block_until_ready(fused_loop(xl))
    per = 2 * pairs * p / 1e6

    def per_transform(fn, runs):
        wall, cpu = zip(*(timed(fn) for _ in range(runs)))
        return statistics.median(wall) / per, statistics.median(cpu) / per

    fw, fc = per_transform(lambda: jax.block_until_ready(fused_loop(xl)), 5)
    jx, jc = per_transform(lambda: jax.block_until_ready(loop(xj)), 5)
    nx, _ = per_transform(np_loop, 3)
    return {"shape": [p, grid, grid], "fused_us_per_transform": fw, "fused_cpu_us_per_transform": fc,
            "xla_us_per_transform": jx, "xla_cpu_us_per_transform": jc, "numpy_us_per_transform": nx,
            "ratio_fused_vs_numpy": nx / fw, "ratio_xla_vs_numpy": nx / jx}


ONE_DEVICE = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.engine_throughput import batched
print(json.dumps(batched({p}, {grid}, {steps}, {repeats})))
"""


def single_device(p: int, grid: int, steps: int, repeats: int) -> dict:
    """The same batch in a process with JAX's single CPU device (``HUNTFLOW_CPU_DEVICES=1``)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(HUNTFLOW_CPU_DEVICES="1", PYTHONPATH=str(ROOT))
    code = ONE_DEVICE.format(root=str(ROOT), p=p, grid=grid, steps=steps, repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine(jax) -> dict:
    return {"cpu_count": os.cpu_count() or 1, "platform": platform.platform(), "processor": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "jax": jax.__version__,
            "jax_backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="grid 32 only (under two minutes)")
    ap.add_argument("--subprocess-runs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (median; >= 3)")
    args = ap.parse_args()
    repeats = max(3, args.repeats)
    load_start = os.getloadavg()
    import jax

    from huntflow.engine.evaluate import enable_compilation_cache

    # a private cache dir: the headline compile time is a cold compile, not a cache hit
    enable_compilation_cache(tempfile.mkdtemp(prefix="huntflow-bench-cache-"))
    p, grid, steps = 64, 32, 200
    rows = [batched(16, grid, steps, repeats), batched(p, grid, steps, repeats)]
    head = rows[1]
    print(f"batched P={p} N={grid} steps={steps} on {head['devices']} device(s): compile {head['compile_seconds']:.2f}s, "
          f"warm {head['wall_seconds']:.3f}s ({head['candidate_steps_per_second']:.0f} cand-steps/s)", flush=True)
    duel = head_to_head(p, grid, steps, repeats)
    ref = duel["numpy"]
    print(f"interleaved: jax {duel['jax_wall_seconds']:.3f}s, numpy c64 {ref['complex64']['wall_seconds']:.2f}s "
          f"(x{duel['speedup_wall']:.2f} wall, x{duel['speedup_cpu']:.2f} cpu), "
          f"c128 {ref['complex128']['wall_seconds']:.2f}s", flush=True)
    xla = batched(p, grid, steps, repeats, fft="xla")
    rows.append(xla)
    print(f"same batch with XLA's FFT under vmap: warm {xla['wall_seconds']:.3f}s, "
          f"compile {xla['compile_seconds']:.2f}s", flush=True)
    fft = fft_microbench(p, grid)
    print(f"fft {grid}x{grid} c64 per transform: fused {fft['fused_us_per_transform']:.2f}us "
          f"(cpu {fft['fused_cpu_us_per_transform']:.2f}us), xla {fft['xla_us_per_transform']:.2f}us "
          f"(cpu {fft['xla_cpu_us_per_transform']:.2f}us), numpy {fft['numpy_us_per_transform']:.2f}us", flush=True)
    old = subprocess_design(grid, steps, args.subprocess_runs)
    print(f"subprocess design: {old['seconds_per_candidate']:.2f}s per candidate", flush=True)
    for g in () if args.quick else (64, 128):
        row = batched(p, g, steps, repeats)
        a0 = initial_fields(p, g)
        x = population(p)
        np_walls = [timed(lambda: numpy_etdrk4(x, a0, length=FIXED["L"], dt=0.05, steps=steps,
                                               cdtype=np.complex64))[0] for _ in range(3)]
        row["numpy_complex64_wall_seconds"] = statistics.median(np_walls)
        row["numpy_candidate_steps_per_second"] = p * steps / row["numpy_complex64_wall_seconds"]
        row["speedup_vs_numpy"] = row["numpy_complex64_wall_seconds"] / row["wall_seconds"]
        rows.append(row)
        print(f"grid {g}: jax {row['wall_seconds']:.2f}s, numpy c64 {row['numpy_complex64_wall_seconds']:.2f}s "
              f"(x{row['speedup_vs_numpy']:.2f}), compile {row['compile_seconds']:.2f}s", flush=True)
    one = single_device(p, grid, steps, repeats) if head["devices"] > 1 else None
    jax_wall = duel["jax_wall_seconds"]
    per_candidate = jax_wall / p
    result = {
        "benchmark": "engine_throughput",
        "workload": {"model": "cgl", "population": p, "grid": grid, "steps": steps, "dt": 0.05,
                     "scheme": "etdrk4", "dtype": "float32", "repeats": repeats},
        "speedup_vs_subprocess": old["seconds_per_candidate"] / per_candidate,
        "speedup_vs_numpy": duel["speedup_wall"],
        "speedup_vs_numpy_cpu_time": duel["speedup_cpu"],
        "speedup_vs_numpy_pairs": duel["pair_ratios"],
        "speedup_vs_numpy_complex128": ref["complex128"]["wall_seconds"] / jax_wall,
        "compile_seconds": head["compile_seconds"],
        "speedup_fused_fft_vs_xla_fft": xla["wall_seconds"] / head["wall_seconds"],
        "batched_wall_seconds": jax_wall,
        "candidate_steps_per_second": p * steps / jax_wall,
        "subprocess_seconds_per_candidate": old["seconds_per_candidate"],
        "subprocess_runs": old["seconds"],
        "numpy": ref,
        "fft": fft,
        "rows": rows,
        "single_device": one,
        "speedup_split_vs_single_device": one["wall_seconds"] / head["wall_seconds"] if one else None,
        "machine": {**machine(jax), "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
