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

The optimizer's operations do not depend on timing: evolve tells in ask order, only the ready
prefix of the pending asks (reviewed, or failed for good and told as failures at its place),
and after each tell asks to refill to ``max_in_flight``, each ask in the mode replayed from what
was told before it. So the sequence is always ask 0..m-1, then tell i / ask i+m ..., whether
one tick ran all m generations synchronously, the loop's executor
(:mod:`huntflow.tasks.inline`) brought them back while the ticks went on, or the run was
interrupted and resumed; a generation back before an earlier one waits for it.

Cost per tick stays flat as the campaign grows: the mode replay continues from the campaign's
fold (``hunt.campaign_folds``, :mod:`huntflow.tasks.fold`, written in the same commit) over the
summary rows of the generations after it (``hunt.generation_summaries``), and the live optimizer is kept in memory after each commit (:data:`_LIVE`), so the next evolve
of the same campaign in this process skips loading the checkpoint when ``optimizer_seq`` shows
nobody else committed since. Every commit stores the optimizer's state write-ahead, but pickles
it in full only every :data:`~huntflow.engine.optimize.journal.COMMITS_PER_CHECKPOINT` commits
(:data:`~huntflow.engine.optimize.journal.COMMITS_PER_CHECKPOINT_LIVE` while the hunt stays live here);
the commits between append what they did (the outcomes told, each ask's mode and fingerprint)
to the campaign's journal (:mod:`huntflow.engine.optimize.journal`). Another process, or one
after a crash, loads the checkpoint and replays the journal: the same optimizer, exactly.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.config import checkpoint_key
from huntflow.engine.optimize import journal
from huntflow.engine.optimize.hunt import Hunt, Outcome
from huntflow.engine.optimize.ladder import param_hash
from huntflow.engine.spec import CampaignSpec
from huntflow.errors import StaleTransition
from huntflow.store import campaigns, evolve_commit, gates, summaries
from huntflow.store.evolve_commit import PlannedGeneration
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Stage
from huntflow.tasks import fold, learn
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
    """Generations a campaign may have asked but not told (``optimizer.options.max_in_flight``):
    by default 2 on pools, 1 inline (one tick, one generation). Set inline, a one-shot tick runs
    that many generations; a loop's executor computes the next while the tick tells the last."""
    default = 1 if operator == "inline" else 2
    return max(1, int(spec.optimizer.options.get("max_in_flight", default)))


_LIVE: OrderedDict[UUID, tuple[int, str | None, Hunt]] = OrderedDict()
"""Campaign -> (optimizer_seq it committed, digest of the stored state, the live Hunt), most
recent last; at most :data:`LIVE_CAMPAIGNS`. An entry is taken out while used, so a failed
evolve leaves none. It is reused only while the stored state has that seq and that digest
(:func:`huntflow.store.campaigns.checkpoint_digest`: the checkpoint's md5 and the journal's
length, computed by the database; nothing is transferred), so any other writer is noticed."""
LIVE_CAMPAIGNS = 32
_LIVE_LOCK = threading.Lock()


def _load_hunt(conn: psycopg.Connection, spec: CampaignSpec, campaign: dict[str, Any], key: bytes,
               targets: list[summaries.Target]) -> tuple[Hunt, str | None, dict[str, Any], bool]:
    """The campaign's optimizer, the digest of the stored state it stands for (None: nothing
    stored yet, a fresh hunt), evolve's reads (:func:`huntflow.store.evolve_commit.evolve_view`)
    and whether the optimizer is the live one: the live optimizer when the stored digest still
    matches it (checked in the same round trip as the reads, which use its pending asks), else
    the checkpoint with its journal replayed (and the reads made for it)."""
    cid = campaign["campaign_id"]
    with _LIVE_LOCK:
        live = _LIVE.pop(cid, None)
    if live is not None and live[0] == campaign["optimizer_seq"]:
        view = evolve_commit.evolve_view(conn, cid, list(live[2].pending), targets, digest=True)
        if view["digest"] == (live[0], live[1]):
            return live[2], live[1], view, True
    seq, state, entries = campaigns.checkpoint_and_journal(conn, cid)
    if seq != campaign["optimizer_seq"]:  # another evolve committed since the row was read
        raise StaleTransition(f"campaign {cid}: optimizer checkpoint moved past seq {campaign['optimizer_seq']}")
    hunt = Hunt.start(spec) if not state else journal.replay(Hunt.loads(state, key=key), entries)
    digest = campaigns.state_digest(state, len(entries)) if state else None
    return hunt, digest, evolve_commit.evolve_view(conn, cid, list(hunt.pending), targets), False


def _keep_live(campaign_id: UUID, seq: int, digest: str | None, hunt: Hunt) -> None:
    with _LIVE_LOCK:
        _LIVE[campaign_id] = (seq, digest, hunt)
        while len(_LIVE) > LIVE_CAMPAIGNS:
            _LIVE.popitem(last=False)


def _told_summary(gen: dict[str, Any], rows: list[dict[str, Any]], annotations: list[dict[str, Any]],
                  targets: list[summaries.Target]) -> dict[str, Any]:
    """A told generation's summary row as it will read after the commit (for the mode replay and
    the fold: the numbers :func:`huntflow.store.summaries.record` computes)."""
    pairs = list(zip(rows, annotations, strict=True))
    ok = [a.get("objective") for e, a in pairs
          if e["status"] == "succeeded" and a.get("feasible") and a.get("objective") is not None]

    def hit(metrics: dict[str, Any]) -> bool:
        vals = [metrics.get(m) for m, _, _ in targets]
        return all(v is not None and (float(v) <= t if goal == "minimize" else float(v) >= t)
                   for v, (_, goal, t) in zip(vals, targets))

    hits = sum(1 for e, a in pairs if e["status"] == "succeeded" and a.get("feasible") and e["metrics"] is not None
               and hit(e["metrics"])) if targets else 0
    return {"ask_id": gen["ask_id"], "fidelity": gen["fidelity"], "evaluations": len(rows),
            "used": sum(1 for e in rows if e["status"] != "pending"),
            "feasible": sum(1 for a in annotations if a.get("feasible")),
            "best_min": min(ok) if ok else None, "best_max": max(ok) if ok else None,
            "target_hits": hits, "summarized": True}


def _settled(g: dict[str, Any]) -> bool:
    """A generation whose summary can no longer change (see :mod:`huntflow.tasks.fold`)."""
    return g["summarized"] and g["status"] in (GS.TOLD.value, GS.FAILED.value)


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    cid = campaign["campaign_id"]
    key = checkpoint_key()
    t0 = time.perf_counter()
    targets = learn.objective_targets(spec)
    live, digest, view, kept = _load_hunt(conn, spec, campaign, key, targets)  # one round trip when live
    hunt = journal.Recorder(live)  # what this commit does to the optimizer, for the journal
    clock = {"load": time.perf_counter() - t0, "optimizer": 0.0}
    known_budget = int((campaign["search_summary"] or {}).get("evaluations_budget", spec.budget.evaluations))
    extended = campaign["evaluations_budget"] - known_budget
    if extended > 0:
        hunt.extend_budget(extended)

    told: dict[UUID, list[tuple[UUID, dict[str, Any]]]] = {}
    fresh: dict[UUID, dict[str, Any]] = {}  # told generations' summaries as they will read after the commit
    failed: set[UUID] = set()
    told_reviewed: set[int] = set()  # ask ids told from review (a failure told is no "told" generation)
    # ready to tell: reviewed (review's re-runs are never told), or failed for good (told as failures)
    ready = view["ready"]
    operator = ctx.operator
    in_flight = max_in_flight(spec, operator)
    waiting = bool(spec.gates.completion and _completion_pending(conn, cid))
    planned: list[PlannedGeneration] = []
    index = view["next_index"]
    stored_fold = view["fold"]
    start = None if stored_fold is None else stored_fold["state"]
    history: dict[str, Any] = {}  # summaries after the stored fold (read with the view)

    def replay() -> tuple[Any, dict[str, Any] | None]:
        """The mode (and the fold) after what is told so far, as the rows will read after the commit."""
        if "gens" not in history:
            history["gens"] = view["history"]
            history["told"] = {g["ask_id"] for g in history["gens"] if g["status"] == GS.TOLD.value}
        gens = [{**g, **fresh[g["generation_id"]]} if g["generation_id"] in fresh else g for g in history["gens"]]
        return fold.replay(spec, start, gens, history["told"] | told_reviewed, campaign["evaluations_budget"],
                           lambda g: g["generation_id"] in fresh or _settled(g))

    modes_asked: list[str] = []

    def refill() -> None:
        """Ask until ``max_in_flight`` asks are pending (or nothing can be asked now), each in the
        mode that what was told before it gives."""
        while not waiting and len(live.pending) < in_flight:
            mode, _ = replay()
            t0 = time.perf_counter()
            ask = hunt.ask(mode.value)
            clock["optimizer"] += time.perf_counter() - t0
            if ask is None:
                return
            modes_asked.append(mode.value)
            planned.append(PlannedGeneration(
                ask_id=ask.ask_id, generation_index=index + len(planned), kind=ask.kind,
                fidelity=ask.fidelity, fidelity_name=spec.fidelities[ask.fidelity].name,
                seed=generation_seed(spec.seed, ask.ask_id), operator=operator,
                max_attempts=spec.max_attempts, candidates=ask.candidates,
                param_hashes=[param_hash([c[n] for n in spec.param_names], spec.param_names) for c in ask.candidates],
                decisions=ask.decisions, meta=ask.meta,
            ))

    # The optimizer's operations do not depend on timing (which generations happen to be back):
    # asks are told in ask order, only the ready prefix of the pending ones, and after each tell
    # the asks are refilled to max_in_flight, so the sequence is always ask 0..m-1, then tell i /
    # ask i+m ..., whichever path ran the generations and however many one evolve sees.
    if not live.pending or extended > 0:
        refill()  # a fresh hunt, a spent one, a budget extension: no tell will refill it
    for ask_id in list(live.pending):
        gen = ready.get(ask_id)
        if gen is None:
            break  # the next ask in order is not back yet: what came back after it waits for it
        rows = view["evaluations"].get(gen["generation_id"], [])
        t0 = time.perf_counter()
        annotations = hunt.tell(ask_id, [outcome_of(e) for e in rows])
        clock["optimizer"] += time.perf_counter() - t0
        told[gen["generation_id"]] = [(e["evaluation_id"], a) for e, a in zip(rows, annotations, strict=True)]
        fresh[gen["generation_id"]] = _told_summary(gen, rows, annotations, targets)
        if gen["status"] == GS.FAILED.value:
            failed.add(gen["generation_id"])
        else:
            told_reviewed.add(ask_id)
        refill()
    mode, new_fold = replay() if told or planned else (None, None)
    if not told and not planned and extended <= 0 and campaign["optimizer_seq"] > 0:
        if not hunt.ops:  # nothing told or asked: the live state is the stored one
            _keep_live(cid, campaign["optimizer_seq"], digest, live)
        return {"told": 0, "planned": 0, "finished": live.is_finished(), "waiting_for_gate": waiting}
    summary = {**live.summary(), "evaluations_budget": campaign["evaluations_budget"]}
    t0 = time.perf_counter()
    # a full checkpoint every few commits (and the first; fewer where this process keeps the hunt
    # live); in between only this commit's journal entry
    entries = campaigns.digest_entries(digest)
    full = digest is None or journal.checkpoint_due(entries, kept)
    checkpoint = live.dumps(key=key) if full else None
    clock["dump"] = time.perf_counter() - t0
    new_ids = evolve_commit.commit_evolve(
        conn, cid, expected_seq=campaign["optimizer_seq"], checkpoint=checkpoint,
        summary=summary, finished=live.is_finished(), told=told, planned=planned,
        already_final=frozenset(failed), targets=targets,
        fold=None if new_fold is None else (new_fold, None if stored_fold is None else stored_fold["state"]),
        journal_entry=None if full else hunt.ops,
    )
    _keep_live(cid, campaign["optimizer_seq"] + 1,
               campaigns.state_digest(checkpoint, 0) if full else campaigns.digest_after_entry(digest), live)
    return {
        "told": len(told),
        "planned": [{"generation_id": str(g), "kind": p.kind, "fidelity": p.fidelity_name,
                     "candidates": len(p.candidates)} for g, p in zip(new_ids, planned)],
        "finished": live.is_finished(),
        "best_objective": summary.get("best_objective"),
        "waiting_for_gate": waiting,
        "mode": None if mode is None else mode.value,
        "modes_asked": modes_asked,
        # where evolve's time went: the optimizer's tell/ask, checkpoint load (0 when the live
        # optimizer was reused) and dump
        "seconds": {k: round(v, 4) for k, v in clock.items()},
        "checkpoint_bytes": None if checkpoint is None else len(checkpoint),
        "journal_entries": 0 if full else entries + 1,
    }


def _completion_pending(conn: psycopg.Connection, campaign_id: UUID) -> bool:
    last = gates.latest(conn, campaign_id, "completion")
    return last is not None and last["status"] == "pending"


@task(cache_policy=NO_CACHE, name="evolve", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=600)
def evolve(ctx: TickContext, campaign_id: UUID) -> dict[str, Any]:
    """Tell reviewed results, ask the next batch, commit both with the checkpoint."""
    return run_stage(Stage.EVOLVE, ctx, campaign_id, run)
