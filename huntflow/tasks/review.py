"""review: re-check what the engine claims before the optimizer believes it.

Checks, and what each can and cannot catch:
  * ``nonfinite_metric`` (critical) — a metric the spec uses is NaN/inf or missing on an
    evaluation reported as ok. Catches a broken result document or model; nothing subtler.
  * ``metric_out_of_bounds`` (high) — ``|metric|`` above ``review.metric_abs_max``. Catches
    gross blow-ups the model did not flag; a plausible-looking wrong value passes.
  * ``verification`` — a re-evaluation under the perturbations the model declares
    (:mod:`huntflow.engine.verify`): another noise key (catches a noise-lucky draw: a value far
    outside the model's declared noise), a halved time step and, opt-in, a finer grid (catch
    step-size and resolution artefacts: a value that moves more than the model's declared
    discretisation error), a repeat run (catches non-determinism, of an external program say;
    for a JAX model it shows little more than that XLA is deterministic). Each metric the spec
    uses is compared with its tolerance (``review.tolerances`` > the model's >
    ``review.spot_check_rtol``). An objective that does not survive, a feasible candidate that
    turns infeasible, a perturbed run that fails, or a batch that failed for good is ``high``; a
    constraint metric that moves without changing feasibility is ``medium``. It cannot catch an
    artefact the declared perturbations do not move (an error shared by both step sizes, a bias
    of the model itself) or a wrong model: it tests robustness, not truth.
A critical or high finding rejects the evaluation: the optimizer is told it is infeasible.

What is re-run is what a claim rests on, and nothing else (the cost stays a small share of the
search): in each parsed generation, the *contenders* — rows that would become the best at their
rung against what earlier asks there established — round by round until the best one left has
survived (:func:`review_generation`); and every candidate a promotion or certification promotes.
Where the promotion's rung refines its parents' rung by the very perturbations review would run
(the next rung is the halved step, say, and an equal or finer grid: :func:`verify.ladder`), the
promotion's own result *is* that check: when it is reviewed, each promoted candidate's result is
compared with its parent's claim under the declared tolerance (:func:`verify.ladder_tolerance`),
and a claim that does not survive rejects the parent (a ``high`` finding naming the perturbation,
the rung change and both values) and its promotion row — nothing is re-run for it. Only the
perturbations the rung change does not perform (another noise key, a repeat, a step the ladder
does not halve) are verification batches of the parents before launch (:func:`review_promotion`;
dispatch holds the promotion until then). Either way the promotion's rows of rejected parents
are rejected, so no candidate becomes the campaign's best, is certified, or is promoted further
without having survived. The ladder check comes after the promotion ran, so a promotion may spend
a slot on an artefact (as it did before: its rows were fixed when it was asked), and it compares
against a finer rung, not the parent rung's half step: it misses an artefact the finer grid
happens to reproduce and catches a resolution artefact ``half_dt`` alone would not. A candidate
that is neither a contender nor promoted is told unverified.

The re-runs are verification generations (:mod:`huntflow.store.verifications`) on the checked
generation's own operator: inline ones run here at once (in-process, as dispatch runs inline
generations), or, in a loop that owns an executor, on that executor ahead of its queued
generations (a later tick's review finds them back); pool, Slurm and kit ones are launched by
the next dispatch. Until they are parsed the checked generation stays ``parsed`` (not told);
other generations stay in flight meanwhile. What is verified, and under which seeds, is a function of stored rows (a generation
waits while an earlier ask at its rung is not reviewed) and seeds, so a crash anywhere changes
nothing the optimizer is told.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

import psycopg
from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.engine import verify
from huntflow.engine.spec import CampaignSpec
from huntflow.store import campaigns, generations, verifications
from huntflow.store.findings import Finding
from huntflow.store.states import GenerationStatus as GS
from huntflow.store.states import Severity, Stage
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays, run_stage

_SETTLED = {GS.PARSED.value, GS.REVIEWED.value, GS.FAILED.value, GS.CANCELLED.value}


def check_metrics(spec: CampaignSpec, evaluation: dict[str, Any]) -> list[Finding]:
    """Finite and bounded checks of one succeeded evaluation's metrics."""
    out: list[Finding] = []
    metrics = evaluation["metrics"] or {}
    used = [o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]
    for name in dict.fromkeys(used):
        v = metrics.get(name)
        if v is None or not math.isfinite(float(v)):
            out.append(Finding(Severity.CRITICAL, "nonfinite_metric",
                               f"metric {name!r} is {v!r} on an evaluation reported as ok",
                               evaluation["evaluation_id"], {"metric": name}))
        elif abs(float(v)) > spec.review.metric_abs_max:
            out.append(Finding(Severity.HIGH, "metric_out_of_bounds",
                               f"|{name}| = {abs(float(v)):.3g} exceeds review.metric_abs_max "
                               f"({spec.review.metric_abs_max:.3g})",
                               evaluation["evaluation_id"], {"metric": name, "value": float(v)}))
    return out


def _run_inline(conn: psycopg.Connection, spec: CampaignSpec, vid: UUID, ctx: TickContext,
                campaign_id: UUID) -> dict[str, Any]:
    """Run an inline verification generation (what dispatch would do) and parse it once it is
    back (what parse would do); returns its row as it stands after.

    In a loop that owns an executor (:mod:`huntflow.tasks.inline`) the batch is queued there,
    ahead of the queued search generations (the next asks wait for the tell it holds back),
    under the loop's dispatch reference, and this review waits for it like a pool's: a later
    tick's review finds it back. Otherwise it runs here at once, on the tick's thread."""
    from huntflow.tasks.dispatch import inline_ref
    from huntflow.tasks.execute import execute_generation
    from huntflow.tasks.inline import executor_of
    from huntflow.tasks.parse import parse_generation

    executor = executor_of(ctx.owner) if ctx.owner else None
    ref = inline_ref(ctx) if executor is not None else f"inline:{ctx.tick_id}"
    if generations.dispatch_planned(conn, vid, ref):  # planned -> dispatched at its next attempt
        if executor is not None:
            executor.submit(campaign_id, str(vid), ref, first=True)
        else:
            try:
                execute_generation(vid, dispatch_ref=ref)
            except Exception:  # sent back or failed by execute_generation; the next tick retries it
                pass
    v = generations.get_for_parse(conn, vid)  # with its candidate indices: parse reads nothing more
    if v["status"] == GS.SUCCEEDED.value:
        done = parse_generation(conn, v, sorted({o.metric for o in spec.objectives} | {c.metric for c in spec.constraints}))
        v = {**v, "status": GS.PARSED.value} if done["outcome"] == "parsed" else generations.get(conn, vid)
    return v


def _verdicts(spec: CampaignSpec, v: dict[str, Any], vrows: list[dict[str, Any]],
              claimed: dict[UUID, dict[str, Any]], perturbation: str) -> list[Finding]:
    """Findings from one settled verification generation (``vrows``: its evaluations)."""
    if v["status"] not in (GS.PARSED.value, GS.REVIEWED.value):
        ids = dict.fromkeys(UUID(str(r["decision"]["verifies"])) for r in vrows)
        return [Finding(Severity.HIGH, "verification_unavailable",
                        f"the {perturbation} verification batch {v['status']} ({v['error'] or 'no error'}):"
                        " the candidate is not verified, so it is not believed", source,
                        {"perturbation": perturbation, "verification_generation_id": str(v["generation_id"])})
                for source in ids if source in claimed]
    out, seen = [], set()
    for r in vrows:
        source = UUID(str(r["decision"]["verifies"]))
        if source in seen or source not in claimed:
            continue  # padding repeats the last row
        seen.add(source)
        for verdict in verify.compare(spec, perturbation, claimed[source]["metrics"] or {},
                                      r["status"] == "succeeded", r["metrics"]):
            out.append(Finding(Severity(verdict.severity), verdict.kind, verdict.message, source,
                               {**verdict.details, "verification_generation_id": str(v["generation_id"])}))
    return out


def _settle(conn: psycopg.Connection, spec: CampaignSpec, owner: dict[str, Any], checks: list[tuple[dict, verify.Check]],
            existing: dict[int, UUID], claimed: dict[UUID, dict[str, Any]], ctx: TickContext | None,
            round_: int | None) -> tuple[bool, list[UUID], list[Finding], list[dict[str, Any]]]:
    """Plan (or find) ``checks`` (``(checked generation, check)``), run inline ones, and judge
    those that are back: ``(all settled, their ids, findings, what ran)``."""
    settled, vids, found, runs = True, [], [], []
    for gen, c in checks:
        vid = existing.get(c.position)
        if vid is None:
            vid = verifications.insert(conn, gen, position=c.position, perturbation=c.perturbation.name,
                                       seed=c.seed, fixed=c.fixed, settings=c.settings, sources=c.sources,
                                       key_indices=c.key_indices, promotion=None if owner is gen else owner)
        if gen["operator"] == "inline" and ctx is not None:
            v = _run_inline(conn, spec, vid, ctx, gen["campaign_id"])
        else:
            v = generations.get(conn, vid)
        vids.append(vid)
        runs.append({"generation_id": str(vid), "perturbation": c.perturbation.name, "round": round_,
                     "candidates": len({e["evaluation_id"] for e in c.sources}), "status": v["status"]})
        if v["status"] not in _SETTLED:
            settled = False
            continue
        found.extend(_verdicts(spec, v, generations.evaluations(conn, vid), claimed, c.perturbation.name))
    return settled, vids, found, runs


def _incumbent(spec: CampaignSpec, before: dict[str, Any]) -> float | None:
    """The best feasible objective (minimized) earlier asks at the rung established."""
    minimize = spec.objectives[0].goal == "minimize"
    told = before["best_min"] if minimize else before["best_max"]
    values = [] if told is None else [float(told) if minimize else -float(told)]
    values += [verify.rank_key(spec, e)[1] for e in before["untold"] if verify.rank_key(spec, e)[0] == 0]
    return min(values, default=None)


def _parent_findings(gen: dict[str, Any], rows: list[dict[str, Any]], parent_of: dict[int, UUID]) -> list[Finding]:
    """A promotion's candidates whose lower-rung result did not survive review are rejected
    (``parent_of``: promoted candidate index -> the evaluation it was promoted from)."""
    bad = set(((gen["meta"] or {}).get("review") or {}).get("parents_rejected") or [])
    return [Finding(Severity.HIGH, "verification",
                    f"promoted from rung {e['decision'].get('from_fidelity')!r} although its result there did not"
                    " survive review (see that finding): its promotion result is not believed", e["evaluation_id"],
                    {"parent_rejected": str(parent_of[e["candidate_index"]])})
            for e in rows if str(parent_of.get(e["candidate_index"])) in bad]


def _ladder_findings(spec: CampaignSpec, gen: dict[str, Any], rows: list[dict[str, Any]],
                     parents: list[dict[str, Any]]) -> tuple[list[Finding], dict[UUID, list[Finding]]]:
    """A promotion whose rung refines its parents' by the perturbations it covers
    (:func:`verify.ladder`) is itself their check: each promoted candidate's result here is
    compared with its parent's claim. Returns the findings on this generation's rows and, by
    parent generation, those on the parents (a ``high`` one rejects both)."""
    on = spec.review.spot_check_top > 0 and spec.review.verify_promoted
    if not on or not parents:
        return [], {}
    below, here = int(parents[0]["fidelity"]), int(gen["fidelity"])
    covered = [p.name for p in verify.ladder(spec, below, here)]
    if not covered:
        return [], {}
    names = "+".join(covered)
    step = f"{spec.fidelities[below].name} -> {spec.fidelities[here].name}"
    tols = {m: verify.ladder_tolerance(spec, m, below, here)
            for m in [o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]}
    by_index = {e["candidate_index"]: e for e in rows}
    own: list[Finding] = []
    theirs: dict[UUID, list[Finding]] = {}
    for p in parents:
        e = by_index.get(p["promoted"])
        if e is None or p["status"] != "succeeded" or e["status"] not in ("succeeded", "failed"):
            continue
        label = f"{names} (the promotion {step})"
        for v in verify.compare(spec, label, p["metrics"] or {}, e["status"] == "succeeded", e["metrics"], tols):
            details = {**v.details, "perturbation": names, "ladder": step,
                       "promoted_evaluation_id": str(e["evaluation_id"])}
            theirs.setdefault(p["generation_id"], []).append(
                Finding(Severity(v.severity), v.kind, v.message, p["evaluation_id"], details))
            if v.severity == Severity.HIGH.value:
                own.append(Finding(Severity.HIGH, "verification",
                                   f"its claim at {spec.fidelities[below].name} did not survive this evaluation"
                                   f" ({v.message}): its promotion result is not believed", e["evaluation_id"],
                                   {**details, "parent_rejected": str(p["evaluation_id"])}))
    return own, theirs


def review_generation(conn: psycopg.Connection, spec: CampaignSpec, gen: dict[str, Any],
                      ctx: TickContext | None = None) -> dict[str, Any]:
    """Review one parsed generation: plan (or find) its verification batches round by round,
    run inline ones, and once all are back store the findings and flip it to ``reviewed``.

    Only contenders are re-run: rows that would become the best at their rung against what
    earlier asks there established (so it waits while one of those is not reviewed yet)."""
    gid = gen["generation_id"]
    every, checks_of, before = verifications.review_reads(conn, gen)  # one round trip
    rows = [e for e in every if e["status"] == "succeeded"]
    found: list[Finding] = []
    for e in rows:
        found.extend(check_metrics(spec, e))
    on_parents: dict[UUID, list[Finding]] = {}
    if gen["kind"] in verifications.PROMOTED:
        parents = verifications.parents(conn, gen)
        found.extend(_parent_findings(gen, rows, {p["promoted"]: p["evaluation_id"] for p in parents}))
        own, on_parents = _ladder_findings(spec, gen, every, parents)
        found.extend(own)
    bad = {f.evaluation_id for f in found}
    clean = [e for e in rows if e["evaluation_id"] not in bad]
    claimed = {e["evaluation_id"]: e for e in clean}
    if before is None:
        return {"generation_id": str(gid), "checked": len(rows), "waiting": "an earlier ask at this rung"}
    incumbent = _incumbent(spec, before)
    existing = {int(v["meta"]["verification"]["position"]): v["generation_id"] for v in checks_of
                if "promotion" not in v["meta"]["verification"]}
    verified: set[UUID] = set()
    vids: list[UUID] = []
    runs: list[dict[str, Any]] = []
    rounds = verify.max_rounds(spec, int(gen["fidelity"]))
    for round_ in range(rounds + 1):
        rejected_now = {f.evaluation_id for f in found if f.severity.rejects()}
        picked = verify.next_round(spec, gen["kind"], clean, verified, rejected_now, incumbent)
        if not picked:
            break
        if round_ == rounds:  # still an unverified contender on top: not believed
            found.extend(Finding(Severity.HIGH, "verification_exhausted",
                                 f"{rounds} verification rounds rejected every better candidate of this"
                                 " generation; this one is not verified, so it is not believed", e["evaluation_id"])
                         for e in verify.contenders(spec, clean, incumbent)
                         if e["evaluation_id"] not in verified and e["evaluation_id"] not in rejected_now)
            break
        checks = [(gen, c) for c in verify.plan(spec, gen, picked, round_)]
        settled, ids, more, ran = _settle(conn, spec, gen, checks, existing, claimed, ctx, round_)
        vids += ids
        runs += ran
        found += more
        verified |= {e["evaluation_id"] for e in picked}
        if not settled:
            return {"generation_id": str(gid), "checked": len(rows), "verification": runs, "waiting": True}
    rejected = sorted({f.evaluation_id for f in found if f.severity.rejects() and f.evaluation_id}, key=str)
    parents_rejected = sorted({f.evaluation_id for fs in on_parents.values() for f in fs if f.severity.rejects()},
                              key=str)
    verifications.complete(conn, gen, vids, found, rejected, on_parents, parents_rejected)
    out = {"generation_id": str(gid), "checked": len(rows), "spot_checked": len(verified),
           "verification": runs, "findings": len(found), "rejected": len(rejected)}
    if on_parents or parents_rejected:
        out["parents_rejected"] = len(parents_rejected)
    return out


def review_promotion(conn: psycopg.Connection, spec: CampaignSpec, promo: dict[str, Any],
                     ctx: TickContext | None = None) -> dict[str, Any]:
    """Before a planned promotion or certification is launched, verify every candidate it
    promotes that has not survived a verification yet (at its own rung, on its generation's
    operator); dispatch holds the promotion until this is recorded (``meta.review``)."""
    pid = promo["generation_id"]
    parents = verifications.parents(conn, promo)
    on = spec.review.spot_check_top > 0 and spec.review.verify_promoted
    below = int(parents[0]["fidelity"]) if parents else int(promo["fidelity"])
    covered = [p.name for p in verify.ladder(spec, below, int(promo["fidelity"]))] if on else []
    todo = [p for p in parents if not p["verified"] and p["status"] == "succeeded"] \
        if on and verify.explicit(spec, below, int(promo["fidelity"])) else []
    rejected = [p["evaluation_id"] for p in parents if p["status"] == "rejected"]
    by_gen: dict[UUID, list[dict[str, Any]]] = {}
    for p in todo:
        by_gen.setdefault(p["generation_id"], []).append(p)
    gens = {g: generations.get(conn, g) for g in by_gen}
    plan = verify.plan_parents(spec, [(gens[g], verify.ranked(spec, rows)) for g, rows in
                                      sorted(by_gen.items(), key=lambda kv: gens[kv[0]]["ask_id"])],
                               to_fidelity=int(promo["fidelity"]))
    existing = {int(v["meta"]["verification"]["position"]): v["generation_id"]
                for v in verifications.of_promotion(conn, pid)}
    claimed = {p["evaluation_id"]: p for p in todo}
    settled, vids, found, runs = _settle(conn, spec, promo, plan, existing, claimed, ctx, None)
    if not settled:
        return {"generation_id": str(pid), "parents": len(parents), "verification": runs, "waiting": True}
    owner = {p["evaluation_id"]: p["generation_id"] for p in todo}
    by_parent_gen: dict[UUID, list[Finding]] = {}
    for f in found:
        by_parent_gen.setdefault(owner[f.evaluation_id], []).append(f)
    rejected += sorted({f.evaluation_id for f in found if f.severity.rejects()}, key=str)
    verifications.clear_promotion(conn, promo, vids, by_parent_gen, rejected, len(todo), ladder=covered)
    return {"generation_id": str(pid), "parents": len(parents), "parents_verified": len(todo), "ladder": covered,
            "verification": runs, "findings": len(found), "parents_rejected": len(rejected)}


def run(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    spec = campaigns.spec_of(campaign)
    cid = campaign["campaign_id"]
    gens = generations.by_status(conn, cid, [GS.PLANNED, GS.PARSED])  # one read for both lists
    promotions = [review_promotion(conn, spec, g, ctx) for g in gens if g["status"] == GS.PLANNED.value
                  and g["kind"] in verifications.PROMOTED and not verifications.cleared(g)]
    out = {"reviewed": [review_generation(conn, spec, g, ctx) for g in gens
                        if g["status"] == GS.PARSED.value and g["kind"] != verifications.KIND]}
    if promotions:
        out["promotions"] = promotions
    return out


def run_promotions(conn: psycopg.Connection, campaign: dict[str, Any], ctx: TickContext) -> dict[str, Any]:
    """The promotion pass (after evolve, :mod:`huntflow.flows.tick`): :func:`review_promotion` of
    each planned promotion or certification not cleared yet, so one evolve just asked is verified
    (or its parents' batches queued) in the tick that asked it; parsed generations wait for the
    next tick's first pass, as before."""
    spec = campaigns.spec_of(campaign)
    gens = generations.by_status(conn, campaign["campaign_id"], [GS.PLANNED])
    return {"promotions": [review_promotion(conn, spec, g, ctx) for g in gens
                           if g["kind"] in verifications.PROMOTED and not verifications.cleared(g)]}


def cleared_any(summary: Any) -> bool:
    """Whether a review summary cleared a promotion for launch (one not left ``waiting`` for its
    parents' verification batches)."""
    return isinstance(summary, dict) and any(not p.get("waiting") for p in summary.get("promotions") or [])


@task(cache_policy=NO_CACHE, name="review", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=1800)
def review(ctx: TickContext, campaign_id: UUID, promotion_pass: bool = False) -> dict[str, Any]:
    """Adversarially check parsed evaluations; reject what cannot be trusted (``promotion_pass``:
    only the planned promotions, the tick's second pass after evolve: :func:`run_promotions`)."""
    if promotion_pass:
        return run_stage(Stage.REVIEW, ctx, campaign_id, run_promotions, pass_=2)
    return run_stage(Stage.REVIEW, ctx, campaign_id, run)
