"""The ``hunt-tick`` flow (deployment ``hunt-tick/every-5-minutes``).

discover claims a cohort; then, for each campaign, dispatch → parse → review → evolve → learn,
each a retrying Prefect task that writes its ``hunt.stage_runs`` row; when a promotion or
certification waits for its launch after evolve, review and dispatch run a second pass before
learn (:func:`_promotion_pass`: it starts in the tick that asked it). A stage that fails after
its retries skips the campaign's remaining stages for this tick (recorded as ``skipped``); the
next tick carries on from the database. The lease is released at the end either way (best
effort: during an outage it lapses by itself). A :class:`~huntflow.store.leases.Heartbeat`
renews the tick's leases while it runs; a stage that finds its lease lost ends the campaign's
tick at once. A campaign that fails tick after tick is failed (:mod:`huntflow.tasks.poison`). When learn
completes a campaign, the tick writes its report (:func:`completion_report`) after learn's row is
closed, so the report's stage health sees every stage of the last tick finished.

An inline generation runs as a plain call inside dispatch (no subflow per generation: a flow
run costs about a second of API round trips and heartbeat join). :func:`run_tick` is the
tick's body, so ``tick --until-done`` and the demo run many ticks inside one flow run (each
stage a task run of it). :func:`no_heartbeats` switches off Prefect's flow-run heartbeat thread
for in-process runs, whose exit otherwise waits up to 2 s joining it. Claimed campaigns are
advanced concurrently (:func:`tick_concurrency` threads; each keeps its lease and its own
stage order), so a tick of many campaigns takes about as long as its slowest few.

What a person sees in the Prefect UI: the run is named after the campaigns it advanced
(``tick: slug-a, slug-b``; a loop of ticks: all it advanced), each stage's task run after its
stage and campaign (``evolve · slug-a``); after each campaign the tick emits the events its
stages caused (:mod:`huntflow.flows.events`) and queues the update of the campaign's artifacts
(:mod:`huntflow.flows.artifacts`, published by a background thread, as is the run's name; the
flow waits for them at its end), including the batch table of an inline generation.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

from prefect import flow, get_run_logger

from huntflow.config import get_settings
from huntflow.flows import artifacts, events, task_runs
from huntflow.flows.generation import trigger_tick
from huntflow.store import leases, verifications
from huntflow.store.connection import database_url, session
from huntflow.store.states import Stage
from huntflow.tasks._stage import TickContext, end_campaign, skip_stage
from huntflow.tasks.discover import discover
from huntflow.tasks.dispatch import dispatch
from huntflow.tasks.evolve import evolve
from huntflow.tasks.inline import executor_of
from huntflow.tasks.learn import learn
from huntflow.tasks.parse import parse
from huntflow.tasks.poison import account
from huntflow.tasks.report import write_report
from huntflow.tasks.review import cleared_any, review


@contextlib.contextmanager
def no_heartbeats() -> Iterator[None]:
    """Flow runs started inside send no flow-run heartbeats (huntflow detects lost generations
    by its own ``heartbeat_at``; Prefect's thread only costs a join of up to 2 s per flow run)."""
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


def _named(stage_task, slug: str):
    """A call of the stage's task run, named ``<stage> · <slug>`` in the UI, returning its
    final state (:func:`_run`).

    In a worker thread (:func:`tick_concurrency` > 1) Prefect's task timeout cannot interrupt a
    blocking call (it injects its error only once the call returns, after the stage's writes),
    so there the tick's heartbeat enforces the stage's ``timeout_seconds`` instead
    (:meth:`~huntflow.store.leases.Heartbeat.limit`: past it the campaign's lease is given up
    and the stage's next write refused). On the main thread Prefect's own timeout applies.
    """
    limit = stage_task.timeout_seconds
    if limit is None or threading.current_thread() is threading.main_thread():
        return functools.partial(_run, _with_options(stage_task, slug, False))
    unbounded = _with_options(stage_task, slug, True)

    def call(ctx: TickContext, campaign_id: UUID, **kwargs: Any):
        beat = leases.heartbeat_of(ctx.owner)
        if beat is None:  # no tick heartbeat to enforce it: Prefect's timeout, as on the main thread
            return _run(_with_options(stage_task, slug, False), ctx, campaign_id, **kwargs)
        with beat.limit(campaign_id, limit, stage_task.name):
            return _run(unbounded, ctx, campaign_id, **kwargs)

    return call


def _run(stage_task, ctx: TickContext, campaign_id: UUID, **kwargs: Any):
    """The stage's task run (:func:`task_runs.run`: no ``Pending`` event); its final state."""
    return task_runs.run(stage_task, ctx=ctx, campaign_id=campaign_id, **kwargs)


@functools.lru_cache(maxsize=8192)
def _with_options(stage_task, slug: str, unbounded: bool):
    """``stage_task`` named for ``slug`` (``unbounded``: without Prefect's timeout), built once
    per process: ``Task.with_options`` copies the task (~1 ms), and a task is reusable."""
    if unbounded:  # timeout 0: none
        return stage_task.with_options(task_run_name=f"{stage_task.name} · {slug}", timeout_seconds=0)
    return stage_task.with_options(task_run_name=f"{stage_task.name} · {slug}")


def _outcome(state) -> Any:
    """A finished task run's return value (or its exception), read from the state in hand:
    ``State.result()`` in a sync caller runs a coroutine on Prefect's loop thread (a thread hop
    of several ms per stage) for what the state already holds."""
    from prefect.results import ResultRecord

    data = state.data
    if isinstance(data, ResultRecord):
        return data.result
    return state.result(raise_on_failure=False)


PROMOTION_PASS = {Stage.REVIEW: "review_promotions", Stage.DISPATCH: "dispatch_promotions"}
"""The promotion pass's keys in a campaign's tick result (its rows: ``pass`` 2)."""


def _campaign_stages(ctx: TickContext, campaign_id: UUID, slug: str = "") -> dict[str, Any]:
    """dispatch → parse → review → evolve → learn, each a task run; after evolve, when a promotion
    waits for launch, the promotion pass (:func:`_promotion_pass`) before learn."""
    steps: list[tuple[Stage, int, Any]] = [
        (Stage.DISPATCH, 1, lambda: _named(dispatch, slug)(ctx, campaign_id)),
        (Stage.PARSE, 1, lambda: _named(parse, slug)(ctx, campaign_id)),
        (Stage.REVIEW, 1, lambda: _named(review, slug)(ctx, campaign_id)),
        (Stage.EVOLVE, 1, lambda: _named(evolve, slug)(ctx, campaign_id)),
        (Stage.LEARN, 1, lambda: _named(learn, slug)(ctx, campaign_id)),
    ]
    out: dict[str, Any] = {}
    i = 0
    while i < len(steps):
        stage, pass_, call = steps[i]
        key = stage.value if pass_ == 1 else PROMOTION_PASS[stage]
        state = call()
        result = _outcome(state)
        if state.is_failed() or (isinstance(result, dict) and "lease_lost" in result):
            failed = state.is_failed()
            out[key] = {"failed": str(state.message)} if failed else result
            for later, later_pass, _ in steps[i + 1:]:
                skip_stage(later, ctx, campaign_id, f"{stage.value} failed" if failed else result["lease_lost"],
                           pass_=later_pass)
                out[later.value if later_pass == 1 else PROMOTION_PASS[later]] = "skipped"
            if failed:
                out["poison"] = account(ctx.owner, campaign_id, stage.value, result, str(state.message))
            return out
        out[key] = result
        steps[i + 1:i + 1] = _promotion_pass(ctx, campaign_id, slug, stage, pass_, out)
        i += 1
    out["poison"] = account(ctx.owner, campaign_id, None, None)
    return out


def _promotion_pass(ctx: TickContext, campaign_id: UUID, slug: str, stage: Stage, pass_: int,
                    out: dict[str, Any]) -> list[tuple[Stage, int, Any]]:
    """The steps to run next after ``stage``: review and dispatch again (pass 2) when a promotion
    or certification waits for its launch, so it starts in this tick, not two ticks later.

    A promotion evolve plans is held by dispatch until review has verified what it promotes
    (:func:`huntflow.tasks.review.review_promotion`), and both ran before evolve in this tick:
    without this pass the next tick's review clears it and the tick after that launches it (on
    the loop's executor a whole tick of idle device, and two on a pool). After evolve planned
    one, review's promotion pass verifies it (or queues its parents' verification batches, ahead
    of the executor's queue); when that, or this tick's first review, cleared one, dispatch's
    pass launches it (waiting for nothing: nothing parses after it). Each is a task run of its
    own with a ``hunt.stage_runs`` row of its own (``pass`` 2); the adversarial order holds
    (review clears before dispatch launches), and what runs is what the rows say, so the same
    generations with the same seeds run whichever tick launches them."""
    again_review = (Stage.REVIEW, 2, lambda: _named(review, slug)(ctx, campaign_id, promotion_pass=True))
    again_dispatch = (Stage.DISPATCH, 2, lambda: _named(dispatch, slug)(ctx, campaign_id, promotion_pass=True))
    cleared = cleared_any(out.get(Stage.REVIEW.value)) or cleared_any(out.get(PROMOTION_PASS[Stage.REVIEW]))
    if (stage, pass_) == (Stage.EVOLVE, 1):
        planned = (out.get(Stage.EVOLVE.value) or {}).get("planned")
        if isinstance(planned, list) and any(p.get("kind") in verifications.PROMOTED for p in planned):
            return [again_review]
        return [again_dispatch] if cleared else []  # launch what the first review cleared
    if (stage, pass_) == (Stage.REVIEW, 2) and cleared:
        return [again_dispatch]
    return []


def _dispatched(out: dict[str, Any]) -> Any:
    """Both dispatch passes' launches and what the first one handed back (the batch tables)."""
    first, again = out.get(Stage.DISPATCH.value), out.get(PROMOTION_PASS[Stage.DISPATCH])
    if not isinstance(again, dict) or not isinstance(first, dict):
        return first
    return {**first, "launched": [*(first.get("launched") or []), *(again.get("launched") or [])]}


def completion_report(campaign_id: UUID) -> str | None:
    """Write a just-completed campaign's report (``$HUNTFLOW_DATA_DIR/reports/<slug>``, without
    the plots, which are ``huntflow report``'s). A report is never a reason to fail the tick: an
    error is logged and ``huntflow report`` writes it later. Returns the report's directory."""
    try:
        with session() as conn:
            return write_report(conn, campaign_id, plots=False)["files"]["dir"]
    except Exception as e:
        logging.getLogger(__name__).warning("report of campaign %s not written: %s: %s", campaign_id, type(e).__name__, e)
        return None


def _follow_up(ctx: TickContext, campaign_id: UUID) -> bool:
    """On pools, start the campaign's next tick at once if work is waiting for one.

    Waiting work is a generation evolve just planned (dispatch runs in the next tick) or one
    that finished after this tick's parse. Inline campaigns advance by ticking back to back.
    Inside :func:`hunt_tick` a pool campaign's next tick runs in the same flow run (``_CHAIN``);
    otherwise (and for slurm and manual campaigns) it is a new run of the tick deployment.
    """
    if ctx.operator == "inline" or not get_settings().chain_ticks:
        return False
    with session() as conn:
        waiting = conn.execute(
            "select count(*) as n from hunt.generations g join hunt.campaigns c using (campaign_id)"
            " where g.campaign_id = %s and c.status = 'active' and g.status in ('planned', 'succeeded')",
            (campaign_id,),
        ).fetchone()["n"]
    if not waiting:
        return False
    chain = _CHAIN.get()
    if chain is not None and ctx.operator == "pool":  # inside hunt_tick: the next tick runs in this run, at once
        chain.add(str(campaign_id))
        return True
    return trigger_tick(str(campaign_id))


_CHAIN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("huntflow_tick_chain", default=None)
CHAINED_TICKS = 4
"""Follow-up ticks :func:`hunt_tick` runs in its own flow run (each with its own tick id and
stage rows) before it hands the rest to a new run of the tick deployment."""


def _slugs(campaign_ids: list[UUID]) -> dict[UUID, str]:
    if not campaign_ids:
        return {}
    with session() as conn:
        rows = conn.execute("select campaign_id, slug from hunt.campaigns where campaign_id = any(%s)",
                            (list(campaign_ids),)).fetchall()
    return {r["campaign_id"]: r["slug"] for r in rows}


def _names(slugs: list[str]) -> str:
    return ", ".join(slugs[:4]) + (f" +{len(slugs) - 4}" if len(slugs) > 4 else "")


def tick_run_name() -> str:
    """``tick: <slugs>`` for a campaign's own tick, ``tick: all active`` for the schedule's
    (renamed to the campaigns it advanced once discover has claimed them)."""
    try:
        from prefect.runtime import flow_run

        ids = (flow_run.parameters or {}).get("campaign_ids")
        if ids:
            return "tick: " + _names(sorted(_slugs([UUID(str(c)) for c in ids]).values()) or ["?"])
    except Exception:  # a name is never a reason to fail the run
        pass
    return "tick: all active"


def _snapshots(campaign_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    """:func:`events.snapshots` (empty when they cannot be read: events are never a reason to fail)."""
    if not campaign_ids:
        return {}
    try:
        with session() as conn:
            return events.snapshots(conn, campaign_ids)
    except Exception as e:
        logging.getLogger(__name__).warning("events of campaigns %s not read: %s", _names([str(c) for c in campaign_ids]), e)
        return {}


_NAMED: dict[str, list[str]] = {}
"""Flow run id -> the campaigns (slugs) this process named it after, in the order first advanced."""


def _rename(slugs: list[str]) -> None:
    """Name the flow run this tick runs in after every campaign it advanced (``tick
    --until-done``: its one run, whichever campaigns its ticks took), when that adds one. The
    write goes to the API off the tick's path (:func:`artifacts.later`; the run waits for it at
    its end, with its artifacts)."""
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception as e:  # a name is never a reason to fail the tick
        logging.getLogger(__name__).debug("tick run not renamed: %s", e)
        return
    if not run_id:
        return
    named = _NAMED.setdefault(run_id, [])
    new = [s for s in slugs if s not in named]
    if not new:
        return
    named.extend(new)
    artifacts.later(functools.partial(_set_name, run_id, "tick: " + _names(named)), key=("run-name", run_id))


def _set_name(run_id: str, name: str) -> None:
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=name)
    except Exception as e:
        logging.getLogger(__name__).debug("tick run not renamed: %s", e)


@flow(name="hunt-tick", log_prints=True, flow_run_name=tick_run_name)
def hunt_tick(campaign_ids: list[str] | None = None) -> dict[str, Any]:
    """Advance every claimed campaign one step through the six stages.

    A pool campaign whose tick left work for the next one (a generation evolve just planned)
    is ticked again at once in this run, up to :data:`CHAINED_TICKS` times, instead of in a new
    flow run (a new process on a process worker: 10-60 s); what is still waiting after that is
    handed to the tick deployment (:func:`trigger_tick`)."""
    wanted: set[str] = set()
    token = _CHAIN.set(wanted)
    try:
        out = run_tick(campaign_ids)
        advanced = dict(out.get("campaigns") or {})
        for _ in range(CHAINED_TICKS):
            if not wanted:
                break
            ids = sorted(wanted)
            wanted.clear()
            again = run_tick(ids)
            advanced.update(again.get("campaigns") or {})
            out.setdefault("chained", []).append(again["tick_id"])
    finally:
        _CHAIN.reset(token)
        artifacts.flush()  # the run ends with its artifacts published
    for campaign_id in sorted(wanted):
        trigger_tick(campaign_id)
    return {**out, "campaigns": advanced}


def run_tick(campaign_ids: list[str] | None = None, beat: leases.Heartbeat | None = None) -> dict[str, Any]:
    """One tick's body (:func:`hunt_tick`): callable inside any flow run, whose task runs its
    stages then become.

    ``beat``: the heartbeat of a loop that keeps one lease owner across its ticks
    (:func:`huntflow.flows.cli.run.run_ticks`); its campaigns with a generation on the loop's
    executor (:mod:`huntflow.tasks.inline`) keep their lease between ticks. Without it the
    tick has its own (owner ``tick:<tick id>``), closed at its end."""
    tick_id = uuid4()
    only = [UUID(c) for c in campaign_ids] if campaign_ids else None
    with contextlib.nullcontext(beat) if beat is not None else leases.Heartbeat(database_url(), f"tick:{tick_id}") as beat:
        ctx = TickContext(tick_id=tick_id, owner=beat.owner, lease_seconds=beat.lease_seconds,
                          guarded=True, session_pid=beat.pid, chained=True)
        claimed = _claim(ctx, only)
        beat.hold(claimed)
        results = _advance(ctx, beat, claimed)
    try:
        logger = get_run_logger()
    except Exception:  # outside a flow run
        logger = logging.getLogger(__name__)
    logger.info("tick %s: %d campaign(s) advanced", tick_id, len(claimed))
    return {"tick_id": str(tick_id), "campaigns": results}


def _claim(ctx: TickContext, only: list[UUID] | None) -> list[UUID]:
    """discover's task run (:func:`task_runs.run`); its result, or its error raised."""
    state = task_runs.run(discover, ctx=ctx, only=only)
    return _outcome(state) if state.is_completed() else state.result()  # raises its error


def tick_concurrency() -> int:
    """Campaigns a tick advances at once (``HUNTFLOW_TICK_CONCURRENCY``, default 4): their
    stages wait mostly on the database and the API, so threads overlap them. Each campaign holds
    at most two pooled connections at a time, so keep ``HUNTFLOW_DB_POOL_SIZE`` above twice this."""
    return max(1, int(os.environ.get("HUNTFLOW_TICK_CONCURRENCY", "4")))


def _advance(ctx: TickContext, beat: leases.Heartbeat, claimed: list[UUID]) -> dict[str, Any]:
    before = _snapshots(claimed)  # the whole cohort's "before" in one read, slugs included
    slugs = {c: s["slug"] for c, s in before.items() if s.get("slug")}
    if len(slugs) < len(claimed):  # the snapshots could not be read
        slugs = _slugs(claimed)
    if claimed:
        _rename([slugs[c] for c in claimed if c in slugs])
    workers = min(len(claimed), tick_concurrency())
    if workers <= 1:
        return {str(c): _advance_one(ctx, beat, c, slugs.get(c, str(c)), before.get(c, {})) for c in claimed}
    # independent campaigns side by side; each thread sees this flow run's context
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hunt-tick") as pool:
        futures = {c: pool.submit(contextvars.copy_context().run, _advance_one, ctx, beat, c, slugs.get(c, str(c)),
                                  before.get(c, {}))
                   for c in claimed}
    results: dict[str, Any] = {}
    errors = []
    for campaign_id, future in futures.items():
        try:
            results[str(campaign_id)] = future.result()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]
    return results


def _advance_one(ctx: TickContext, beat: leases.Heartbeat, campaign_id: UUID, slug: str,
                 before: dict[str, Any]) -> dict[str, Any]:
    """One campaign's stages, its lease released after them, then its report, events, artifacts
    and follow-up (``before``: its :func:`events.snapshot` from before the tick's stages)."""
    try:
        out = _campaign_stages(ctx, campaign_id, slug)
    finally:
        running = executor_of(ctx.owner)
        release = running is None or not running.busy(campaign_id) or beat.lost(campaign_id)
        # else: a generation of it computes on the loop's executor; the loop keeps the lease
        if release:
            beat.release(campaign_id)
        # the stage row left for a next opening (learn's, or an earlier one's when the stages
        # ended early) closed and the lease dropped in one statement; never raises
        end_campaign(ctx, campaign_id, release=release)
    learned = out.get(Stage.LEARN.value)
    if isinstance(learned, dict) and learned.get("completed"):
        out["report"] = completion_report(campaign_id)
    out["events"] = events.emit_changes(before, _snapshots([campaign_id]).get(campaign_id, {}))
    out["artifacts"] = artifacts.publish_later(slug, campaign_id, _dispatched(out))  # queued
    out["follow_up"] = _follow_up(ctx, campaign_id)
    return out

