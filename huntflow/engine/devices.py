"""How many XLA devices a generation is spread over on a CPU-only host.

JAX gives a CPU host one device, and one device runs one generation's fused loops on the
intra-op thread pool, splitting every loop between the cores and joining after it: for the
CGL solver's ~50 loops per step that is a barrier every few microseconds. One XLA CPU device
per core instead runs an independent slice of the population on each core (``jax.sharding``
over a ``batch`` mesh axis, see :mod:`huntflow.engine.evaluate`), which measured 1.3–1.4×
faster for a CGL generation of 64 candidates on 2 cores (benchmarks/RESULTS.md).

``$HUNTFLOW_CPU_DEVICES``: ``auto`` (default, one device per core), or a positive integer
(``1``: JAX's default single device). It must take effect before JAX starts its backends, so
:func:`configure_cpu_devices` runs when :mod:`huntflow.engine` is imported; where JAX was
already running, or ``XLA_FLAGS`` sets ``--xla_force_host_platform_device_count``, the process
keeps what it has. GPU hosts are unaffected (their devices are the GPUs).

Small generations are not split: a slice needs at least :data:`MIN_ROWS_PER_CPU_DEVICE`
candidates on a CPU device, because the candidates on the last array axis are what the loops
vectorise over (16 candidates split over 2 devices measured 1.6× slower than unsplit).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

ENV = "HUNTFLOW_CPU_DEVICES"
MIN_ROWS_PER_CPU_DEVICE = 32
_FORCED = "xla_force_host_platform_device_count"


def requested_cpu_devices(environ=os.environ) -> int:
    """The CPU device count asked for by ``$HUNTFLOW_CPU_DEVICES`` (raises ValueError if bad)."""
    raw = environ.get(ENV, "auto").strip().lower()
    if raw in ("", "auto"):
        return max(1, os.cpu_count() or 1)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV} must be 'auto' or a positive integer, got {raw!r}")
    return value


def configure_cpu_devices() -> int | None:
    """Ask JAX for ``requested_cpu_devices()`` CPU devices; the count set, or None if left alone.

    When JAX is not imported yet, the setting is applied right after it is (:class:`_AfterJaxImport`),
    so importing :mod:`huntflow.engine` does not import JAX (the CLI's read-only commands stay
    fast) and nothing leaks into child processes' environments.
    """
    if _FORCED in os.environ.get("XLA_FLAGS", ""):
        return None
    count = requested_cpu_devices()
    if "jax" not in sys.modules:
        if not any(isinstance(f, _AfterJaxImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterJaxImport(count))
        return count
    return _apply(count)


def _apply(count: int) -> int | None:
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX's backends already started in this process: keep its devices
        return None
    return count


class _AfterJaxImport(importlib.abc.MetaPathFinder):
    """An import hook that sets ``jax_num_cpu_devices`` as soon as ``jax`` has been executed
    (backends start lazily, at the first device use), then removes itself."""

    def __init__(self, count: int):
        self.count = count

    def find_spec(self, name, path=None, target=None):
        if name != "jax":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run, count = loader.exec_module, self.count

        def exec_module(module):
            run(module)
            _apply(count)

        loader.exec_module = exec_module
        return spec


def min_rows_per_device(backend: str) -> int:
    """The smallest slice of a population worth a device of its own on ``backend``."""
    return MIN_ROWS_PER_CPU_DEVICE if backend == "cpu" else 1
