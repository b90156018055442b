"""The Slurm operator: each generation is one batch job on a Slurm cluster.

dispatch (:func:`submit`) writes a job script to
``$HUNTFLOW_DATA_DIR/slurm/<slug>/gen-<index>-<generation id>-a<attempt>.sh`` and submits it with
``sbatch --parsable --export=ALL``. The job runs ``huntflow generation run <generation id>
--attempt <n>``: the same :func:`~huntflow.tasks.execute.execute_generation` as every operator
(one batched JAX call, the HDF5 artifact, the result document and ``succeeded`` in one
transaction). The generation's ``dispatch_ref`` is ``slurm:<job id>``; the job's output goes
next to its script (``.out``). The job inherits the submitting process's environment
(``SUPABASE_DB_URL``, ``HUNTFLOW_DATA_DIR``, ``PREFECT_API_URL``, ...) through
``--export=ALL``, so the script holds no secret.

Settings (environment, see :mod:`huntflow.config`):

* ``HUNTFLOW_SLURM_SBATCH_ARGS``: extra ``sbatch`` arguments, split like a shell would
  (e.g. ``--partition=gpu --gres=gpu:1 --time=02:00:00``);
* ``HUNTFLOW_SLURM_PYTHON``: the interpreter the job runs (default: the submitting one).

A job that runs an attempt the generation is no longer at (it started after its attempt was
given up) does nothing: ``--attempt`` makes it a no-op.

Lost jobs (:func:`job_state`, used by parse): a generation still ``dispatched``/``running``
whose job Slurm reports as ended (``FAILED``, ``CANCELLED``, ``TIMEOUT``, ``NODE_FAIL``,
``OUT_OF_MEMORY``, ``PREEMPTED``, ``BOOT_FAIL``, ``DEADLINE``; or ``COMPLETED`` although the
generation never succeeded) or no longer knows is sent back for another attempt at once,
without waiting for the heartbeat timeout. When Slurm cannot be asked (no ``scontrol``, the
controller down) nothing is decided and the heartbeat timeout still applies.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from huntflow.config import get_settings
from huntflow.errors import HuntflowError

REF_PREFIX = "slurm:"
ENDED = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                   "BOOT_FAIL", "DEADLINE", "COMPLETED", "UNKNOWN"})
"""Job states after which the job will not run the generation any more (``UNKNOWN``: Slurm no
longer knows the job id)."""
COMMAND_TIMEOUT = 60.0


class SlurmError(HuntflowError):
    """``sbatch`` could not submit a job (the message has Slurm's own words)."""


def job_id(dispatch_ref: str | None) -> str | None:
    """The job id in a ``slurm:<id>`` dispatch reference (None for any other reference)."""
    if dispatch_ref and dispatch_ref.startswith(REF_PREFIX) and dispatch_ref[len(REF_PREFIX):].isdigit():
        return dispatch_ref[len(REF_PREFIX):]
    return None


def script_path(generation: dict[str, Any], slug: str, attempt: int) -> Path:
    return (get_settings().data_dir / "slurm" / slug
            / f"gen-{generation['generation_index']:05d}-{generation['generation_id']}-a{attempt}.sh")


def render_script(generation: dict[str, Any], slug: str, attempt: int) -> str:
    """The job script of one attempt of a generation."""
    settings = get_settings()
    python = settings.slurm_python or sys.executable
    out = script_path(generation, slug, attempt).with_suffix(".out")
    gid = str(generation["generation_id"])
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=huntflow-{slug[:40]}-g{generation['generation_index']}",
        f"#SBATCH --output={out}",
        "#SBATCH --ntasks=1",
        f"# huntflow generation {gid}, attempt {attempt} (campaign {slug})",
        "set -euo pipefail",
        f"exec {shlex.quote(python)} -m huntflow.flows.cli generation run {gid} --attempt {attempt}",
        "",
    ]
    return "\n".join(lines)


def submit(generation: dict[str, Any], slug: str, attempt: int) -> str:
    """Write the job script and ``sbatch`` it; returns the job id.

    Raises:
        SlurmError: ``sbatch`` is missing, timed out or refused the job.
    """
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SlurmError("sbatch not found on PATH (the slurm operator needs a Slurm client)")
    path = script_path(generation, slug, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_script(generation, slug, attempt))
    extra = shlex.split(get_settings().slurm_sbatch_args or "")
    try:
        r = subprocess.run([sbatch, "--parsable", "--export=ALL", *extra, str(path)], capture_output=True,
                           text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise SlurmError(f"sbatch timed out after {COMMAND_TIMEOUT:.0f} s") from e
    if r.returncode != 0:
        raise SlurmError(f"sbatch exited {r.returncode}: {(r.stderr or r.stdout).strip()}")
    jid = r.stdout.strip().split(";")[0]  # --parsable: "<id>" or "<id>;<cluster>"
    if not jid.isdigit():
        raise SlurmError(f"sbatch printed no job id: {r.stdout.strip()!r}")
    return jid


def job_state(jid: str) -> str | None:
    """Slurm's state of a job (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``, ...),
    ``UNKNOWN`` when Slurm no longer knows the id, ``None`` when Slurm cannot be asked."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        r = subprocess.run([scontrol, "show", "job", "-o", str(jid)], capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return "UNKNOWN" if "invalid job id" in (r.stderr + r.stdout).lower() else None
    m = re.search(r"\bJobState=([A-Z_]+)", r.stdout)  # without a trailing "+" (e.g. "CANCELLED+")
    return m.group(1) if m else None


def cancel(jid: str) -> bool:
    """``scancel`` a job (best effort: a job that already ended is not an error)."""
    scancel = shutil.which("scancel")
    if scancel is None:
        return False
    try:
        return subprocess.run([scancel, str(jid)], capture_output=True, timeout=COMMAND_TIMEOUT).returncode == 0
    except subprocess.TimeoutExpired:
        return False
