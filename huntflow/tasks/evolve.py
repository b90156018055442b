"""evolve: tell the optimizer the reviewed results, ask the next batch, persist both at once.

Write-ahead: the tells, the new planned generation(s) with their candidates, and the optimizer
checkpoint taken after the ask are committed in one transaction (compare-and-set on the
campaign's ``optimizer_seq``). If the process dies before the commit, nothing changed: the next
tick reloads the previous checkpoint, tells the same results and asks exactly the same points.
If it dies after, the planned generation is in the database and the next dispatch launches it.
Promotion up the fidelity ladder and certification are asks like any other (``kind``).
Search asks are steered by the campaign mode (explore / exploit / recover), replayed from the
told evaluations (:func:`huntflow.tasks.learn.current_mode`) so that it does not depend on
whether the previous tick's learn ran.
While a completion gate is pending (``spec.gates.completion``) evolve still tells but asks
nothing: the campaign waits for the decision instead of spending budget.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.config import checkpoint_key
from huntflow.engine.optimize.hunt import Hunt, Outcome
from huntflow.engine.optimize.ladder import param_hash
from huntflow.engine.spec import CampaignSpec
from huntflow.store import campaigns, gates, generations
from huntflow.store.generations import PlannedGeneration
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import learn
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage


def generation_seed(campaign_seed: int, ask_id: int) -> int:
    """The seed of a generation's batch: a pure function of the campaign seed and the ask."""
    return (int(campaign_seed) * 1_000_003 + int(ask_id) * 7_919 + 1) % (2**31 - 1)


def outcome_of(evaluation: dict[str, Any]) -> Outcome:
    """What the optimizer is told about one evaluation row."""
    status = {"succeeded": "ok", "rejected": "rejected"}.get(evaluation["status"], "failed")
    metrics = {k: v for k, v in (evaluation["metrics"] or {}).items() if v is not None}
    return Outcome(status=status, metrics=metrics, failure_category=evaluation["failure_category"])


def max_in_flight(spec: CampaignSpec, operator: str) -> int:
    """Generations a campaign may have asked but not told: 1 inline, more on pools."""
    if operator == "inline":
        return 1
    return max(1, int(spec.optimizer.options.get("max_in_flight", 2)))


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    cid = campaign["campaign_id"]
    key = checkpoint_key()
    hunt = Hunt.loads(bytes(campaign["optimizer_state"]), key=key) if campaign["optimizer_state"] else Hunt.start(spec)
    known_budget = int((campaign["search_summary"] or {}).get("evaluations_budget", spec.budget.evaluations))
    extended = campaign["evaluations_budget"] - known_budget
    if extended > 0:
        hunt.extend_budget(extended)

    told: dict[UUID, list[tuple[UUID, dict[str, Any]]]] = {}
    for gen in generations.by_status(conn, cid, [GS.REVIEWED]):
        if gen["kind"] == "verification":  # review's re-runs are never told
            continue
        rows = generations.evaluations(conn, gen["generation_id"])
        annotations = hunt.tell(gen["ask_id"], [outcome_of(e) for e in rows])
        told[gen["generation_id"]] = [(e["evaluation_id"], a) for e, a in zip(rows, annotations, strict=True)]
    # a generation that failed for good is told as failures once, so the optimizer moves on
    failed = set()
    for gen in generations.by_status(conn, cid, [GS.FAILED]):
        if gen["ask_id"] in hunt.pending:
            rows = generations.evaluations(conn, gen["generation_id"])
            annotations = hunt.tell(gen["ask_id"], [outcome_of(e) for e in rows])
            told[gen["generation_id"]] = [(e["evaluation_id"], a) for e, a in zip(rows, annotations, strict=True)]
            failed.add(gen["generation_id"])

    operator = ctx.operator
    room = max_in_flight(spec, operator) - (generations.in_flight_count(conn, cid) - (len(told) - len(failed)))
    waiting = spec.gates.completion and _completion_pending(conn, cid)
    if waiting:  # the campaign waits for a human to approve or reject its completion
        room = 0
    planned: list[PlannedGeneration] = []
    index = generations.next_index(conn, cid)
    mode = None
    if room > 0:
        told_ids = generations.told_ask_ids(conn, cid) | {
            g["ask_id"] for g in generations.by_status(conn, cid, [GS.REVIEWED]) if g["generation_id"] in told}
        # the rows as they will read after this commit: the tells' objective and feasibility
        fresh = {eid: a for pairs in told.values() for eid, a in pairs}
        evals = [{**e, "objective": fresh[e["evaluation_id"]].get("objective"),
                  "feasible": fresh[e["evaluation_id"]].get("feasible")} if e["evaluation_id"] in fresh else e
                 for e in generations.campaign_evaluations(conn, cid)]
        mode = learn.current_mode(spec, evals, told_ids, campaign["evaluations_budget"])
    while len(planned) < room:
        ask = hunt.ask(mode.value)
        if ask is None:
            break
        planned.append(PlannedGeneration(
            ask_id=ask.ask_id, generation_index=index + len(planned), kind=ask.kind,
            fidelity=ask.fidelity, fidelity_name=spec.fidelities[ask.fidelity].name,
            seed=generation_seed(spec.seed, ask.ask_id), operator=operator,
            max_attempts=spec.max_attempts, candidates=ask.candidates,
            param_hashes=[param_hash([c[n] for n in spec.param_names], spec.param_names) for c in ask.candidates],
            decisions=ask.decisions, meta=ask.meta,
        ))
    if not told and not planned and extended <= 0 and campaign["optimizer_state"]:
        return {"told": 0, "planned": 0, "finished": hunt.is_finished(), "waiting_for_gate": waiting}
    summary = {**hunt.summary(), "evaluations_budget": campaign["evaluations_budget"]}
    new_ids = generations.commit_evolve(
        conn, cid, expected_seq=campaign["optimizer_seq"], checkpoint=hunt.dumps(key=key),
        summary=summary, finished=hunt.is_finished(), told=told, planned=planned,
        already_final=frozenset(failed),
    )
    return {
        "told": len(told),
        "planned": [{"generation_id": str(g), "kind": p.kind, "fidelity": p.fidelity_name,
                     "candidates": len(p.candidates)} for g, p in zip(new_ids, planned)],
        "finished": hunt.is_finished(),
        "best_objective": summary.get("best_objective"),
        "waiting_for_gate": waiting,
        "mode": None if mode is None else mode.value,
    }


def _completion_pending(conn: psycopg.Connection, campaign_id: UUID) -> bool:
    last = gates.latest(conn, campaign_id, "completion")
    return last is not None and last["status"] == "pending"


@task(cache_policy=NO_CACHE, name="evolve", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=600)
def evolve(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Tell reviewed results, ask the next batch, commit both with the checkpoint."""
    return run_stage(Stage.EVOLVE, ctx, campaign_id, run)
