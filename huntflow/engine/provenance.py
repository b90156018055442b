"""Provenance stamped on every evaluation: what computed this number, and how."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import huntflow


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the huntflow checkout, ``$HUNTFLOW_GIT_COMMIT``, or ``"unknown"``."""
    env = os.environ.get("HUNTFLOW_GIT_COMMIT")
    if env:
        return env
    root = Path(huntflow.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def runtime() -> dict[str, Any]:
    """Engine version, git commit, JAX version, backend and device count of this process."""
    import jax

    return {
        "engine_version": huntflow.__version__,
        "git_commit": git_commit(),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "device_count": jax.device_count(),
    }
