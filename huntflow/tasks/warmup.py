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

Both only compile (:func:`huntflow.engine.evaluate.compile_population`): nothing is evaluated,
nothing is written, and a failure is logged and returned, never raised (the generation then
compiles, or fails, as it would have).
"""

from __future__ import annotations

import logging
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
