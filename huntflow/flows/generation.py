"""The ``hunt-generation`` flow: evaluate one generation (deployment ``hunt-generation/gpu``).

Inline, the tick's dispatch runs it as a subflow; on a GPU work pool a worker runs it from the
deployment. Either way the body is :func:`huntflow.tasks.execute.execute_generation`: one
batched JAX call, one HDF5 artifact, the result document and the ``succeeded`` mark in one
transaction. Re-running a succeeded generation is a no-op.
"""

from __future__ import annotations

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


def _trigger_tick(summary: dict[str, Any]) -> None:
    """A finished pool generation starts its campaign's next tick now, not at the next schedule."""
    settings = get_settings()
    if summary.get("operator") == "inline" or not settings.chain_ticks:
        return
    from prefect.deployments import run_deployment

    try:
        run_deployment(settings.tick_deployment, parameters={"campaign_ids": [summary["campaign_id"]]},
                       timeout=0, as_subflow=False)
    except Exception as e:  # the schedule is the safety net
        get_run_logger().warning("could not trigger %s: %s", settings.tick_deployment, e)


@flow(name="hunt-generation", log_prints=True)
def hunt_generation(generation_id: str) -> dict[str, Any]:
    """Evaluate one generation's whole population in one batched JAX call."""
    summary = execute_generation(generation_id)
    if summary.get("status") == "succeeded":
        _table_artifact(summary)
        _trigger_tick(summary)
    return summary
