"""A deterministic slow function model for the chaos runs: a sphere that takes its time.

``slow_sphere`` sleeps ``HUNTFLOW_CHAOS_SECONDS`` (default 0.3 s) per candidate, so that a
generation of 8 candidates on 2 workers runs for ~1–2 s and a SIGKILL can land inside it; its
value depends on the parameters and the rung's ``bias`` only (never on time or load), so an
interrupted campaign must end with exactly the evaluations of an uninterrupted one.
"""

from __future__ import annotations

import os
import time


def slow_sphere(params, *, fidelity, seed, workdir):
    time.sleep(float(os.environ.get("HUNTFLOW_CHAOS_SECONDS", "0.3")))
    return {"f": sum(float(v) ** 2 for v in params.values()) + float(fidelity.get("bias", 0.0))}
