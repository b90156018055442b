"""Search and promotion asks of a :class:`~huntflow.engine.optimize.hunt.Hunt`.

Every outer ALM iteration is one told search ask (see :mod:`~huntflow.engine.optimize.alm`).
The prefilter (:mod:`~huntflow.engine.optimize.prefilter`) screens search candidates; each
rejection is told to the backend as infeasible and the batch is refilled by asking more.

Modes (``Hunt.ask(mode)``; the rule that picks one is
:func:`~huntflow.engine.optimize.modes.choose_mode`) shape search asks only; promotion and
certification asks are the same in every mode. Of a search batch of ``n``:

* ``explore`` (the default): all ``n`` from the backend, exactly as before modes existed.
* ``exploit``: ``floor(exploit_share * n + 0.5)`` candidates (``optimizer.options.exploit_share``,
  default 0.25 with one objective and at most 10 parameters, else 0: :func:`default_shares`) are local refinement around the incumbent at the rung searched: with one
  objective the best feasible evaluation (lowest objective; the least-violating successful one
  when none is feasible, no refinement when none succeeded), with several objectives a member of
  the feasible front drawn per candidate. Each is the incumbent's unit-cube point plus Gaussian
  noise, clipped to the cube, with per-coordinate step ``sigma = max(1e-6, min(0.1, s/2) * 2**-k)``.
  ``s`` is the RMS per-coordinate standard deviation of the optimizer's own points in this batch
  (the scale it samples at now, so the refinement is always finer than the optimizer's own
  search; the rung's last search batch when this one has a single point); ``k`` counts the
  exploit asks made since the incumbent last changed: the step halves while refining does not
  move the incumbent and starts again at ``s/2`` once it moves (shrink on failure, reset on
  success, as in pattern search).
* ``recover``: ``floor(recover_share * n + 0.5)`` candidates (``optimizer.options.recover_share``,
  default 0: opt-in, e.g. 0.25) are diversification: a Latin hypercube pool of ``max(256, 32 * count)`` points
  is drawn, and points are taken from it greedily, each the farthest from every told, in-flight
  and already chosen point; when the prefilter is active, among the pool points it predicts
  feasible (others only once none is left).

Injected (exploit / recover) points *displace* the tail of the optimizer's batch: the backend
is asked for all ``n`` as in explore, its last ones are dropped unevaluated (never told, like a
failure), and the injected points are handed to the backend with ``backend.suggest`` and told
with the batch, so the optimizer learns from them (see
:mod:`~huntflow.engine.optimize.backends`). Asking the whole batch keeps the optimizer's own sampling
in step with the batches (a CMA generation the size of the batch is not split, and no samples of
an old generation are carried into the next batch). The prefilter screens injected points too: an
exploit point it rejects (within the batch's cap) is redrawn and, never having been the
optimizer's, is not told; recover prefers predicted-feasible points instead of rejecting.
``Ask.decisions[i]["source"]`` says who made each candidate (``"optimizer"``, ``"exploit"``,
``"recover"``, with the exploit center and step or the recover distance under the same key),
and ``Ask.meta`` carries ``mode``, ``sources`` (counts) and the ``exploit`` / ``recover``
details (step, halvings, optimizer spread, displaced count; pool size).

What they buy is measured in benchmarks/RESULTS.md (``optimizer_quality.py --steer``): on its
short fixed-budget problems, steering with 0.25/0.25 everywhere did not help overall (exploit
alone helped on 5 of the 9 problems up to 10-D and cost on the 3 from 20-D up; recover alone
cost wherever it triggered), hence the defaults above.

Search spaces and duplicates: the backends work in the unit cube of the searched parameters;
:class:`~huntflow.engine.space.SearchSpace` decodes a point to the user's values (integers,
choices, fixed values) and snaps discrete coordinates to their bin's centre. A search candidate
already told, in flight or in the batch at its rung is never evaluated again
(:mod:`~huntflow.engine.optimize.dedup`: a told one's stored result is told to the optimizer,
and it is asked again; a rung with no new point left ends its search stage).

"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from huntflow.engine.optimize import dedup, evalindex
from huntflow.engine.optimize import prefilter as pf
from huntflow.engine.optimize import steer
from huntflow.engine.optimize import telling
from huntflow.engine.optimize.alm import alm_loss
from huntflow.engine.optimize.batch import FILL, Ask, Pending
from huntflow.engine.optimize.ladder import Stage, param_hash, rank_for_promotion
from huntflow.engine.optimize.modes import EXPLOIT, EXPLORE, RECOVER

if TYPE_CHECKING:
    from huntflow.engine.optimize.hunt import Hunt


def ask_search(hunt: "Hunt", stage: Stage, n: int, mode: str = EXPLORE) -> Ask | None:
    """A search batch of ``n`` new candidates (None, ending the stage, when the rung has no
    new point left: :mod:`~huntflow.engine.optimize.dedup`)."""
    cfg = hunt.prefilter
    index = evalindex.of(hunt)
    active = pf.active_for(len(hunt.evals), index.feasible_count, cfg)  # labels built only when it filters
    labels, train_x = np.zeros(0, dtype=bool), None
    if active:
        kept = index.points_and_labels()
        if kept is None:  # points of another shape somewhere: from the evaluations themselves
            kept = np.array([e["u"] for e in hunt.evals], dtype=float), np.array([e["feasible"] for e in hunt.evals], dtype=bool)
        train_x, labels = hunt.space.features(kept[0]), kept[1]
    cap = pf.rejection_cap(n, cfg)
    ask_id = hunt.next_ask_id  # taken by this ask below; seeds the injected points
    centers: list[int] = steer.incumbents(hunt, stage.rung) if mode == EXPLOIT else []
    share = {EXPLOIT: hunt.exploit_share if centers else 0.0, RECOVER: hunt.recover_share}.get(mode, 0.0)
    n_inject = int(math.floor(share * n + 0.5))
    known, in_flight = dedup.known(hunt.evals, hunt.pending_asks.values(), stage.rung, told=index.told.get(stage.rung, {}))
    batch: set[str] = set()

    def is_new(values: list, h: str) -> bool:
        return h not in known and h not in in_flight and h not in batch

    memo: dict[bytes, tuple[list, str]] = {}  # u's bytes -> (decoded values, hash): each point once

    def decoded(u: np.ndarray) -> tuple[list, str]:
        key = np.asarray(u, dtype=float).tobytes()
        if key not in memo:
            values = hunt.space.decode(u)
            memo[key] = (values, param_hash(values, hunt.names))
        return memo[key]

    accepted: list[tuple] = []  # (token, u, p_feasible, source, extra decision fields)
    rejected: list[dict] = []
    repeats = 0
    mo: list = []  # the multi-objective context for telling known results, made once
    while len(accepted) < n and repeats < dedup.DUPLICATE_DRAWS_PER_CANDIDATE * n:
        token, u = hunt.backend.ask()
        if hunt.space.discrete:
            u = hunt.space.canonical(u)
        values, h = decoded(u)
        if not is_new(values, h):
            repeats += 1
            hunt._tell_known(token, known.get(h), stage.rung, mo)
            continue
        p = float(pf.p_feasible(train_x, labels, hunt.space.features(u), cfg.k)[0]) if active else None
        if active and p < cfg.threshold and len(rejected) < cap:
            penalty = hunt._penalty()
            if penalty is not None:
                hunt.backend.tell(token, penalty, violation=math.inf)
            rejected.append({"params": hunt._candidate(values), "p_feasible": p, "told_loss": penalty, "source": "optimizer"})
            continue
        accepted.append((token, u, p, "optimizer", None))
        batch.add(h)
    if len(accepted) < n:  # the optimizer keeps asking known points: new ones drawn at random
        rng = np.random.default_rng([hunt.spec.seed, ask_id, 3])
        for u, values, h in dedup.fill(hunt.space, rng, n - len(accepted), is_new,
                                       lambda v: param_hash(v, hunt.names)):
            token, u = hunt.backend.suggest(u)
            accepted.append((token, u, None, FILL, None))
            batch.add(h)
            hunt.duplicates["fill"] += 1
    if not accepted:
        hunt.exhausted.append(stage.rung)
        hunt.prefilter_rejected += len(rejected)
        hunt._advance()
        return None
    if len(accepted) < n:  # the rung's space is exhausted: this batch ends the stage
        hunt.exhausted.append(stage.rung)
        n = len(accepted)
        n_inject = min(n_inject, n - 1)
    # injected points displace the tail of the optimizer's batch: the optimizer was asked a
    # whole batch (so a CMA generation is neither split nor mixed with stale samples) and is
    # told the injected points instead of its displaced ones, which are never evaluated
    asked_u = [a[1] for a in accepted]
    mode_meta: dict = {}
    points: list[tuple] = []
    taken = dedup.Taken(known, in_flight, batch)
    if n_inject and mode == EXPLOIT:
        points, mode_meta = steer.exploit_points(hunt, stage, centers, n_inject, asked_u, ask_id,
                                                 (active, train_x, labels, cap), rejected, taken)
    elif n_inject and mode == RECOVER:
        points, mode_meta = steer.recover_points(hunt, n_inject, [a[1] for a in accepted[: n - n_inject]], ask_id,
                                                 (active, train_x, labels),
                                                 taken)
    accepted = accepted[: n - len(points)]  # an injection short of new points keeps more of the batch
    if mode_meta:
        mode_meta["displaced"] = len(points)
    for u, p, source, extra in points:
        token, u = hunt.backend.suggest(u)  # told with the batch, so the optimizer learns from it
        accepted.append((token, u, p, source, extra))
    ask_id = hunt._new_id()
    weights = None
    if hunt.n_obj > 1 and hunt.scalarization == "chebyshev":
        rng = np.random.default_rng([hunt.spec.seed, ask_id])
        weights = [rng.dirichlet(np.ones(hunt.n_obj)).tolist() for _ in accepted]
    values = [list(decoded(u)[0]) for _, u, _, _, _ in accepted]
    hashes = [decoded(u)[1] for _, u, _, _, _ in accepted]
    decisions = []
    for i, (_, _, p, source, extra) in enumerate(accepted):
        d = {
            "optimizer": hunt.spec.optimizer_name,
            "source": source,
            "rung": stage.rung,
            "prefilter": {"active": active, "p_feasible": p, "threshold": cfg.threshold, "decision": "accept"},
        }
        if extra:
            d[source] = extra
        if weights is not None:
            d["weights"] = weights[i]
        decisions.append(d)
    sources = [a[3] for a in accepted]
    hunt.pending_asks[ask_id] = Pending(
        kind="search",
        fidelity=stage.rung,
        stage=hunt.stage_idx,
        tokens=[a[0] for a in accepted],
        u=[a[1] for a in accepted],
        values=values,
        hashes=hashes,
        weights=weights,
        parents=None,
        sources=sources,
    )
    stage_idx = hunt.stage_idx
    hunt.stage_asked += n
    if hunt.stage_asked >= stage.count or stage.rung in hunt.exhausted:
        hunt._advance()
    hunt.asked += n
    hunt.prefilter_rejected += len(rejected)
    meta = {
        "stage": stage_idx,
        "mode": mode,
        "sources": {s: sources.count(s) for s in ("optimizer", EXPLOIT, RECOVER, FILL) if s != FILL or FILL in sources},
        "alm": hunt.alm.as_dict(),
        "prefilter": {"active": active, "rejected": len(rejected), "cap": cap, "rejected_candidates": rejected},
    }
    if mode_meta:
        meta[mode] = mode_meta
    if repeats:
        meta["duplicates"] = {"asked": repeats, "filled": sources.count(FILL),
                              "exhausted": stage.rung in hunt.exhausted}
    return Ask(ask_id, "search", stage.rung, [hunt._candidate(v) for v in values], decisions, meta)


def tell_known(hunt: "Hunt", token: Any, index: int | None, rung: int, mo: list) -> None:
    """Tell the optimizer the stored result of a point it asked again (``index`` into
    ``evals``; None: in flight or in this batch, nothing to tell). See :mod:`.dedup`."""
    e = None if index is None else hunt.evals[index]
    if e is None or e["status"] == "failed" or hunt.duplicate_policy == "drop":
        hunt.duplicates["dropped"] += 1
        return
    hunt.duplicates["told"] += 1
    if e["status"] == "rejected":
        penalty = hunt._penalty()
        if penalty is not None:
            hunt.backend.tell(token, penalty, violation=math.inf)
        return
    if hunt.n_obj > 1 and not mo:
        mo.append(hunt._mo_context(rung, []))
    obj, g = e["objectives"], e["constraints"]
    if telling.in_feasibility_phase(hunt, rung):
        loss = sum(max(0.0, v) for v in g)  # what the feasibility phase tells (telling.py)
    else:
        loss = alm_loss(hunt._scalar(obj, None, mo[0] if mo else None), g, hunt.alm.lam, hunt.alm.rho)
    hunt.backend.tell(token, loss, objectives=obj, violation=sum(max(0.0, v) for v in g))


def ask_promotion(hunt: "Hunt", stage: Stage) -> Ask | None:
    target = stage.rung + 1
    done = {e["hash"] for e in hunt.evals if e["fidelity"] == target}
    done |= {h for p in hunt.pending_asks.values() if p.fidelity == target for h in p.hashes}
    pool: list[int] = []
    seen: set[str] = set()
    for i, e in enumerate(hunt.evals):
        if e["fidelity"] == stage.rung and e["status"] == "ok" and e["hash"] not in done and e["hash"] not in seen:
            seen.add(e["hash"])
            pool.append(i)
    if not pool:
        return None
    obj = np.array([hunt.evals[i]["objectives"] for i in pool], dtype=float)
    viol = np.array([sum(max(0.0, g) for g in hunt.evals[i]["constraints"]) for i in pool], dtype=float)
    order = rank_for_promotion(obj, viol)[: stage.count]
    chosen = [pool[j] for j in order]
    kind = "certification" if target == len(hunt.spec.fidelities) - 1 else "promotion"
    ask_id = hunt._new_id()
    values = [list(hunt.evals[i]["values"]) for i in chosen]
    decisions = [
        {
            "parent_eval": i,
            "parent_ask_id": hunt.evals[i]["ask_id"],
            "parent_hash": hunt.evals[i]["hash"],
            "from_fidelity": stage.rung,
            "rank": r,
            "parent_objectives": hunt.evals[i]["objectives"],
            "parent_constraints": hunt.evals[i]["constraints"],
            "parent_feasible": hunt.evals[i]["feasible"],
        }
        for r, i in enumerate(chosen)
    ]
    hunt.pending_asks[ask_id] = Pending(
        kind=kind,
        fidelity=target,
        stage=hunt.stage_idx,
        tokens=[None] * len(chosen),
        u=[hunt.evals[i]["u"] for i in chosen],
        values=values,
        hashes=[hunt.evals[i]["hash"] for i in chosen],
        weights=None,
        parents=chosen,
    )
    hunt.asked += len(chosen)
    meta = {"stage": hunt.stage_idx, "promote_top_k": stage.count, "distinct_available": len(pool)}
    return Ask(ask_id, kind, target, [hunt._candidate(v) for v in values], decisions, meta)
