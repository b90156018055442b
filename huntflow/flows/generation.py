"""The ``hunt-generation`` flow: evaluate one generation (deployment ``hunt-generation/gpu``).

On a GPU work pool a worker runs it from the deployment (inline, dispatch calls the same body
directly). The body is :func:`huntflow.tasks.execute.execute_generation`: one
batched JAX call, one HDF5 artifact, the result document and the ``succeeded`` mark in one
transaction. Re-running a succeeded generation is a no-op. Its run is named ``SLUG/gen-N (rung)``,
it leaves the batch table ``campaign-<slug>-batch``, and a generation it fails for good emits
``huntflow.campaign.generation.failed``.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger

from huntflow.config import get_settings
from huntflow.flows.artifacts import batch_table, label_of

from huntflow.tasks.execute import execute_generation


def generation_run_name() -> str:
    """``SLUG/gen-N (rung)``: the generation's flow run named after what it evaluates."""
    try:
        from prefect.runtime import flow_run

        gid = str((flow_run.parameters or {}).get("generation_id"))
        about = label_of(gid)
        return about["label"] if about else f"generation {gid[:8]}"
    except Exception:  # a name is never a reason to fail the run
        return "generation"


def _report_failure(generation_id: str) -> None:
    """A generation the worker failed for good (out of attempts): ``huntflow.campaign.generation.failed``."""
    from huntflow.flows import events

    events.report_generation_failure(generation_id, skip_operators=("inline",))  # the tick reports inline ones


def trigger_tick(campaign_id: str) -> bool:
    """Start the campaign's next tick now (a flow run of the tick deployment); ``False`` if that
    failed — the schedule is the safety net, so this never raises."""
    from prefect.deployments import run_deployment

    settings = get_settings()
    try:
        run_deployment(settings.tick_deployment, parameters={"campaign_ids": [str(campaign_id)]},
                       timeout=0, as_subflow=False)
    except Exception as e:
        _logger().warning("could not trigger %s: %s", settings.tick_deployment, e)
        return False
    return True


def _logger():
    """The flow run's logger inside a run, the module's logger outside one (a slurm job)."""
    try:
        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)


@flow(name="hunt-generation", log_prints=True, flow_run_name=generation_run_name)
def hunt_generation(generation_id: str, dispatch_ref: str | None = None) -> dict[str, Any]:
    """Evaluate one generation's whole population in one batched JAX call."""
    try:
        summary = execute_generation(generation_id, dispatch_ref=dispatch_ref)
    except Exception:
        _report_failure(generation_id)
        raise
    if summary.get("status") == "succeeded":
        batch_table(summary)
        # a finished pool generation starts its campaign's next tick now, not at the next schedule
        if summary.get("operator") != "inline" and get_settings().chain_ticks:
            trigger_tick(summary["campaign_id"])
    return summary
