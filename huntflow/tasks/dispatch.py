"""dispatch: launch each planned generation on its operator; record where it went.

Operators:
  ``inline`` — run in this process (``execute_generation``, a plain call); one tick completes one
               generation. Any inline generation still ``dispatched``/``running`` under another
               tick's reference when a tick holding the campaign's lease reaches dispatch was
               left by a tick that died or lost the lease (the lease guard proves it: this
               tick holds it now): it is planned again without spending an attempt
               (``generations.requeue_interrupted``; the orchestrator died, not the work), and
               the old run, should it still be alive, can write nothing (its writes are fenced
               by its dispatch reference).
  ``pool``   — ``run_deployment`` of the ``hunt-generation/gpu`` deployment with the generation
               id and attempt as idempotency key (:func:`launch_pool`); returns at once, a later
               tick's parse collects the result. A warm worker (``huntflow worker``) runs it
               in its long-lived process; Prefect's process worker in a new one.
  ``slurm``  — one ``sbatch`` job per attempt (:mod:`huntflow.tasks.slurm`); the generation is
               marked ``dispatched`` first, so a job never starts for a generation that is not;
               if ``sbatch`` refuses, the attempt is given back (``retry_or_fail``) and the error
               is in the generation's ``error`` column and the stage summary.
  ``manual`` — a kit directory (:mod:`huntflow.tasks.kit`) someone runs elsewhere with
               ``huntflow kit run`` and brings back with ``huntflow kit import``.

Idempotent: launching is a guarded ``planned -> dispatched`` transition, so a generation is
launched once per attempt however often dispatch runs.

Review first: a promotion or certification is held until review has verified the candidates it
promotes (``meta.review``, :func:`huntflow.tasks.review.review_promotion`).

Promotion gates (``spec.gates.promotion``): a promotion or certification generation is held
while its ``hunt.gates`` row is pending (the row is requested here, with the candidates and
their lower-rung results as its subject). Approved, it launches like any other; rejected, it
is failed for good (evaluations ``failed``, category ``gate_rejected``) and evolve tells the
hunt so it moves on without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.config import get_settings

from huntflow.store import campaigns, gates, generations, verifications
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import kit, slurm
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage
from huntflow.tasks.execute import execute_generation
from huntflow.tasks.inline import executor_of

WAIT_SECONDS = 60.0
"""How long dispatch waits for the loop's executor to finish one of the campaign's generations
(the tick then goes on; the loop ticks again while the executor is busy)."""

InlineRunner = Callable[[str, str], dict[str, Any]]
"""``runner(generation_id, dispatch_ref)``: evaluates the generation in this process."""


def launch_pool(generation: dict[str, Any]) -> str:
    """A flow run of the generation deployment for the generation's next attempt (its id): the
    idempotency key ``<generation id>:<attempt>`` makes a repeated launch find the same run.
    A warm worker (``huntflow worker``) or Prefect's process worker on the pool runs it."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(
        get_settings().generation_deployment,
        parameters={"generation_id": str(generation["generation_id"])},
        timeout=0,
        idempotency_key=f"{generation['generation_id']}:{generation['attempt'] + 1}",
        as_subflow=False,
    )
    return str(flow_run.id)


def _mark_dispatched(conn: psycopg.Connection, generation: dict[str, Any], ref: str) -> bool:
    """``planned -> dispatched`` for the generation's next attempt (False: another dispatcher won)."""
    return generations.transition(conn, generation["generation_id"], [GS.PLANNED], GS.DISPATCHED, dispatch_ref=ref,
                                  attempt=generation["attempt"] + 1, dispatched_at="now()", heartbeat_at="now()")


def inline_ref(ctx: TickContext) -> str:
    """The dispatch reference of the inline generations this tick launches: ``inline:<id>`` of
    its lease owner — the tick id for a one-shot tick (``tick:<tick id>``), the loop's id for a
    loop that keeps one owner across its ticks (``loop:<id>``), so the loop's later ticks know
    the generations on its executor as theirs."""
    return f"inline:{ctx.owner.split(':', 1)[-1]}" if ctx.owner else f"inline:{ctx.tick_id}"


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext,
        inline_runner: InlineRunner | None = None, wait: bool = True) -> dict[str, Any]:
    """Launch the campaign's planned generations; return what was launched where.

    With the loop's executor open (:mod:`huntflow.tasks.inline`) an inline generation is queued
    on it instead of run here, and dispatch then waits until one of the campaign's generations
    there has finished (or none is left), so the parse that follows has it; the generations it
    hands back are listed under ``finished`` (their batch tables), review's verification batches
    that came back under ``verifications_finished``. Without ``wait`` (the tick's promotion pass
    after evolve: nothing parses after it) it only launches; what finishes is handed back by the
    next tick's dispatch."""
    runner = inline_runner or (lambda gid, ref: execute_generation(gid, dispatch_ref=ref))
    executor = None if inline_runner is not None else executor_of(ctx.owner)
    mine = inline_ref(ctx)
    recovered = []
    gens = generations.by_status(conn, campaign["campaign_id"], [GS.PLANNED, GS.DISPATCHED, GS.RUNNING])
    for g in gens:
        if g["status"] == GS.PLANNED.value:
            continue
        if g["operator"] == "inline" and g["dispatch_ref"] != mine:
            status = generations.requeue_interrupted(
                conn, g["generation_id"], [GS.DISPATCHED, GS.RUNNING],
                f"interrupted: the tick running it ({g['dispatch_ref']}) died or lost its lease",
            )
            recovered.append({"generation_id": str(g["generation_id"]), "now": status and status.value})
    launched, held, rejected, refused = [], [], [], []
    gated = campaigns.spec_of(campaign).gates.promotion
    planned = [g for g in gens if g["status"] == GS.PLANNED.value] if not recovered else \
        generations.by_status(conn, campaign["campaign_id"], [GS.PLANNED])  # requeued ones are planned now
    for g in planned:
        gid = g["generation_id"]
        if gated and g["kind"] in ("promotion", "certification"):
            gate = gates.request(conn, campaign["campaign_id"], "promotion", _promotion_subject(conn, g), gid)
            if gate["status"] == "pending":
                held.append({"generation_id": str(gid), "gate_id": str(gate["gate_id"])})
                continue
            if gate["status"] == "rejected":
                note = f": {gate['note']}" if gate["note"] else ""
                if generations.fail(conn, gid, [GS.PLANNED], f"rejected at gate {gate['gate_id']} by"
                                    f" {gate['decided_by']}{note}", category="gate_rejected"):
                    rejected.append({"generation_id": str(gid), "gate_id": str(gate["gate_id"])})
                continue
        if g["kind"] in verifications.PROMOTED and not verifications.cleared(g):
            held.append({"generation_id": str(gid), "waiting_for": "review of its parents"})
            continue  # review verifies what it promotes first (beside a gate's decision)
        attempt = g["attempt"] + 1
        if g["operator"] == "inline":
            if not _mark_dispatched(conn, g, mine):
                continue
            if executor is not None:
                executor.submit(campaign["campaign_id"], str(gid), mine)
                launched.append({"generation_id": str(gid), "operator": "inline", "queued": True})
                continue
            result = runner(str(gid), mine)
            launched.append({"generation_id": str(gid), "operator": "inline", "result": result})
        elif g["operator"] == "manual":
            directory = kit.write_kit(conn, g, campaigns.spec_of(campaign), attempt)
            if _mark_dispatched(conn, g, f"{kit.REF_PREFIX}{directory}"):
                launched.append({"generation_id": str(gid), "operator": "manual", "kit": str(directory), "attempt": attempt})
        elif g["operator"] == "slurm":
            if not _mark_dispatched(conn, g, f"{slurm.REF_PREFIX}submitting"):
                continue
            try:
                jid = slurm.submit(g, campaign["slug"], attempt)
            except slurm.SlurmError as e:
                status = generations.retry_or_fail(conn, gid, [GS.DISPATCHED], f"slurm: {e}")
                refused.append({"generation_id": str(gid), "error": str(e), "now": status and status.value})
                continue
            # the job may be running already: only the reference changes, not the status
            generations.set_dispatch_ref(conn, gid, attempt, f"{slurm.REF_PREFIX}{jid}")
            launched.append({"generation_id": str(gid), "operator": "slurm", "job_id": jid, "attempt": attempt})
        else:
            ref = launch_pool(g)
            if _mark_dispatched(conn, g, ref):
                launched.append({"generation_id": str(gid), "operator": g["operator"], "flow_run_id": ref})
    out = {"launched": launched, "recovered": recovered, "held": held, "gate_rejected": rejected}
    if executor is not None and wait:
        executor.wait(campaign["campaign_id"], WAIT_SECONDS)
        back = executor.finished(campaign["campaign_id"])
        out["finished"] = [{"generation_id": r.get("generation_id"), "operator": "inline", "result": r}
                           for r in back if r.get("kind") != verifications.KIND]
        checks = [r.get("generation_id") for r in back if r.get("kind") == verifications.KIND]
        if checks:  # review's batches, which review queued there: no batch table of the campaign's
            out["verifications_finished"] = checks
    if refused:
        out["refused"] = refused
    return out


def _promotion_subject(conn: psycopg.Connection, generation: dict[str, Any]) -> dict[str, Any]:
    """What a promotion gate asks about: the candidates and how they did one rung lower."""
    rows = generations.evaluations(conn, generation["generation_id"])
    return {
        "kind": generation["kind"],
        "fidelity": generation["fidelity_name"],
        "generation_index": generation["generation_index"],
        "candidates": [
            {"params": e["params"],
             **{k: e["decision"].get(k) for k in ("rank", "parent_objectives", "parent_feasible", "from_fidelity")
                if k in (e["decision"] or {})}}
            for e in rows
        ],
    }


@task(cache_policy=NO_CACHE, name="dispatch", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=3600)
def dispatch(ctx: TickContext, campaign_id: UUID, inline_runner: InlineRunner | None = None,
             promotion_pass: bool = False) -> dict[str, Any]:
    """Launch planned generations on their operators (``promotion_pass``: the tick's second
    pass after evolve, which launches a promotion review just cleared and waits for nothing)."""
    return run_stage(Stage.DISPATCH, ctx, campaign_id,
                     lambda c, row, x: run(c, row, x, inline_runner, wait=not promotion_pass),
                     pass_=2 if promotion_pass else 1)
