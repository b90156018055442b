"""The cyclic garbage collector in a long-running process (a tick loop, a warm worker).

Once JAX, Prefect, nevergrad and pydantic are imported and warm, the interpreter holds ~430 000
long-lived objects; each full collection walks all of them (0.23-0.31 s on this machine, about one
every 30 steady ticks) and the young generations, filled fast by Prefect's per-task-run objects,
are collected ~5 times a tick. :func:`settle` collects once, then freezes what survived
(``gc.freeze``: kept out of every later collection, as CPython documents for long-lived servers)
and collects the youngest generation every :data:`YOUNG_THRESHOLD` allocations instead of 700.
Measured (benchmarks/RESULTS.md, "The collector in the loop"): 8-10 ms of collection a steady
demo tick -> 0.5-0.7 ms. Garbage made after it is still collected; only what existed at
:func:`settle` is never scanned again (a cycle among those objects that later becomes garbage
stays in memory), so it runs once, after the process's warm-up.
"""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 20_000
"""Allocations (net of deallocations) between two collections of the youngest generation."""

_settled = threading.Event()


def settle() -> bool:
    """Collect, freeze what is left and raise the young generation's threshold, once per process;
    True when this call did it."""
    if _settled.is_set():
        return False
    _settled.set()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return True
