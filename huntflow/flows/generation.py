"""The ``hunt-generation`` flow: evaluate one generation (deployment ``hunt-generation/gpu``).

On a GPU work pool a worker runs it from the deployment: the warm worker of
:mod:`huntflow.flows.warm` in its own long-lived process, or Prefect's process worker in a new
one (inline, dispatch calls the same body directly). The body is :func:`huntflow.tasks.execute.execute_generation`: one
batched JAX call, one HDF5 artifact, the result document and the ``succeeded`` mark in one
transaction. Re-running a succeeded generation is a no-op. Its run is named ``SLUG/gen-N (rung)``,
it leaves the batch table ``campaign-<slug>-batch``, and a generation it fails for good emits
``huntflow.campaign.generation.failed``.

While it evaluates, a :class:`Heartbeat` thread bumps the row's ``heartbeat_at`` every
``HUNTFLOW_GENERATION_HEARTBEAT_SECONDS`` (default 30), so parse tells a lost worker from a long
generation. A generation cancelled while it ran (``huntflow campaign cancel``) ends its run
``Cancelled``. When it succeeds, :func:`trigger_tick` starts the campaign's next tick: in a warm
worker (:mod:`huntflow.flows.warm`) in that process at once, else as a run of the tick deployment.

A warm worker claims runs ahead of its device (``--prefetch``) and installs
:func:`use_device_slots`: a claimed run's flow-run start happens while the previous generation
evaluates, then the run waits for a device slot (:func:`device_slot`, still ``dispatched`` and
beating) and is marked ``running`` when it has one, so consecutive generations follow each other
with no Prefect round trip between them. While it waits it compiles its executable
(:func:`huntflow.tasks.warmup.prepare_generation`: a rung change, a verification batch), behind
the evaluation that holds the device.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger

from huntflow.config import get_settings
from huntflow.flows.artifacts import batch_table, label_of

from huntflow.tasks.execute import execute_generation
from huntflow.tasks.warmup import prepare_generation


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


_local_ticks: Callable[[str], bool] | None = None


def use_local_ticks(runner: Callable[[str], bool] | None) -> None:
    """Send :func:`trigger_tick` to ``runner(campaign_id)`` (a warm worker's in-process ticks),
    or back to the tick deployment with ``None``."""
    global _local_ticks
    _local_ticks = runner


def trigger_tick(campaign_id: str) -> bool:
    """Start the campaign's next tick now (in this process when a warm worker installed
    :func:`use_local_ticks`, else a flow run of the tick deployment); ``False`` if that failed —
    the schedule is the safety net, so this never raises."""
    from prefect.deployments import run_deployment

    if _local_ticks is not None:
        try:
            return bool(_local_ticks(str(campaign_id)))
        except Exception as e:
            _logger().warning("could not queue a local tick: %s", e)
            return False
    settings = get_settings()
    try:
        run_deployment(settings.tick_deployment, parameters={"campaign_ids": [str(campaign_id)]},
                       timeout=0, as_subflow=False)
    except Exception as e:
        _logger().warning("could not trigger %s: %s", settings.tick_deployment, e)
        return False
    return True


class DeviceSlots:
    """``slots`` device slots; runs waiting for one get it in the order of a key (a run's
    scheduled start, i.e. dispatch order). A run that finds a slot free takes it at once, unless
    an earlier run the worker has claimed (:meth:`expect`) has not reached the device yet: it
    waits for that one up to ``grace`` seconds (two runs claimed in one poll otherwise start in
    the order their flow-run starts happen to finish, and a pool campaign tells in ask order)."""

    def __init__(self, slots: int, grace: float = 10.0) -> None:
        self.free = max(1, int(slots))
        self.grace = grace
        self._waiting: list[tuple[float, int]] = []
        self._expected: dict[str, float] = {}  # claimed runs not at the device yet: run id -> key
        self._seq = itertools.count()
        self._cv = threading.Condition()

    def expect(self, run_id: Any, key: float) -> None:
        """A run was claimed: runs with a later key leave it the device (up to ``grace``)."""
        with self._cv:
            self._expected[str(run_id)] = float(key)
            self._cv.notify_all()

    def forget(self, run_id: Any) -> None:
        """The claimed run ended (or never comes to the device): nobody waits for it."""
        with self._cv:
            self._expected.pop(str(run_id), None)
            self._cv.notify_all()

    def waiting(self) -> int:
        """Runs waiting for a slot now."""
        with self._cv:
            return len(self._waiting)

    def busy(self) -> bool:
        """Whether a run arriving now would wait (no slot free, or others in line)."""
        with self._cv:
            return self.free <= 0 or bool(self._waiting)

    @contextlib.contextmanager
    def hold(self, key: float, run_id: Any = None) -> Iterator[None]:
        with self._cv:
            if run_id is not None:  # the key it was expected under (the same scheduled start)
                key = self._expected.pop(str(run_id), key)
            ticket = (float(key), next(self._seq))
            heapq.heappush(self._waiting, ticket)
            deadline = time.monotonic() + self.grace
            while True:
                early = any(k < ticket[0] for k in self._expected.values()) and time.monotonic() < deadline
                if self.free > 0 and self._waiting[0] == ticket and not early:
                    break
                self._cv.wait(max(0.01, deadline - time.monotonic()) if early else None)
            heapq.heappop(self._waiting)
            self.free -= 1
            self._cv.notify_all()  # with a slot left, the next in line may go too
        try:
            yield
        finally:
            with self._cv:
                self.free += 1
                self._cv.notify_all()


_device: DeviceSlots | None = None


def use_device_slots(slots: int | None) -> None:
    """Generations run in this process take one of ``slots`` device slots for their evaluation
    (a warm worker that claims more runs than it has devices), or none with ``None``."""
    global _device
    _device = None if slots is None else DeviceSlots(slots)


@contextlib.contextmanager
def device_slot(prepare: Callable[[], Any] | None = None) -> Iterator[None]:
    """Hold a device slot for the block (waiting for one first; waiting runs go in dispatch
    order) when :func:`use_device_slots` set any; otherwise a no-op.

    ``prepare`` (compiling the run's executable) runs first when the run has to wait, i.e.
    while another generation holds the device: it is hidden behind that evaluation. A run that
    finds the device free goes at once (its compile, if any, is then part of its run)."""
    gate = _device
    if gate is None:
        yield
        return
    if prepare is not None and gate.busy():
        try:
            prepare()
        except Exception as e:  # a warm-up is never a reason to fail the run
            _logger().debug("warm-up skipped: %s", e)
    with gate.hold(_scheduled_start(), _flow_run_id()):
        yield


def device_gate() -> DeviceSlots | None:
    """The device slots :func:`use_device_slots` installed (None: none)."""
    return _device


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:
        return None


def _scheduled_start() -> float:
    """The flow run's scheduled start (its dispatch time), as a POSIX timestamp (0 outside a run)."""
    try:
        from prefect.runtime import flow_run

        return float(flow_run.scheduled_start_time.timestamp()) if flow_run.id else 0.0
    except Exception:
        return 0.0


def _logger():
    """The flow run's logger inside a run, the module's logger outside one (a slurm job)."""
    try:
        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    return float(os.environ.get("HUNTFLOW_GENERATION_HEARTBEAT_SECONDS", "30"))


class Heartbeat:
    """While the block runs, bump the generation's ``heartbeat_at`` every ``every`` seconds
    (while it is ``running``, or ``dispatched`` under ``dispatch_ref``: its run waits for the
    device; a beat that fails is skipped, never raised)."""

    def __init__(self, generation_id: str, every: float | None = None, dispatch_ref: str | None = None) -> None:
        self.generation_id = UUID(str(generation_id))
        self.dispatch_ref = dispatch_ref
        self.every = heartbeat_seconds() if every is None else every
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="huntflow-generation-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        from huntflow.store import generations
        from huntflow.store.connection import session

        while not self._stop.wait(self.every):
            try:
                with session() as conn:
                    self.beats += generations.heartbeat(conn, self.generation_id, self.dispatch_ref)
            except Exception as e:
                _logger().debug("heartbeat of generation %s skipped: %s", self.generation_id, e)


def _cancelled(generation_id: str) -> bool:
    try:
        about = label_of(generation_id)
    except Exception:
        return False
    return bool(about) and about["status"] == "cancelled"


@flow(name="hunt-generation", log_prints=True, flow_run_name=generation_run_name)
def hunt_generation(generation_id: str, dispatch_ref: str | None = None) -> Any:
    """Evaluate one generation's whole population in one batched JAX call."""
    try:
        # the run's own flow-run id is the pool generation's dispatch reference
        with Heartbeat(generation_id, dispatch_ref=dispatch_ref or _flow_run_id()), \
                device_slot(prepare=lambda: prepare_generation(generation_id)):
            summary = execute_generation(generation_id, dispatch_ref=dispatch_ref)
    except Exception:
        _report_failure(generation_id)
        raise
    if summary.get("status") != "succeeded" and _cancelled(generation_id):
        from prefect.states import Cancelled

        return Cancelled(message="its campaign was cancelled: the result is discarded")
    if summary.get("status") == "succeeded":
        # a finished pool generation starts its campaign's next tick now, not at the next schedule
        if summary.get("operator") != "inline" and get_settings().chain_ticks:
            trigger_tick(summary["campaign_id"])
        batch_table(summary)
    return summary
