"""Batched evaluation: a whole population in one jitted, vmapped call.

``evaluate_population`` is the only entry point the rest of huntflow uses. It builds the
model's single-candidate function, wraps it in ``jax.vmap`` then ``jax.jit`` (or jits the
model's own population function when it has one, ``build_batch``), caches the
compiled function per (model, parameter names, fixed values, fidelity, dtype), and returns
NumPy arrays. Each candidate's PRNG key is ``fold_in(key(seed), candidate_index)``, so a
candidate's result does not depend on which other candidates share its batch.

With D > 1 devices the population is sharded over a 1-D ``Mesh`` axis ``"batch"``: P is padded
to a multiple of D (the padding rows repeat the last candidate, with their own keys), each
device evaluates its P/D slice, and the padding is trimmed from the results. A CPU host has one
device per core by default (:mod:`huntflow.engine.devices`); a population is split over at most
P // ``min_rows_per_device`` of them (32 rows per CPU device, 1 per GPU), so small generations
stay on one device. Per candidate the arithmetic is the same on any split; the rounding of a
result can differ between two batch shapes or splits (not between two runs of one shape).

JAX's persistent compilation cache is switched on once per process
(:func:`enable_compilation_cache`), so a later process with the same model, settings and batch
shape loads the executable instead of compiling it. :func:`compile_population` compiles a
batch's executable without evaluating (a warm worker's warm-ups); each executable is compiled
once per process even when two threads ask for it at once.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from huntflow.engine.devices import min_rows_per_device as devices_min_rows
from huntflow.engine.models import sources
from huntflow.engine.models.base import Status

if TYPE_CHECKING:
    from huntflow.engine.modelref import ModelRef


@dataclass(frozen=True)
class PopulationResult:
    """NumPy results of one batch of P candidates.

    metrics: name -> (P,) float64
    status:  (P,) int32 :class:`Status` codes
    extras:  name -> (P, ...) arrays (artifact-only data)
    wall_seconds: time of the compiled call (compilation excluded when it was cached); for an
        external model the whole pool run
    compile_seconds: time spent tracing and compiling in this call (~0 when cached in-process;
        a persistent-cache hit still traces and loads, so it is small but not 0)
    device_count: devices the batch was sharded over (1: unsharded); external: workers used
    failures: external models only: per candidate ``None`` or ``{"category", ...detail}``
    candidate_seconds: external models only: (P,) wall time of each candidate (all its tries)
    """

    metrics: dict[str, np.ndarray]
    status: np.ndarray
    extras: dict[str, np.ndarray]
    wall_seconds: float
    compile_seconds: float
    device_count: int = 1
    failures: tuple[dict[str, Any] | None, ...] = ()
    candidate_seconds: np.ndarray | None = None

    def statuses(self) -> list[Status]:
        return [Status(int(s)) for s in self.status]


def _freeze(mapping: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), v) for k, v in mapping.items()))


_CACHE_DIR: str | None = None


def default_cache_dir() -> Path:
    """``$HUNTFLOW_DATA_DIR/jax-cache``, else the platform user cache dir ``huntflow/jax-cache``."""
    data = os.environ.get("HUNTFLOW_DATA_DIR")
    if data:
        return Path(data) / "jax-cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("huntflow")) / "jax-cache"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache at ``path`` (default :func:`default_cache_dir`).

    Every executable that took any compile time is stored. Idempotent; calling again with
    another path moves the cache there. Returns the directory used.
    """
    global _CACHE_DIR
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    target = Path(path) if path is not None else default_cache_dir()
    if _CACHE_DIR == str(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # JAX decides once per process whether the cache is used (at its first compile); reset so
    # that a cache enabled after some earlier compile still takes effect.
    compilation_cache.reset_cache()
    _CACHE_DIR = str(target)
    return target


@functools.lru_cache(maxsize=64)
def _jitted(model_name: str, param_names: tuple[str, ...], fixed: tuple, fidelity: tuple, dtype: str, devices: int):
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    model = sources.jax_model(model_name)
    args = (param_names, dict(fixed), dict(fidelity))
    if hasattr(model, "build_batch"):  # the model batches natively (its own layout)
        fn = model.build_batch(*args, dtype=np.dtype(dtype))
    else:
        fn = jax.vmap(model.build(*args, dtype=np.dtype(dtype)))
    if devices == 1:
        return jax.jit(fn), None
    mesh = Mesh(np.asarray(jax.devices()[:devices]), ("batch",))
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(fn, in_shardings=(batch, batch), out_shardings=batch), batch


_EXECUTABLES: dict[tuple, Any] = {}
_COMPILING: dict[tuple, threading.Lock] = {}
_GUARD = threading.Lock()


def _executable(model_name: str, key: tuple, x, keys):
    """The compiled executable and input sharding for this model/settings and batch shape.

    Compiled once per process: a thread that asks for an executable another thread is compiling
    (a warm worker's warm-up, :func:`compile_population`) waits for that compile instead of
    starting a second one."""
    cache_key = (model_name, key, x.shape)
    hit = _EXECUTABLES.get(cache_key)
    if hit is not None:
        return hit
    with _GUARD:
        lock = _COMPILING.setdefault(cache_key, threading.Lock())
    with lock:
        hit = _EXECUTABLES.get(cache_key)
        if hit is None:
            jitted, sharding = _jitted(model_name, *key)
            hit = (jitted.lower(x, keys).compile(), sharding)
            _EXECUTABLES[cache_key] = hit
    return hit


def _jax_model(model_name: "str | Mapping[str, Any] | ModelRef", fixed: Mapping[str, Any] | None):
    """``(jax model key, fixed)`` of a model name or ``model`` block; ``(None, fixed)`` for an
    external (function/command) model, with ``fixed`` defaulting to the block's own."""
    if isinstance(model_name, str):
        return model_name, fixed
    from huntflow.engine.modelref import ModelRef

    ref = model_name if isinstance(model_name, ModelRef) else ModelRef.model_validate(dict(model_name))
    fixed = dict(ref.fixed) if fixed is None else fixed
    resolved = ref.resolve()
    return (None if resolved.is_external else str(resolved.jax_key)), fixed


def _inputs(model_name: str, param_names: tuple[str, ...], params: np.ndarray, *, seed: int,
            fixed: Mapping[str, Any], fidelity: Mapping[str, Any], dtype: str,
            candidate_indices: np.ndarray | None, min_rows_per_device: int | None):
    """``(cache key, x, keys, n)``: the padded device inputs of one batch (inside ``enable_x64``)."""
    import jax
    import jax.numpy as jnp

    if _CACHE_DIR is None:
        enable_compilation_cache()
    n = params.shape[0]
    if min_rows_per_device is None:
        min_rows_per_device = devices_min_rows(jax.default_backend())
    devices = max(1, min(jax.device_count(), n // max(1, int(min_rows_per_device))))
    padded = -(-n // devices) * devices
    if padded > n:
        params = np.concatenate([params, np.repeat(params[-1:], padded - n, axis=0)])
    key = (tuple(param_names), _freeze(fixed), _freeze(fidelity), dtype, devices)
    base = jax.random.key(int(seed))
    if candidate_indices is None:
        candidate_indices = np.arange(n)
    indices = np.asarray(candidate_indices, dtype=np.uint32)
    if indices.shape != (n,):
        raise ValueError(f"candidate_indices must have shape ({n},), got {indices.shape}")
    indices = np.concatenate([indices, np.repeat(indices[-1:], padded - n)])
    keys = _folded_keys()(base, jnp.asarray(indices))
    return key, jnp.asarray(params, dtype=dtype), keys, n


@functools.lru_cache(maxsize=1)
def _folded_keys():
    """``(base key, (P,) indices) -> (P,) keys``, ``fold_in(base, i)`` per row, jitted once per
    process (the same bits as the eager ``vmap``, which re-traced on every batch: ~0.6 ms a call)."""
    import jax

    return jax.jit(jax.vmap(jax.random.fold_in, in_axes=(None, 0)))


def _checked(model_name: str, param_names, params, fixed, fidelity, dtype):
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != len(param_names):
        raise ValueError(f"params must have shape (P, {len(param_names)}), got {params.shape}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    sources.jax_model(model_name).validate(tuple(param_names), fixed, fidelity)
    return params


def compile_population(
    model_name: "str | Mapping[str, Any] | ModelRef",
    param_names: tuple[str, ...],
    population: int,
    *,
    fixed: Mapping[str, Any] | None = None,
    fidelity: Mapping[str, Any] | None = None,
    dtype: str = "float32",
    min_rows_per_device: int | None = None,
) -> float:
    """Compile (or load from the persistent cache) the executable that
    :func:`evaluate_population` will use for a batch of ``population`` rows with these
    settings, without evaluating anything; returns the seconds it took here (0.0 when it was
    compiled already, or the model is external and has nothing to compile).

    A warm worker calls this ahead of a generation (its pool's new campaigns; a claimed run
    waiting for the device), so the generation finds the executable ready. Raises what
    :func:`evaluate_population` would for bad settings.
    """
    import jax

    model_name, fixed = _jax_model(model_name, fixed)
    if model_name is None or population < 1:
        return 0.0
    fixed, fidelity = dict(fixed or {}), dict(fidelity or {})
    params = _checked(model_name, param_names, np.zeros((int(population), len(param_names))), fixed, fidelity, dtype)
    t0 = time.perf_counter()
    with jax.enable_x64(dtype == "float64"):
        key, x, keys, _ = _inputs(model_name, tuple(param_names), params, seed=0, fixed=fixed, fidelity=fidelity,
                                  dtype=dtype, candidate_indices=None, min_rows_per_device=min_rows_per_device)
        if (model_name, key, x.shape) in _EXECUTABLES:
            return 0.0
        _executable(model_name, key, x, keys)
    return time.perf_counter() - t0


def evaluate_population(
    model_name: "str | Mapping[str, Any] | ModelRef",
    param_names: tuple[str, ...],
    params: np.ndarray,
    *,
    seed: int,
    fixed: Mapping[str, Any] | None = None,
    fidelity: Mapping[str, Any] | None = None,
    dtype: str = "float32",
    candidate_indices: np.ndarray | None = None,
    min_rows_per_device: int | None = None,
    workdir: str | os.PathLike | None = None,
    space: Mapping[str, Any] | None = None,
) -> PopulationResult:
    """Evaluate ``params`` (shape (P, D), columns in ``param_names`` order) in one call.

    ``model_name`` is a JAX model's name (or ``module:attr``), or a whole ``model`` block (a
    :class:`~huntflow.engine.modelref.ModelRef` or its dict; its ``fixed`` is used when ``fixed``
    is not given): function and command models then run in the process pool
    (:func:`evaluate_external`), each candidate in a fresh directory under ``workdir``
    (default: a temporary directory, removed afterwards), and are given the user's values
    (``space``, the spec's ``space`` as JSON, decodes choice indices and integers).

    ``candidate_indices`` (shape (P,), default ``arange(P)``) are the indices folded into the
    seed's key for each row: pass a candidate's original index to reproduce it exactly
    outside its generation (review's spot-check does). ``min_rows_per_device`` (default: by
    backend, :func:`huntflow.engine.devices.min_rows_per_device`) bounds how thinly the
    population is split over devices.

    Raises:
        KeyError: unknown model.
        ValueError: the model rejects the parameter names or settings, or ``params`` has the
            wrong shape.
    """
    import jax

    if not isinstance(model_name, str):
        from huntflow.engine.modelref import ModelRef

        ref = model_name if isinstance(model_name, ModelRef) else ModelRef.model_validate(dict(model_name))
        fixed = dict(ref.fixed) if fixed is None else fixed
        resolved = ref.resolve()
        if resolved.is_external:
            return evaluate_external(resolved, param_names, params, seed=seed, fixed=fixed, fidelity=fidelity,
                                     candidate_indices=candidate_indices, workdir=workdir, space=space)
        model_name = str(resolved.jax_key)
    fixed = dict(fixed or {})
    fidelity = dict(fidelity or {})
    params = _checked(model_name, param_names, params, fixed, fidelity, dtype)

    # x64 is scoped to this call, so a float64 evaluation leaves the process as it found it
    # and a float32 one gives the same numbers whatever the global setting
    with jax.enable_x64(dtype == "float64"):
        key, x, keys, n = _inputs(model_name, tuple(param_names), params, seed=seed, fixed=fixed, fidelity=fidelity,
                                  dtype=dtype, candidate_indices=candidate_indices,
                                  min_rows_per_device=min_rows_per_device)
        t0 = time.perf_counter()
        executable, sharding = _executable(model_name, key, x, keys)
        if sharding is not None:
            x, keys = jax.device_put(x, sharding), jax.device_put(keys, sharding)
        t1 = time.perf_counter()
        out = jax.block_until_ready(executable(x, keys))
        t2 = time.perf_counter()
    return PopulationResult(
        metrics={k: np.asarray(v, dtype=np.float64)[:n] for k, v in out.metrics.items()},
        status=np.asarray(out.status, dtype=np.int32)[:n],
        extras={k: np.asarray(v)[:n] for k, v in out.extras.items()},
        wall_seconds=t2 - t1,
        compile_seconds=t1 - t0,
        device_count=key[-1],
    )


def evaluate_external(resolved: Any, param_names: tuple[str, ...], params: np.ndarray, *, seed: int,
                      fixed: Mapping[str, Any] | None, fidelity: Mapping[str, Any] | None,
                      candidate_indices: np.ndarray | None = None,
                      workdir: str | os.PathLike | None = None,
                      space: Mapping[str, Any] | None = None) -> PopulationResult:
    """A function/command model's batch through the process pool (:mod:`huntflow.engine.external`).

    ``resolved`` is a :class:`~huntflow.engine.modelref.Resolved` external model. Metrics of a
    failed candidate are NaN; its category and detail are in ``failures``.
    """
    import tempfile

    from huntflow.engine.external.batch import requests_for, run_external

    params = np.asarray(params)
    if params.ndim != 2 or params.shape[1] != len(param_names):
        raise ValueError(f"params must have shape (P, {len(param_names)}), got {params.shape}")
    n = params.shape[0]
    indices = np.arange(n) if candidate_indices is None else np.asarray(candidate_indices)
    settings = resolved.run_settings(tuple(param_names))
    reqs = requests_for(tuple(param_names), params, fixed=dict(fixed or {}), fidelity=dict(fidelity or {}),
                        seed=int(seed), indices=indices, space=space)
    t0 = time.perf_counter()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="huntflow-external-") as tmp:
            outcomes = run_external(settings, reqs, Path(tmp))
    else:
        outcomes = run_external(settings, reqs, Path(workdir))
    wall = time.perf_counter() - t0
    return PopulationResult(
        metrics={m: np.array([o.metrics[m] for o in outcomes], dtype=np.float64) for m in settings.metrics},
        status=np.array([int(o.status) for o in outcomes], dtype=np.int32),
        extras={},
        wall_seconds=wall,
        compile_seconds=0.0,
        device_count=min(settings.workers, max(n, 1)),
        failures=tuple(None if o.category is None else {"category": o.category, **o.detail,
                                                         **({"tries": o.tries} if o.tries > 1 else {})}
                       for o in outcomes),
        candidate_seconds=np.array([o.seconds for o in outcomes], dtype=np.float64),
    )
