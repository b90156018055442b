"""Warm workers: a long-lived process that runs its work pool's flow runs in itself.

``huntflow worker --pool gpu`` replaces ``prefect worker start --pool gpu`` where speed matters.
It is a Prefect worker (:class:`WarmWorker`, a ``BaseWorker``: it polls the pool, claims a run
with the ``Pending`` proposal, heartbeats to the pool, honours ``--limit``, reports crashes),
but where Prefect's process worker starts a Python process per flow run (imports, JAX start,
CUDA initialisation, compilation: 10–50 s), it runs each flow run with Prefect's own flow engine
(``flow_engine.run_flow``) in a thread of this process. JAX, its compiled executables (the
engine caches them per model/shape), the device and the database pool stay warm between
generations. Each generation is still a flow run of ``hunt-generation/gpu`` named
``SLUG/gen-N (rung)``, dispatched with its idempotency key; the process worker still serves
the same pool and deployment, so either may be started.

It claims ``--prefetch`` (default 1) runs beyond its ``--limit`` device slots: a claimed run's
Prefect start (Pending, Running, its name) happens while the previous generation evaluates, and
the run then waits for a slot (:func:`huntflow.flows.generation.device_slot`, the row still
``dispatched`` and beating), so the next generation starts the moment the device is free.

When a generation finishes, its campaign's next tick runs here at once (:class:`LocalTicks`,
installed as :func:`huntflow.flows.generation.trigger_tick`'s target) instead of waiting for a
``hunt-tick/chained`` process on the cpu pool: the tick parses, evolves and dispatches the next
generation, which this worker claims at its next poll (``--poll``, default 0.5 s) or as soon as
a run ends. With ``optimizer.options.max_in_flight`` ≥ 2 the next generation is already queued
(and claimed). ``--ticks deployment`` keeps ticks on the tick deployment. Why a worker and not task workers or served
deployments: docs/architecture.md ("Warm workers").
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from typing import Any, Optional

import anyio
from prefect.workers.base import BaseWorker, BaseWorkerResult
from prefect.workers.process import ProcessJobConfiguration, ProcessVariables

logger = logging.getLogger(__name__)


class WarmWorkerResult(BaseWorkerResult):
    """How an in-process flow run ended (0: the engine ran it, whatever its final state)."""


def flow_of(entrypoint: str):
    """The huntflow flow a deployment's entrypoint names (``huntflow/flows/x.py:name``, from any
    checkout, or ``huntflow.flows.x:name``), imported once per process: only huntflow's own
    flows run in-process, and always from the huntflow this worker imported."""
    path, _, attr = entrypoint.partition(":")
    if path.endswith(".py"):
        parts = path.removesuffix(".py").replace("\\", "/").split("/")
        module = ".".join(parts[parts.index("huntflow"):]) if "huntflow" in parts else ""
    else:
        module = path
    if not module.startswith("huntflow.flows.") or not attr:
        raise ValueError(f"a warm worker runs huntflow's flows only, not {entrypoint!r}")
    return getattr(importlib.import_module(module), attr)


def run_in_process(flow_run: Any, entrypoint: str) -> int:
    """Run one flow run to its final state with Prefect's flow engine, in this thread."""
    from prefect.flow_engine import run_flow

    from huntflow.flows.tick import no_heartbeats

    from prefect.exceptions import Abort

    flow = flow_of(entrypoint)
    try:
        with no_heartbeats():  # huntflow's heartbeat_at detects lost generations; Prefect's thread only costs a join
            run_flow(flow, flow_run=flow_run, return_type="state")
    except Abort as e:  # the orchestrator refused to start it (e.g. cancelled while queued): nothing ran
        logger.info("flow run %s not started: %s", flow_run.id, e)
    return 0


class WarmWorker(BaseWorker[ProcessJobConfiguration, ProcessVariables, WarmWorkerResult]):
    """A Prefect worker for ``process`` pools that runs flow runs in its own process."""

    type = "process"  # it serves process pools (same job template), so no type-mismatch warning
    job_configuration = ProcessJobConfiguration
    job_configuration_variables = ProcessVariables
    _description = "Run huntflow flow runs inside this long-lived process (JAX and the device stay warm)."
    _display_name = "huntflow warm"

    @classmethod
    def __dispatch_key__(cls) -> str:
        return "huntflow-warm"  # registered apart from Prefect's ProcessWorker ("process")

    async def run(self, flow_run: Any, configuration: ProcessJobConfiguration,
                  task_status: Optional[anyio.abc.TaskStatus[int]] = None) -> WarmWorkerResult:
        from huntflow.flows.generation import device_gate

        if task_status is not None:
            task_status.started(os.getpid())  # the run's infrastructure is this process
        gate = device_gate()
        start = getattr(flow_run, "expected_start_time", None)
        if gate is not None and start is not None:  # claimed: later runs leave it the device
            gate.expect(flow_run.id, start.timestamp())
        try:
            entrypoint = await self._entrypoint(flow_run)
            if gate is not None and not entrypoint.endswith(":hunt_generation"):
                gate.forget(flow_run.id)  # not a generation: it never comes to the device
            code = await anyio.to_thread.run_sync(run_in_process, flow_run, entrypoint)
        except Exception as e:  # the engine could not even start: the base class marks it crashed
            self._logger.exception("flow run %s could not run in-process: %s", flow_run.id, e)
            code = 1
        finally:
            if gate is not None:
                gate.forget(flow_run.id)
        # free this run's slot and take the next queued run now rather than at the next poll
        # (the base class releases the slot again after run() returns, which is then a no-op)
        self._release_limit_slot(flow_run.id)
        try:
            await self.get_and_submit_flow_runs()
        except Exception as e:
            self._logger.debug("immediate poll after %s failed: %s", flow_run.id, e)
        return WarmWorkerResult(identifier=str(os.getpid()), status_code=code)

    async def _entrypoint(self, flow_run: Any) -> str:
        deployment = await self.client.read_deployment(flow_run.deployment_id)
        return str(deployment.entrypoint)

    async def kill_infrastructure(self, infrastructure_pid: str, configuration: Any, grace_seconds: int = 30) -> None:
        """A queued run cancelled before it started: nothing to kill (the process is this one;
        the engine refuses to start a cancelled run). A running generation cannot be stopped
        mid-batch; its result loses its guarded write and the run ends Cancelled."""


class LocalTicks:
    """Runs campaigns' chained ticks in this process, one tick at a time, coalescing requests
    that arrive while a tick runs into the next one (a flow run ``tick: <slugs>``).

    A requested campaign that another tick still leases (the tick that dispatched the
    generation may not have finished yet) is asked for again every ``retry_seconds`` for up to
    ``patience`` seconds: whichever tick gets the lease next does the work."""

    def __init__(self, retry_seconds: float = 0.5, patience: float = 60.0) -> None:
        self._wanted: dict[str, float] = {}  # campaign id -> monotonic time its request expires
        self._retry: dict[str, float] = {}
        self._cv = threading.Condition()
        self._stopped = False
        self.retry_seconds, self.patience = retry_seconds, patience
        self.ticks = 0
        self._thread = threading.Thread(target=self._loop, name="huntflow-local-ticks", daemon=True)
        self._thread.start()

    def request(self, campaign_id: str) -> bool:
        with self._cv:
            self._wanted[str(campaign_id)] = time.monotonic() + self.patience
            self._retry.pop(str(campaign_id), None)
            self._cv.notify()
        return True

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout)

    def _due(self, now: float) -> list[str]:
        return sorted(c for c in self._wanted if self._retry.get(c, 0.0) <= now)

    def _loop(self) -> None:
        from huntflow.flows.tick import hunt_tick, no_heartbeats

        while True:
            with self._cv:
                while not self._stopped:
                    now = time.monotonic()
                    ids = self._due(now)
                    if ids:
                        break
                    nxt = min(self._retry.values(), default=None) if self._wanted else None
                    self._cv.wait(None if nxt is None else max(0.01, nxt - now))
                if self._stopped:
                    return
                deadline = {c: self._wanted.pop(c) for c in ids}
                for c in ids:
                    self._retry.pop(c, None)
            busy = [c for c in ids if _leased_elsewhere(c)]  # wait for the lease rather than tick in vain
            ids = [c for c in ids if c not in busy]
            advanced: set[str] = set()
            if ids:
                try:
                    with no_heartbeats():
                        advanced = set((hunt_tick(campaign_ids=ids) or {}).get("campaigns") or {})
                except Exception as e:  # the schedule is the safety net; the next request tries again
                    logger.warning("local tick of %s failed: %s: %s", ", ".join(ids), type(e).__name__, e)
                finally:
                    self.ticks += 1
            again = busy + [c for c in ids if c not in advanced and _leased_elsewhere(c)]
            self._again([c for c in again if deadline[c] > time.monotonic()], deadline)

    def _again(self, ids: list[str], deadline: dict[str, float]) -> None:
        with self._cv:
            for c in ids:
                if c in self._wanted:
                    continue  # requested anew meanwhile: due at once
                self._wanted[c] = deadline[c]
                self._retry[c] = time.monotonic() + self.retry_seconds
            self._cv.notify()


def _leased_elsewhere(campaign_id: str) -> bool:
    """Whether the campaign is active and another tick holds its lease (so it is worth asking again)."""
    from huntflow.store.connection import session

    try:
        with session() as conn:
            row = conn.execute("select status, lease_owner, lease_expires_at > now() as held from hunt.campaigns"
                               " where campaign_id = %s", (campaign_id,)).fetchone()
    except Exception:
        return False
    return bool(row) and row["status"] == "active" and bool(row["lease_owner"]) and bool(row["held"])


def pool_env(pool: str) -> dict[str, str]:
    """The pool's default job environment (XLA memory settings, ``HUNTFLOW_OPERATOR``): a warm
    worker applies the variables its own environment does not set, before JAX starts."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            template = client.read_work_pool(pool).base_job_template
        env = template["variables"]["properties"]["env"].get("default") or {}
    except Exception:
        return {}
    return {str(k): str(v) for k, v in env.items() if v is not None}


def preload_engine() -> None:
    """Import JAX and the models and start JAX's backend (CUDA on a GPU host)."""
    import huntflow.engine.evaluate  # noqa: F401  (the models; sets the CPU device count first)
    import jax

    jax.devices()
    import huntflow.tasks.warmup  # noqa: F401


def preload() -> None:
    """Import what generations and ticks use (JAX, the models, the optimizers) and start JAX's
    backend (CUDA on a GPU host) before the first run, so that no generation or tick pays for it."""
    preload_engine()
    import huntflow.flows.generation  # noqa: F401
    import huntflow.flows.tick  # noqa: F401  (the stages, the store)
    from huntflow.engine.optimize import backends  # noqa: F401

    for module in PRELOADED:  # what the stages import on first use (nevergrad: ~5 s idle, 14 s loaded)
        importlib.import_module(module)
    warm_optimizer()


def warm_optimizer() -> bool:
    """One throw-away NGOpt ask, tell and ask on a small search, so that the optimizer's first
    use in this process (its lazy imports and registries: ~3 s on a loaded machine) is paid here
    and not by the first evolve after a generation. Never fails the worker's start (False: skipped)."""
    from huntflow.engine.optimize.hunt import Hunt, Outcome
    from huntflow.engine.spec import parse_spec

    try:
        spec = parse_spec({"slug": "warm-up", "model": {"name": "sphere"},
                           "space": {f"x{i}": {"low": -1.0, "high": 1.0} for i in range(4)},
                           "objectives": [{"metric": "f", "goal": "minimize"}], "budget": {"evaluations": 32},
                           "optimizer": {"name": "ngopt", "population": 8}, "review": {"spot_check_top": 0}})
        hunt = Hunt.start(spec)
        ask = hunt.ask()
        hunt.tell(ask.ask_id, [Outcome("ok", {"f": float(i)}) for i, _ in enumerate(ask.candidates)])
        return hunt.ask() is not None
    except Exception as e:
        logger.warning("optimizer warm-up skipped: %s: %s", type(e).__name__, e)
        return False


PRELOADED = ("nevergrad", "nevergrad.optimization.optimizerlib", "nevergrad.optimization.metamodel",
             "sklearn.linear_model", "scipy.optimize")
"""Modules the tick's stages import lazily (evolve's optimizers, NGOpt's metamodel), imported by
:func:`preload` so that the first tick after a generation does not pay for them."""


class _ThreadTimeoutNotice(logging.Filter):
    """Drops Prefect's per-task notice that a timeout cannot interrupt a task run in a thread:
    in a warm worker every run is in a thread (docs/architecture.md, "Warm workers")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is running in a worker thread" not in record.getMessage()


def serves_generations(pool: str) -> bool:
    """Whether ``pool`` is the generation deployment's pool (a worker serving only ticks has
    nothing to compile); True when the deployment cannot be read (warm rather than not)."""
    from prefect.client.orchestration import get_client

    from huntflow.config import get_settings

    try:
        with get_client(sync_client=True) as client:
            return client.read_deployment_by_name(get_settings().generation_deployment).work_pool_name == pool
    except Exception:
        return True


def start_warm_up(every: float = 2.0) -> tuple[threading.Thread, threading.Event]:
    """A daemon thread that compiles each new pool campaign's first executable
    (:class:`huntflow.tasks.warmup.CampaignWarmer`, a look every ``every`` seconds) until the
    returned event is set."""
    from huntflow.tasks.warmup import CampaignWarmer

    def report(got: dict[str, Any]) -> None:  # one line per campaign in the worker's output
        what = f"compiled in {got['seconds']:.1f} s" if "seconds" in got else f"skipped ({got.get('error')})"
        about = f"campaign {got['slug']}" if "slug" in got else f"generation {got.get('generation_id')}"
        print(f"{time.strftime('%H:%M:%S')} warm-up of {about}: {what}", flush=True)

    stop = threading.Event()
    thread = threading.Thread(target=CampaignWarmer(every, report).run, args=(stop,), name="huntflow-warm-up",
                              daemon=True)
    thread.start()
    return thread, stop


def serve(pool: str, *, limit: int = 1, poll_seconds: float = 0.5, ticks: str = "local",
          name: str | None = None, run_once: bool = False, prefetch: int = 1, warm_up: bool = True) -> None:
    """Start a warm worker on ``pool`` and run until interrupted (``run_once``: one poll, then
    wait for what it started and return, as ``prefect worker start --run-once``). ``limit``
    generations evaluate at once (device slots); ``prefetch`` more runs are claimed and started
    ahead, each waiting for a slot. ``warm_up``: compile the pool campaigns' first executables
    as they appear (:func:`start_warm_up`; on the generation deployment's pool only), starting
    while the rest is still imported."""
    from prefect.settings import temporary_settings

    from huntflow.flows import generation, heap

    for key, value in pool_env(pool).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HUNTFLOW_OPERATOR", "pool")
    preload_engine()
    warming = start_warm_up() if warm_up and serves_generations(pool) else None
    preload()
    heap.settle()  # what the worker keeps for its lifetime is loaded: the collector stops walking it
    logging.getLogger("prefect.task_runs").addFilter(_ThreadTimeoutNotice())
    local = LocalTicks() if ticks == "local" else None
    if local is not None:
        generation.use_local_ticks(local.request)
    generation.use_device_slots(limit)
    try:
        with temporary_settings(updates={"worker.query_seconds": poll_seconds}):
            worker = WarmWorker(work_pool_name=pool, limit=limit + max(0, prefetch), name=name,
                                create_pool_if_not_found=False)
            anyio.run(lambda: worker.start(run_once=run_once))
    finally:
        generation.use_device_slots(None)
        if warming is not None:
            warming[1].set()
        if local is not None:
            generation.use_local_ticks(None)
            local.stop()
