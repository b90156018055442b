"""Compile a generation's executable before the generation needs it (a warm worker's warm-ups).

A JAX generation's first call in a process compiles its executable (CGL at grid 64: 16–25 s of
XLA on this machine, whatever the step count; a persistent-cache hit loads it in ~0.4 s). A
warm worker (:mod:`huntflow.flows.warm`) calls these so that no generation waits for it:

* :func:`warm_campaign` — a campaign's first generations (its first rung at the optimizer's
  population, what the first search generation evaluates), for the active campaigns whose
  generations go to a pool (:func:`pool_campaigns`) as soon as the worker sees them, while the
  campaign's first tick is still planning;
* :func:`prepare_generation` — one planned/dispatched generation's exact batch (its rung, its
  verification settings, its size), for a claimed run waiting while another one evaluates, and
  for every queued pool generation the worker's look finds (:func:`queued_pool_generations`).

and for the loop of ``tick --until-done`` (:class:`LoopWarmer`, started by the loop's executor):
every batch shape a campaign's plan will need (:func:`campaign_shapes`: its verification
batches, the budget's remainder batch, its promotions), compiled behind the running generations.

All only compile (:func:`huntflow.engine.evaluate.compile_population`): nothing is evaluated,
nothing is written, and a failure is logged and returned, never raised (the generation then
compiles, or fails, as it would have).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg

from huntflow.engine.evaluate import compile_population
from huntflow.store import campaigns, generations
from huntflow.store.connection import session
from huntflow.tasks.execute import batch_inputs

_log = logging.getLogger(__name__)


def _compile(spec: Any, model: dict[str, Any], settings: dict[str, Any], population: int) -> float:
    return compile_population(model, tuple(spec.param_names), population, fixed=dict(model.get("fixed") or {}),
                              fidelity=settings, dtype=spec.dtype)


def warm_campaign(spec: Any) -> dict[str, Any]:
    """Compile the executable of the campaign's first search generations (rung 0, the
    optimizer's population or the budget if smaller). Returns ``{"slug", "seconds"}`` (0: it
    was compiled already, or the model is external), or ``{"slug", "error"}``."""
    try:
        population = max(1, min(int(spec.optimizer.population), int(spec.budget.evaluations)))
        model = spec.model.model_dump(mode="json", exclude_none=True)
        seconds = _compile(spec, model, dict(spec.fidelities[0].settings), population)
        return {"slug": spec.slug, "seconds": round(seconds, 3)}
    except Exception as e:
        _log.warning("warm-up of campaign %s skipped: %s: %s", getattr(spec, "slug", "?"), type(e).__name__, e)
        return {"slug": getattr(spec, "slug", None), "error": f"{type(e).__name__}: {e}"}


def prepare_generation(generation_id: UUID | str) -> dict[str, Any]:
    """Compile the executable this generation will evaluate with (its model block, rung or
    verification settings and candidate count, as :func:`huntflow.tasks.execute.execute_generation`
    runs it). Returns ``{"generation_id", "seconds"}`` or ``{"generation_id", "error"}``."""
    gid = str(generation_id)
    try:
        with session() as conn:
            gen = generations.get(conn, UUID(gid))
            spec = campaigns.spec_of(campaigns.get_campaign(conn, gen["campaign_id"]))
            count = conn.execute("select count(*) as n from hunt.evaluations where generation_id = %s",
                                 (gen["generation_id"],)).fetchone()["n"]
        model, settings, _ = batch_inputs(spec, gen, [])
        return {"generation_id": gid, "seconds": round(_compile(spec, model, settings, int(count)), 3)}
    except Exception as e:
        _log.warning("warm-up of generation %s skipped: %s: %s", gid, type(e).__name__, e)
        return {"generation_id": gid, "error": f"{type(e).__name__}: {e}"}


def pool_campaigns(conn: psycopg.Connection) -> list[tuple[UUID, Any]]:
    """``(campaign id, spec)`` of the active campaigns whose generations go to a pool: those
    whose newest generation is a pool generation, and those with none yet (a new campaign may
    be the pool's; warming one that is not costs a compile, never a result)."""
    rows = conn.execute(
        "select c.campaign_id, c.spec from hunt.campaigns c where c.status = 'active' and coalesce("
        " (select g.operator from hunt.generations g where g.campaign_id = c.campaign_id"
        "  order by g.generation_index desc limit 1), 'pool') = 'pool' order by c.created_at").fetchall()
    return [(r["campaign_id"], campaigns.spec_of(r)) for r in rows]


def queued_pool_generations(conn: psycopg.Connection, limit: int = 32) -> list[UUID]:
    """The active campaigns' pool generations planned or dispatched but not running yet, oldest first."""
    rows = conn.execute(
        "select g.generation_id from hunt.generations g join hunt.campaigns c using (campaign_id)"
        " where c.status = 'active' and g.operator = 'pool' and g.status in ('planned', 'dispatched')"
        " order by g.created_at limit %s", (limit,)).fetchall()
    return [r["generation_id"] for r in rows]


class CampaignWarmer:
    """Warms each new pool campaign once (:func:`warm_campaign`) and each queued pool generation
    once (:func:`prepare_generation`: a promotion planned while the device is idle, a worker
    restarted mid-hunt), looking every ``every`` seconds (:meth:`scan` does one look; :meth:`run`
    loops until ``stop`` is set)."""

    def __init__(self, every: float = 2.0, report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.every = every
        self.report = report
        self.warmed: dict[str, dict[str, Any]] = {}
        self.prepared: dict[str, dict[str, Any]] = {}

    def scan(self) -> list[dict[str, Any]]:
        """Warm the pool campaigns and queued generations not warmed yet; returns what this look did."""
        try:
            with session() as conn:
                found = pool_campaigns(conn)
                queued = queued_pool_generations(conn)
        except Exception as e:
            _log.debug("pool campaigns not read: %s", e)
            return []
        done = []
        for cid, spec in found:
            if str(cid) in self.warmed:
                continue
            got = warm_campaign(spec)
            self.warmed[str(cid)] = got
            done.append(got)
            if self.report is not None:
                self.report(got)
        for gid in queued:
            if str(gid) in self.prepared:
                continue
            if len(self.prepared) > 4096:
                self.prepared.clear()
            got = prepare_generation(gid)
            self.prepared[str(gid)] = got
            done.append(got)
            if self.report is not None and got.get("seconds", 1.0) > 0:
                self.report(got)
        return done

    def run(self, stop: Any) -> None:
        while not stop.is_set():
            self.scan()
            stop.wait(self.every)


def campaign_shapes(spec: Any) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
    """``(model block, fidelity settings, rows)`` of every batch the campaign's plan will evaluate,
    in the order the hunt needs them after its first generation: each rung's verification batches
    (one per perturbation review runs, ``review.spot_check_top`` rows: parent checks of a
    promotion have that shape too), the search's remainder batch (budget not a multiple of the
    population), each promotion at its rung with its K, then the first search batch (compiled by
    then, normally). A budget extended later, or a promotion with fewer distinct candidates than
    its K, makes a shape this does not know: it compiles when it runs, as before."""
    from huntflow.engine import verify
    from huntflow.engine.optimize.ladder import plan_ladder

    model = spec.model.model_dump(mode="json", exclude_none=True)
    population = max(1, int(spec.optimizer.population))
    stages = plan_ladder(int(spec.budget.evaluations), [f.budget for f in spec.fidelities],
                         [f.promote_top_k for f in spec.fidelities])
    out: list[tuple[dict[str, Any], dict[str, Any], int]] = []
    first: list[tuple[dict[str, Any], dict[str, Any], int]] = []

    def checks(rung: int) -> None:
        rows = int(spec.review.spot_check_top)
        if rows < 1:
            return
        settings = dict(spec.fidelities[rung].settings)
        for p in verify.chosen(spec, rung):
            out.append(({**model, "fixed": {**dict(spec.model.fixed), **dict(p.fixed)}},
                        {**settings, **dict(p.fidelity)}, rows))

    for stage in stages:
        settings = dict(spec.fidelities[stage.rung].settings)
        if stage.kind == "search":
            first.append((model, settings, min(population, stage.count)))
            checks(stage.rung)
            if stage.count > population and stage.count % population:
                out.append((model, settings, stage.count % population))
        else:
            out.append((model, dict(spec.fidelities[stage.rung + 1].settings), int(stage.count)))
            checks(stage.rung + 1)
    seen, ordered = set(), []
    for shape in out + first:
        key = repr(shape)
        if key not in seen:
            seen.add(key)
            ordered.append(shape)
    return ordered


class LoopWarmer:
    """Compiles ahead, behind the running generations, the batches a loop's campaigns will
    need (:func:`campaign_shapes`), once per campaign, on one thread of low CPU priority (the
    loop's executor: :mod:`huntflow.tasks.inline`). The generations never wait for it: one that
    needs an executable this thread is compiling waits for that compile only (it would have
    compiled it itself), any other compiles as before. Failures are logged, never raised."""

    NICE = 10

    def __init__(self) -> None:
        self._todo: list[UUID] = []
        self._seen: set[UUID] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.compiled: list[dict[str, Any]] = []

    def see(self, campaign_id: UUID) -> None:
        """A generation of ``campaign_id`` went to the executor: warm the campaign (once)."""
        with self._cond:
            if campaign_id in self._seen:
                return
            self._seen.add(campaign_id)
            self._todo.append(campaign_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inline compile-ahead", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        """Start no further compile."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def close(self) -> None:
        """:meth:`stop`, and wait for the compile running now, if any: an XLA compile cannot be
        interrupted, and a process that exits under one aborts in XLA's C++ (measured:
        "terminate called ..."), so the loop's end waits for it (at most one compile)."""
        self.stop()
        with self._cond:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._todo or self._stop)
                if self._stop:
                    return
                cid = self._todo.pop(0)
            try:
                with session() as conn:
                    spec = campaigns.spec_of(campaigns.get_campaign(conn, cid))
                shapes = campaign_shapes(spec)
            except Exception as e:
                _log.warning("compile-ahead of campaign %s skipped: %s: %s", cid, type(e).__name__, e)
                continue
            for model, settings, rows in shapes:
                if self._stop:
                    return
                try:  # a campaign that ended (or was paused) needs no more shapes
                    with session() as conn:
                        if campaigns.get_campaign(conn, cid)["status"] != "active":
                            break
                except Exception:
                    pass
                try:
                    seconds = _compile(spec, model, settings, rows)
                except Exception as e:
                    _log.warning("compile-ahead of %s (%s, %d rows) skipped: %s: %s", spec.slug, settings, rows,
                                 type(e).__name__, e)
                    continue
                self.compiled.append({"slug": spec.slug, "settings": settings, "rows": rows,
                                      "seconds": round(seconds, 3)})
