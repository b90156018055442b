"""The ``hunt-generation`` flow: evaluate one generation (deployment ``hunt-generation/gpu``).

Inline, the tick's dispatch runs it as a subflow; on a GPU work pool a worker runs it from the
deployment. Either way the body is :func:`huntflow.tasks.execute.execute_generation`: one
batched JAX call, one HDF5 artifact, the result document and the ``succeeded`` mark in one
transaction. Re-running a succeeded generation is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger

from huntflow.config import get_settings

from huntflow.tasks.execute import execute_generation


def _table_artifact(summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    rows = [{"metric": k, "best": v} for k, v in (summary.get("best") or {}).items()]
    rows.append({"metric": "candidates", "best": summary.get("candidates")})
    rows.append({"metric": "ok", "best": summary.get("ok")})
    create_table_artifact(
        key="generation-batch", table=rows,
        description=f"generation {summary['generation_id']}: {summary.get('wall_seconds')} s",
    )


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


@flow(name="hunt-generation", log_prints=True)
def hunt_generation(generation_id: str, dispatch_ref: str | None = None) -> dict[str, Any]:
    """Evaluate one generation's whole population in one batched JAX call."""
    summary = execute_generation(generation_id, dispatch_ref=dispatch_ref)
    if summary.get("status") == "succeeded":
        _table_artifact(summary)
        # a finished pool generation starts its campaign's next tick now, not at the next schedule
        if summary.get("operator") != "inline" and get_settings().chain_ticks:
            trigger_tick(summary["campaign_id"])
    return summary
