"""learn: record the trajectory, switch mode on stagnation, decide completion.

After each told generation a ``hunt.trajectories`` row records, from the database alone:
  best_objective    best feasible objective so far at the top fidelity (certified), else at any
                    fidelity (user's sign: the smallest for minimize, the largest for maximize)
  improvement       how much better than the previous row's best (>= 0; ``None`` at first)
  feasible_fraction share of the generation's evaluations that were feasible
  hypervolume       (several objectives) of the feasible front against ``reference_point``
  mode              explore / exploit / recover (rules below)
  reward            ``min(1, improvement / (|previous best| + 1e-9)) + 0.1 · feasible_fraction``;
                    discover ranks equal-priority campaigns by it.
Mode: ``recover`` after ``max(3, patience // 2)`` generations without improvement; ``exploit``
once a third of the budget is spent and the best improved within the last three generations;
``explore`` otherwise.
Completion (first that holds): ``target_met`` (a feasible top-fidelity evaluation meets every
objective target), ``budget_spent`` (the optimizer has nothing more to ask and nothing is in
flight), ``wall_time`` (older than ``budget.wall_time_hours``), ``stagnated`` (``budget.patience``
generations without improvement). The tick then emits the Prefect event
``huntflow.campaign.completed`` (:mod:`huntflow.flows.events`) and writes its report once
learn's stage row is closed (:func:`huntflow.flows.tick.completion_report`).
Everything is read from the campaign's fold (``hunt.campaign_folds``, :mod:`huntflow.tasks.fold`:
its settled generations folded into one row by evolve) and the ``hunt.generation_summaries`` rows
of the generations after it, plus a few indexed lookups and its counts over the trajectory
rows (``hunt.learn_states``, written with the rows), never the whole history, so learn's
cost stays flat as a campaign grows; only the hypervolume with several objectives reads
evaluation rows (the feasible ones).
With ``spec.gates.completion`` learn asks first (a ``hunt.gates`` row, see
:func:`completion_gate`): the campaign completes once the gate is approved and keeps running
when it is rejected.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.engine.optimize import modes
from huntflow.engine.optimize.pareto import hypervolume
from huntflow.engine.spec import CampaignSpec
from huntflow.engine.summary import front
from huntflow.engine.summary import better as _better
from huntflow.store import campaigns, gates, generations, summaries, trajectories
from huntflow.store.states import CampaignStatus, Mode, Stage
from huntflow.tasks import fold
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage

IMPROVEMENT_TOL = fold.IMPROVEMENT_TOL


def target_met(spec: CampaignSpec, evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A feasible top-fidelity evaluation meeting every objective target, if any."""
    if all(o.target is None for o in spec.objectives):
        return None
    top = len(spec.fidelities) - 1
    for e in evals:
        if e["status"] != "succeeded" or not e["feasible"] or e["fidelity"] != top or not e["metrics"]:
            continue
        met = True
        for o in spec.objectives:
            if o.target is None:
                continue
            v = e["metrics"].get(o.metric)
            if v is None or (v > o.target if o.goal == "minimize" else v < o.target):
                met = False
        if met:
            return e
    return None


def _hypervolume(spec: CampaignSpec, evals: list[dict[str, Any]]) -> float | None:
    if len(spec.objectives) < 2 or spec.reference_point is None:
        return None
    pts = front(spec, evals)  # at one rung: the highest with a feasible evaluation
    if not pts:
        return 0.0
    ref = np.array([r * (1 if o.goal == "minimize" else -1) for r, o in zip(spec.reference_point, spec.objectives)])
    return float(hypervolume(np.asarray(pts, dtype=float), ref))


def choose_mode(stagnant: int, patience: int | None, used_fraction: float) -> Mode:
    """The mode rule (:func:`huntflow.engine.optimize.modes.choose_mode`) as a ``Mode``."""
    return Mode(modes.choose_mode(stagnant, patience, used_fraction))


_progress = fold.progress


def objective_targets(spec: CampaignSpec) -> list[summaries.Target]:
    """``(metric, goal, target)`` of every objective with a target (what ``target_met`` checks)."""
    return [(o.metric, o.goal, float(o.target)) for o in spec.objectives if o.target is not None]


def mode_of_generations(spec: CampaignSpec, gens: list[dict[str, Any]], told_ask_ids: set[int],
                        evaluations_budget: int) -> Mode:
    """:func:`current_mode` from one summary per generation (``summaries.for_campaign``, in ask
    order) instead of every evaluation: the same sweep, a generation at a time
    (:func:`huntflow.tasks.fold.replay` from the start)."""
    return fold.replay(spec, None, gens, told_ask_ids, evaluations_budget, lambda g: False)[0]


def current_mode(spec: CampaignSpec, evals: list[dict[str, Any]], told_ask_ids: set[int],
                 evaluations_budget: int) -> Mode:
    """The mode after the last of ``told_ask_ids``, from the evaluation rows alone.

    The same rule as the trajectory rows :func:`run` records, replayed in one sweep over
    ``evals`` (in ask order, as :func:`~huntflow.store.generations.campaign_evaluations` returns
    them). Evolve steers the next ask with it: being a pure function of what was told, it is the
    same whether or not the previous tick's learn ran (a crash between evolve and learn changes
    nothing).
    """
    top = len(spec.fidelities) - 1
    best_top: float | None = None
    best_any: float | None = None
    prev_best: float | None = None
    stagnant, used, i = 0, 0, 0
    mode = Mode.EXPLORE
    for ask_id in sorted(told_ask_ids):
        while i < len(evals) and evals[i]["ask_id"] <= ask_id:
            e = evals[i]
            i += 1
            if e["status"] == "pending":
                continue
            used += 1
            if e["status"] == "succeeded" and e["feasible"] and e["objective"] is not None:
                if _better(spec, e["objective"], best_any):
                    best_any = e["objective"]
                if e["fidelity"] == top and _better(spec, e["objective"], best_top):
                    best_top = e["objective"]
        best_value = best_top if best_top is not None else best_any
        _, stagnant = _progress(spec, prev_best, best_value, stagnant)
        mode = choose_mode(stagnant, spec.budget.patience, used / max(1, evaluations_budget))
        if best_value is not None:
            prev_best = best_value
    return mode


def _continue_from(conn: psycopg.Connection, spec: CampaignSpec, cid: UUID, count: int,
                   view: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]], set[UUID]]:
    """Where learn continues: a stored fold every told generation of which has its trajectory
    row (``count`` rows in all), the generation summaries after it and which of those have a
    row (from ``view``, :func:`huntflow.store.trajectories.learn_view`: the summaries after the
    older of the two stored states). Falls back to no fold (every generation, read now) when
    neither stored state qualifies."""
    stored = view["fold"]
    bases = [] if stored is None else [b for b in (stored["state"], stored["previous"]) if b is not None]
    for base in bases:
        gens = [g for g in view["gens"] if g["ask_id"] > base["ask_id"]]
        recorded = {g["generation_id"] for g in gens if g["status"] == "told" and g["recorded"]}
        if count == base["told"] + len(recorded):
            return base, gens, recorded
    gens = summaries.for_campaign(conn, cid, objective_targets(spec))
    return None, gens, trajectories.recorded_among(conn, [g["generation_id"] for g in gens if g["status"] == "told"])


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    cid = campaign["campaign_id"]
    view = trajectories.learn_view(conn, cid, IMPROVEMENT_TOL, objective_targets(spec))  # one round trip
    state = view["state"]
    base, gens, recorded_ids = _continue_from(conn, spec, cid, state["count"], view)
    new_gens = [g for g in gens if g["status"] == "told" and g["generation_id"] not in recorded_ids]
    prev_best = state["best_objective"]
    stagnant = state["stagnant"]
    mode = Mode(campaign["mode"])
    feasible_rows = None
    if len(spec.objectives) >= 2 and spec.reference_point is not None:
        feasible_rows = summaries.feasible_evaluations(conn, cid)
    recorded, rows = [], []
    for gen in new_gens:
        upto = fold.Sweep(spec, base, campaign["evaluations_budget"])
        for g in gens:
            if g["ask_id"] <= gen["ask_id"]:
                upto.add(g)
        best_value = upto.value
        improvement, stagnant = _progress(spec, prev_best, best_value, stagnant)
        used = upto.s["used"]
        mode = choose_mode(stagnant, spec.budget.patience, used / max(1, campaign["evaluations_budget"]))
        feasible_fraction = (gen["feasible"] / gen["evaluations"]) if gen["evaluations"] else 0.0
        reward = 0.1 * feasible_fraction
        if improvement is not None and prev_best is not None:
            reward += min(1.0, improvement / (abs(prev_best) + 1e-9))
        hv = None if feasible_rows is None else _hypervolume(
            spec, [e for e in feasible_rows if e["ask_id"] <= gen["ask_id"]])
        row = {
            "campaign_id": cid, "generation_id": gen["generation_id"],
            "generation_index": gen["generation_index"], "evaluations_used": used,
            "best_objective": best_value, "improvement": improvement,
            "feasible_fraction": feasible_fraction, "hypervolume": hv,
            "mode": mode.value, "reward": reward,
            "details": {"kind": gen["kind"], "fidelity": gen["fidelity_name"], "stagnant": stagnant},
        }
        rows.append(row)
        recorded.append({k: row[k] for k in ("generation_index", "best_objective", "improvement", "mode")})
        if best_value is not None:
            prev_best = best_value
    everything = fold.Sweep(spec, base, campaign["evaluations_budget"])
    for g in gens:
        everything.add(g)
    best = None
    # this tick's writes, one round trip; one transaction too (a pipeline's statements up to its
    # one Sync commit together: an error rolls back all of them)
    with conn.pipeline():
        trajectories.record_many(conn, rows)
        if rows:  # the counts the next tick continues from (without counting the rows again)
            trajectories.keep_state(conn, cid, trajectories.advance_state(state, rows, IMPROVEMENT_TOL))
        found = None if everything.best_gen is None else \
            campaigns.set_best_from(conn, cid, UUID(str(everything.best_gen)), everything.value)
        if mode.value != campaign["mode"]:
            campaigns.set_mode(conn, cid, mode)
    if found is not None:
        best = found.fetchone()

    facts = {"hits": everything.s["hits"] if objective_targets(spec) else 0, "used": everything.s["used"]}
    reason = completion_reason(conn, spec, campaign, facts, stagnant, current=True)
    gate = None
    if reason is not None and spec.gates.completion:
        reason, gate = completion_gate(conn, spec, campaign, reason, best, facts, stagnant,
                                       state["count"] + len(recorded))
    completed = False
    if reason is not None:
        completed = campaigns.finish_campaign(conn, cid, CampaignStatus.COMPLETED, reason)
    return {"recorded": recorded, "mode": mode.value, "stagnant": stagnant,
            "best_objective": None if best is None else best["objective"],
            "completed": completed, "reason": reason, "gate": gate}


def target_hits(spec: CampaignSpec, gens: list[dict[str, Any]]) -> int:
    """Feasible top-fidelity evaluations meeting every objective target (0 without targets)."""
    top = len(spec.fidelities) - 1
    if not objective_targets(spec):
        return 0
    return sum(int(g["target_hits"] or 0) for g in gens if g["fidelity"] == top)


def completion_reason(conn: psycopg.Connection, spec: CampaignSpec, campaign: dict[str, Any],
                      facts: dict[str, int], stagnant: int, current: bool = False) -> str | None:
    """Why the campaign completes now, if it does. ``facts``: ``hits`` (:func:`target_hits`)
    and ``used`` (evaluations not pending). ``current``: ``campaign`` was read after the
    last evolve committed (learn's own stage row), so it is not read again."""
    if facts["hits"] > 0:
        return "target_met"
    fresh = campaign if current else campaigns.get_campaign(conn, campaign["campaign_id"])
    if fresh["search_finished"] and generations.in_flight_count(conn, campaign["campaign_id"]) == 0:
        return "budget_spent"
    if spec.budget.wall_time_hours is not None:
        age = dt.datetime.now(dt.timezone.utc) - campaign["created_at"]
        if age.total_seconds() > spec.budget.wall_time_hours * 3600:
            return "wall_time"
    if spec.budget.patience is not None and stagnant >= spec.budget.patience:
        return "stagnated"
    return None


def _gate_key(spec: CampaignSpec, campaign: dict[str, Any], reason: str, facts: dict[str, int],
              stagnant: int, told: int) -> str:
    """What a rejected completion gate was about: a new gate is asked only once this changes."""
    if reason == "target_met":  # another evaluation meeting the target
        return f"meeting:{facts['hits']}"
    if reason == "budget_spent":  # the budget was extended and spent again
        return f"budget:{campaign['evaluations_budget']}"
    if reason == "stagnated":  # another `patience` generations without improvement
        return f"stagnated:{told - stagnant}:{stagnant // max(1, spec.budget.patience or 1)}"
    return reason  # wall_time: asked once


def completion_gate(conn: psycopg.Connection, spec: CampaignSpec, campaign: dict[str, Any], reason: str,
                    best: dict[str, Any] | None, facts: dict[str, int], stagnant: int,
                    told: int) -> tuple[str | None, dict[str, Any]]:
    """Ask a human before completing (``spec.gates.completion``).

    Returns the reason to complete with now (``None``: not yet) and what happened to the gate.
    An approved gate completes the campaign with the reason it was asked for, unless the budget
    changed since (``campaign extend`` makes an old approval stale). A pending gate waits (and
    evolve asks nothing meanwhile). A rejected gate keeps the campaign running; a new gate is
    asked only when the state it was about has moved on (:func:`_gate_key`).
    """
    cid = campaign["campaign_id"]
    key = _gate_key(spec, campaign, reason, facts, stagnant, told)
    last = gates.latest(conn, cid, "completion")
    if last is not None:
        subject = last["subject"] or {}
        fresh = subject.get("evaluations_budget") == campaign["evaluations_budget"]
        if last["status"] == "pending":
            return None, {"gate_id": str(last["gate_id"]), "status": "pending"}
        if last["status"] == "approved" and fresh:
            return subject.get("reason", reason), {"gate_id": str(last["gate_id"]), "status": "approved"}
        if last["status"] == "rejected" and fresh and any(
            (g["subject"] or {}).get("key") == key for g in gates.of_campaign(conn, cid, "completion")
        ):
            return None, {"gate_id": str(last["gate_id"]), "status": "rejected"}
    subject = {
        "reason": reason, "key": key, "evaluations_budget": campaign["evaluations_budget"],
        "evaluations_used": facts["used"], "generations_told": told,
        "best": None if best is None else {
            "evaluation_id": str(best["evaluation_id"]), "objective": best["objective"],
            "params": best["params"], "fidelity": best["fidelity"],
        },
    }
    row = gates.request(conn, cid, "completion", subject)
    return None, {"gate_id": str(row["gate_id"]), "status": "requested"}


@task(cache_policy=NO_CACHE, name="learn", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=300)
def learn(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Record the trajectory, switch mode, decide completion."""
    return run_stage(Stage.LEARN, ctx, campaign_id, run)
