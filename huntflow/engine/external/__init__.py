"""Function and command models: candidates run one by one in a process pool with real limits.

:mod:`batch` runs a generation (workers, walltime that kills the process group, retries with
backoff), :mod:`functions` keeps warm worker processes for Python functions (:mod:`worker` is
their stdlib-only bootstrap), :mod:`commands` runs executables with no shell, :mod:`outcome`
turns what came back into metrics or a failure category. The JAX path is
:mod:`huntflow.engine.evaluate`, which dispatches here for these kinds.
"""
