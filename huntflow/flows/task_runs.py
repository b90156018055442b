"""A stage's Prefect task run, started from a task run the tick builds itself.

Called plainly (``task(...)``), Prefect's sync engine creates the task run in memory and emits
a ``Pending`` state event before ``Running`` and the final state: three events per task run,
each sent over the events websocket and written by the API's event persister and task-run
recorder — the largest part of what Prefect costs a tick (measured: ~3.5 ms of the API's CPU
and ~3 ms of this process's per event). Handed a task run already built, which
``prefect.task_engine.run_task`` accepts (``task_run=``), the same engine runs the task —
states, retries with their delays, timeout, hooks, the run's name — and emits no ``Pending``
event: the API records the task run from its ``Running`` event on. The UI shows it as before,
its state history without the ``Pending`` entry. :func:`run` falls back to the plain call
outside a flow run or inside another task run (whose inputs and parents Prefect tracks).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4


def run(task, **parameters: Any):
    """Run ``task`` with ``parameters`` as a Prefect task run of the current flow run; returns
    its final state (as ``task(..., return_state=True)``)."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.task_engine import run_task

    flow_run = getattr(FlowRunContext.get(), "flow_run", None)
    if flow_run is None or TaskRunContext.get() is not None or task.isasync or task.isgenerator:
        return task(**parameters, return_state=True)
    return run_task(task=task, task_run=_task_run(task, flow_run.id, parameters), parameters=parameters,
                    return_type="state")


def _task_run(task, flow_run_id, parameters: dict[str, Any]):
    """The task run Prefect's engine would create for ``task`` in this flow run
    (``prefect.task_engine._create_task_run_locally``, non-stable dynamic key), named by the
    task's literal ``task_run_name`` if it has one. Its inputs are empty: a stage's parameters
    (a tick context, ids) are plain values, never futures or states of other runs."""
    from prefect.client.schemas.objects import StateDetails, TaskRun, TaskRunPolicy
    from prefect.context import TagsContext
    from prefect.states import Pending

    run_id = uuid4()
    state = Pending(state_details=StateDetails(task_run_id=run_id, flow_run_id=flow_run_id))
    dynamic_key = str(uuid4())
    name = task.task_run_name if isinstance(task.task_run_name, str) else f"{task.name}-{dynamic_key[:3]}"
    return TaskRun(
        id=run_id, name=name, flow_run_id=flow_run_id, task_key=task.task_key, dynamic_key=dynamic_key,
        task_version=task.version,
        empirical_policy=TaskRunPolicy(retries=task.retries, retry_delay=task.retry_delay_seconds,
                                       retry_jitter_factor=task.retry_jitter_factor),
        tags=list(set(task.tags).union(TagsContext.get().current_tags or [])),
        task_inputs={k: [] for k in parameters}, expected_start_time=state.timestamp,
        state_id=state.id, state_type=state.type, state_name=state.name, state=state,
        created=state.timestamp, updated=state.timestamp)
