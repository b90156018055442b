"""The hunt: a resumable ask/tell state machine over a campaign's whole search.

:class:`Hunt` is what the evolve stage drives. It walks the ladder plan
(:mod:`~huntflow.engine.optimize.ladder`): *search* stages ask the optimizer backend
(:mod:`~huntflow.engine.optimize.backends`) for batches of ``population`` candidates at a low
rung; *promotion* stages re-evaluate the top-K distinct candidates one rung higher; the last
promotion is the *certification* at the top rung (same params, never re-optimized).

What the optimizer is told (search asks only; promotion and certification evaluations are
recorded but not told, since the optimizer never asked for them at that rung):

* ``ok``, to the natively multi-objective ``nsga2`` backend (the default with several
  objectives, :mod:`~huntflow.engine.optimize.nsga2`): the objective vector and the total
  constraint violation ``sum(max(0, g_j))``; it ranks by constrained domination, no ALM.
* ``ok``, to every other backend: the augmented Lagrangian loss (:mod:`~huntflow.engine.optimize.alm`) of the
  objective. With several objectives the objective is first scalarized. Default
  (``optimizer.options.scalarization: hypervolume``): :func:`~huntflow.engine.optimize.pareto.front_loss`
  against the feasible front of the same rung told before this batch, in the box spanned by the
  observed ideal and the worse of the observed nadir and the reference point (minus the
  hypervolume improvement for a non-dominated point, the missing additive epsilon for a
  dominated one). Option ``chebyshev``: an augmented Chebyshev function with random weights drawn
  per candidate from a Dirichlet(1, ..., 1) with an RNG seeded by ``(spec.seed, ask_id)``
  (ParEGO style; the weights are recorded in ``Ask.decisions``).
* ``rejected`` (review found it untrustworthy) and prefilter rejections: infeasible. They are
  told a penalty derived from the ALM losses observed so far, strictly worse than all of them:
  ``L_max + max(L_max - L_min, 1)``. Before any loss has been observed they are not told.
* ``failed``: not told at all (no made-up loss). nevergrad's batch optimizers do not re-ask a
  point they were not told about (CMA updates on the candidates it does get, DE's population
  slot is re-asked from a new mutation), so a failure costs one evaluation, not a loop. Failures
  are recorded with their category and teach the prefilter where not to go.
* ``ok`` with a non-finite objective or constraint value is recorded as ``failed`` with the
  category ``nonfinite``.

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

Determinism: every random choice comes from ``spec.seed`` (the backend's RNG, the Halton
permutations, the per-ask weight RNG, the exploit and recover RNGs seeded by
``(spec.seed, ask_id)``), and the state holds no set or dict whose iteration order depends on
hashing, so ``Hunt.loads(h.dumps())`` asks exactly what ``h`` would have for any sequence of
modes. Checkpoints written before modes existed load with the mode state at its defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from huntflow.engine.optimize import checkpoint, dedup
from huntflow.engine.optimize import prefilter as pf
from huntflow.engine.optimize import steer
from huntflow.engine.optimize.alm import AlmState, alm_loss, alm_update
from huntflow.engine.optimize.backends import make_backend
from huntflow.engine.optimize.ladder import Stage, param_hash, plan_ladder, rank_for_promotion
from huntflow.engine.optimize.modes import EXPLOIT, EXPLORE, MODES, RECOVER
from huntflow.engine.optimize.options import duplicate_policy as _duplicate_policy
from huntflow.engine.optimize.options import share as _share
from huntflow.engine.optimize.options import size as _size
from huntflow.engine.optimize.pareto import chebyshev, front_loss, nondominated_mask
from huntflow.engine.optimize.report import reference as report_reference
from huntflow.engine.optimize.report import summarize, tell_hypervolume
from huntflow.engine.space import SearchSpace
from huntflow.engine.spec import CampaignSpec
from huntflow.errors import CheckpointError

CHECKPOINT_VERSION = 1
STATUSES = ("ok", "failed", "rejected")

EXPLOIT_SHARE = 0.25
EXPLOIT_MAX_DIM = 10


def default_shares(dim: int, n_obj: int) -> tuple[float, float]:
    """(exploit_share, recover_share) when the spec's options do not set them.

    From benchmarks/RESULTS.md (``optimizer_quality.py --steer``): exploit helped on 5 of the 9
    single-objective problems up to 10-D and cost on every one from 20-D up and on ZDT1;
    recover cost wherever it triggered. So exploit is on by default for one objective up to
    ``EXPLOIT_MAX_DIM`` parameters, and recover is opt-in.
    """
    return (EXPLOIT_SHARE if n_obj == 1 and dim <= EXPLOIT_MAX_DIM else 0.0), 0.0
FILL = "fill"  # source of the new points a batch is filled with when the optimizer repeats known ones


@dataclass(frozen=True)
class Ask:
    """One batch to evaluate.

    ask_id: sequence number, unique within the hunt.
    kind: ``"search"`` | ``"promotion"`` | ``"certification"``.
    fidelity: rung index into ``spec.fidelities``.
    candidates: param name -> value (``spec.space`` order, fixed ones included), all within
        bounds: floats, ints for integer parameters, the choice for categorical ones.
    decisions: per-candidate JSON-able metadata (same length as ``candidates``).
    meta: generation-level JSON-able metadata.
    """

    ask_id: int
    kind: str
    fidelity: int
    candidates: list[dict[str, Any]]
    decisions: list[dict]
    meta: dict


@dataclass(frozen=True)
class Outcome:
    """The reviewed result of one candidate.

    status: ``"ok"`` | ``"failed"`` | ``"rejected"`` (rejected = untrustworthy, infeasible).
    metrics: raw model metrics (may be empty when failed).
    failure_category: why it failed (``"blowup"``, ``"timeout"``, ...).
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    failure_category: str | None = None


@dataclass
class _Pending:
    kind: str
    fidelity: int
    stage: int
    tokens: list
    u: list[np.ndarray]
    values: list[list[Any]]
    hashes: list[str]
    weights: list[list[float]] | None
    parents: list[int] | None
    sources: list[str] | None = None  # search asks: "optimizer" | "exploit" | "recover" per candidate


class Hunt:
    """A campaign's optimizer state: ask batches, tell reviewed outcomes, checkpoint anywhere."""

    def __init__(self, spec: CampaignSpec):
        """Use :meth:`start` (or :meth:`loads`); this sets up the state for ``spec``.

        Raises:
            ValueError: the budget cannot pay for the fidelity ladder, or bad prefilter options.
        """
        self.spec = spec
        self.names = spec.param_names
        self.space = SearchSpace.of(spec)
        self.n_obj = len(spec.objectives)
        self.total = int(spec.budget.evaluations)
        self.stages: list[Stage] = plan_ladder(
            self.total, [f.budget for f in spec.fidelities], [f.promote_top_k for f in spec.fidelities]
        )
        self.scalarization = str(spec.optimizer.options.get("scalarization", "hypervolume"))
        if self.scalarization not in ("hypervolume", "chebyshev"):
            raise ValueError(f"optimizer.options.scalarization must be 'hypervolume' or 'chebyshev', got {self.scalarization!r}")
        self.prefilter = pf.PrefilterConfig.from_options(dict(spec.optimizer.options))
        exploit, recover = default_shares(self.space.dim, self.n_obj)
        self.exploit_share = _share(spec.optimizer.options, "exploit_share", exploit)
        self.recover_share = _share(spec.optimizer.options, "recover_share", recover)
        search_budget = sum(s.count for s in self.stages if s.kind == "search")
        self.backend = make_backend(
            spec.optimizer_name, self.space.dim, spec.seed, max(search_budget, 1), spec.optimizer.population,
            size=_size(spec.optimizer.options, "nsga2_size", max(2, spec.optimizer.population))
            if spec.optimizer_name == "nsga2" else None,
        )
        self.alm = AlmState.initial(len(spec.constraint_names))
        self.stage_idx = 0
        self.stage_asked = 0
        self.next_ask_id = 0
        self.asked = 0
        self.pending_asks: dict[int, _Pending] = {}
        self.evals: list[dict] = []
        self.loss_range: tuple[float, float] | None = None
        self.prefilter_rejected = 0
        self.hv_history: list[dict] = []
        self.exploit_anchor: tuple[int, ...] | None = None  # incumbent(s) of the last exploit ask
        self.exploit_k = 0  # exploit asks since the incumbent last changed (step-size halvings)
        self.duplicates = {"told": 0, "dropped": 0, "fill": 0}  # see dedup: asks of known points
        self.exhausted: list[int] = []  # rungs whose search found no new point to ask
        self.duplicate_policy = _duplicate_policy(spec.optimizer.options)

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def start(cls, spec: CampaignSpec) -> "Hunt":
        """A fresh hunt for ``spec`` (all randomness from ``spec.seed``).

        Raises:
            ValueError: the budget cannot pay for the fidelity ladder, or bad optimizer options.
        """
        return cls(spec)

    def dumps(self, *, key: bytes | None = None) -> bytes:
        """The checkpoint of the whole state (backend, RNGs, pending asks, history), compressed
        and signed with ``key`` (:mod:`~huntflow.engine.optimize.checkpoint`). Compression
        matters: NGOpt's archive grows with every tell (~1.8 MB raw after ~1000 tells of a 4-D
        problem, ~0.45 MB compressed) and one checkpoint is stored with every planned generation."""
        return checkpoint.dumps({"version": CHECKPOINT_VERSION, "state": self.__dict__}, key=key)

    @classmethod
    def loads(cls, data: bytes, *, key: bytes | None = None) -> "Hunt":
        """Restore a hunt from :meth:`dumps` (the same ``key``).

        Raises:
            CheckpointError: (a ``ValueError``) the bytes fail authentication, are not a
                checkpoint, or are of an unknown version.
        """
        blob = checkpoint.loads(data, key=key)
        if not isinstance(blob, dict) or blob.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError("not a hunt checkpoint of a known version")
        hunt = cls.__new__(cls)
        hunt.__dict__.update(blob["state"])
        hunt._upgrade()
        return hunt

    def _upgrade(self) -> None:
        """Defaults for state added after a checkpoint was written (the modes)."""
        options = self.spec.optimizer.options
        self.__dict__.setdefault("space", SearchSpace.of(self.spec))
        exploit, recover = default_shares(self.space.dim, len(self.spec.objectives))
        if "exploit_share" not in self.__dict__:
            self.exploit_share = _share(options, "exploit_share", exploit)
        if "recover_share" not in self.__dict__:
            self.recover_share = _share(options, "recover_share", recover)
        self.__dict__.setdefault("exploit_anchor", None)
        self.__dict__.setdefault("exploit_k", 0)
        self.__dict__.setdefault("duplicates", {"told": 0, "dropped": 0, "fill": 0})
        self.__dict__.setdefault("exhausted", [])
        self.__dict__.setdefault("duplicate_policy", _duplicate_policy(options))

    @property
    def pending(self) -> list[int]:
        """Asked but not yet told ask ids, ascending."""
        return sorted(self.pending_asks)

    def is_finished(self) -> bool:
        """True when no more asks will ever come (plan walked and nothing in flight)."""
        return self.stage_idx >= len(self.stages) and not self.pending_asks

    def extend_budget(self, evaluations: int) -> None:
        """Raise the total budget by ``evaluations`` (a finished hunt resumes asking).

        With one rung the extra evaluations are searched. With a ladder they go to the last
        search rung; if its certification was already asked, a new round follows: search
        ``evaluations - K`` more (when positive), then certify up to ``K`` best candidates not
        yet certified, ``K`` being the last search rung's promotion size.

        Raises:
            ValueError: ``evaluations`` is not a positive integer.
        """
        n = int(evaluations)
        if n <= 0 or n != evaluations:
            raise ValueError(f"evaluations must be a positive integer, got {evaluations!r}")
        self.total += n
        self.backend.add_budget(n)
        last = len(self.stages) - 1
        if len(self.spec.fidelities) == 1:
            if self.stage_idx <= last:
                self.stages[last] = Stage("search", 0, self.stages[last].count + n)
            else:
                self.stages.append(Stage("search", 0, n))
            return
        top_search = len(self.spec.fidelities) - 2
        k = self.stages[last].count
        if self.stage_idx < last:
            s = self.stages[last - 1]
            self.stages[last - 1] = Stage("search", s.rung, s.count + n)
        elif self.stage_idx == last:
            self.stages.insert(last, Stage("search", top_search, n))
        else:
            if n > k:
                self.stages.append(Stage("search", top_search, n - k))
            self.stages.append(Stage("promote", top_search, min(k, n)))

    # ---------------------------------------------------------------- ask
    def ask(self, mode: str = EXPLORE) -> Ask | None:
        """The next batch, or None when nothing can be asked now.

        Args:
            mode: the campaign mode (:mod:`~huntflow.engine.optimize.modes`): ``"explore"``
                (the whole search batch from the optimizer), ``"exploit"`` (a share is local
                refinement around the incumbent) or ``"recover"`` (a share is space-filling
                diversification). It shapes search asks only; promotion and certification asks
                are the same in every mode.

        None means the budget is spent, or a promotion waits for in-flight asks of its rung.

        Raises:
            ValueError: unknown ``mode``.
        """
        mode = str(getattr(mode, "value", mode))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        while self.stage_idx < len(self.stages):
            stage = self.stages[self.stage_idx]
            if stage.kind == "search":
                # a search stage is left as soon as its last batch is asked
                remaining = stage.count - self.stage_asked
                if remaining > 0:
                    ask = self._ask_search(stage, min(self.spec.optimizer.population, remaining), mode)
                    if ask is not None:
                        return ask
                    continue  # nothing new to ask at this rung: the stage has ended
                self._advance()
                continue
            if any(p.fidelity == stage.rung for p in self.pending_asks.values()):
                return None
            ask = self._ask_promotion(stage)
            self._advance()
            if ask is not None:
                return ask
        return None

    def _advance(self) -> None:
        self.stage_idx += 1
        self.stage_asked = 0

    def _new_id(self) -> int:
        ask_id = self.next_ask_id
        self.next_ask_id += 1
        return ask_id

    def _candidate(self, values: list[Any]) -> dict[str, Any]:
        return {n: (float(v) if isinstance(v, (float, np.floating)) else v) for n, v in zip(self.names, values)}

    def _ask_search(self, stage: Stage, n: int, mode: str = EXPLORE) -> Ask | None:
        """A search batch of ``n`` new candidates (None, ending the stage, when the rung has no
        new point left: :mod:`~huntflow.engine.optimize.dedup`)."""
        cfg = self.prefilter
        told = [e for e in self.evals]
        labels = np.array([e["feasible"] for e in told], dtype=bool)
        active = pf.is_active(labels, cfg)
        train_x = self.space.features(np.array([e["u"] for e in told])) if active else None
        cap = pf.rejection_cap(n, cfg)
        ask_id = self.next_ask_id  # taken by this ask below; seeds the injected points
        centers: list[int] = steer.incumbents(self, stage.rung) if mode == EXPLOIT else []
        share = {EXPLOIT: self.exploit_share if centers else 0.0, RECOVER: self.recover_share}.get(mode, 0.0)
        n_inject = int(math.floor(share * n + 0.5))
        known, in_flight = dedup.known(self.evals, self.pending_asks.values(), stage.rung)
        batch: set[str] = set()

        def is_new(values: list, h: str) -> bool:
            return h not in known and h not in in_flight and h not in batch

        accepted: list[tuple] = []  # (token, u, p_feasible, source, extra decision fields)
        rejected: list[dict] = []
        repeats = 0
        mo: list = []  # the multi-objective context for telling known results, made once
        while len(accepted) < n and repeats < dedup.DUPLICATE_DRAWS_PER_CANDIDATE * n:
            token, u = self.backend.ask()
            if self.space.discrete:
                u = self.space.canonical(u)
            values = self.space.decode(u)
            h = param_hash(values, self.names)
            if not is_new(values, h):
                repeats += 1
                self._tell_known(token, known.get(h), stage.rung, mo)
                continue
            p = float(pf.p_feasible(train_x, labels, self.space.features(u), cfg.k)[0]) if active else None
            if active and p < cfg.threshold and len(rejected) < cap:
                penalty = self._penalty()
                if penalty is not None:
                    self.backend.tell(token, penalty, violation=math.inf)
                rejected.append({"params": self._candidate(values), "p_feasible": p, "told_loss": penalty, "source": "optimizer"})
                continue
            accepted.append((token, u, p, "optimizer", None))
            batch.add(h)
        if len(accepted) < n:  # the optimizer keeps asking known points: new ones drawn at random
            rng = np.random.default_rng([self.spec.seed, ask_id, 3])
            for u, values, h in dedup.fill(self.space, rng, n - len(accepted), is_new,
                                           lambda v: param_hash(v, self.names)):
                token, u = self.backend.suggest(u)
                accepted.append((token, u, None, FILL, None))
                batch.add(h)
                self.duplicates["fill"] += 1
        if not accepted:
            self.exhausted.append(stage.rung)
            self.prefilter_rejected += len(rejected)
            self._advance()
            return None
        if len(accepted) < n:  # the rung's space is exhausted: this batch ends the stage
            self.exhausted.append(stage.rung)
            n = len(accepted)
            n_inject = min(n_inject, n - 1)
        # injected points displace the tail of the optimizer's batch: the optimizer was asked a
        # whole batch (so a CMA generation is neither split nor mixed with stale samples) and is
        # told the injected points instead of its displaced ones, which are never evaluated
        asked_u = [a[1] for a in accepted]
        mode_meta: dict = {}
        points: list[tuple] = []
        taken = known.keys() | in_flight | batch
        if n_inject and mode == EXPLOIT:
            points, mode_meta = steer.exploit_points(self, stage, centers, n_inject, asked_u, ask_id,
                                                     (active, train_x, labels, cap), rejected, taken)
        elif n_inject and mode == RECOVER:
            points, mode_meta = steer.recover_points(self, n_inject, [a[1] for a in accepted[: n - n_inject]], ask_id,
                                                     (active, train_x, labels),
                                                     taken)
        accepted = accepted[: n - len(points)]  # an injection short of new points keeps more of the batch
        if mode_meta:
            mode_meta["displaced"] = len(points)
        for u, p, source, extra in points:
            token, u = self.backend.suggest(u)  # told with the batch, so the optimizer learns from it
            accepted.append((token, u, p, source, extra))
        ask_id = self._new_id()
        weights = None
        if self.n_obj > 1 and self.scalarization == "chebyshev":
            rng = np.random.default_rng([self.spec.seed, ask_id])
            weights = [rng.dirichlet(np.ones(self.n_obj)).tolist() for _ in accepted]
        values = [self.space.decode(u) for _, u, _, _, _ in accepted]
        decisions = []
        for i, (_, _, p, source, extra) in enumerate(accepted):
            d = {
                "optimizer": self.spec.optimizer_name,
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
        self.pending_asks[ask_id] = _Pending(
            kind="search",
            fidelity=stage.rung,
            stage=self.stage_idx,
            tokens=[a[0] for a in accepted],
            u=[a[1] for a in accepted],
            values=values,
            hashes=[param_hash(v, self.names) for v in values],
            weights=weights,
            parents=None,
            sources=sources,
        )
        stage_idx = self.stage_idx
        self.stage_asked += n
        if self.stage_asked >= stage.count or stage.rung in self.exhausted:
            self._advance()
        self.asked += n
        self.prefilter_rejected += len(rejected)
        meta = {
            "stage": stage_idx,
            "mode": mode,
            "sources": {s: sources.count(s) for s in ("optimizer", EXPLOIT, RECOVER, FILL) if s != FILL or FILL in sources},
            "alm": self.alm.as_dict(),
            "prefilter": {"active": active, "rejected": len(rejected), "cap": cap, "rejected_candidates": rejected},
        }
        if mode_meta:
            meta[mode] = mode_meta
        if repeats:
            meta["duplicates"] = {"asked": repeats, "filled": sources.count(FILL),
                                  "exhausted": stage.rung in self.exhausted}
        return Ask(ask_id, "search", stage.rung, [self._candidate(v) for v in values], decisions, meta)

    def _tell_known(self, token: Any, index: int | None, rung: int, mo: list) -> None:
        """Tell the optimizer the stored result of a point it asked again (``index`` into
        ``evals``; None: in flight or in this batch, nothing to tell). See :mod:`.dedup`."""
        e = None if index is None else self.evals[index]
        if e is None or e["status"] == "failed" or self.duplicate_policy == "drop":
            self.duplicates["dropped"] += 1
            return
        self.duplicates["told"] += 1
        if e["status"] == "rejected":
            penalty = self._penalty()
            if penalty is not None:
                self.backend.tell(token, penalty, violation=math.inf)
            return
        if self.n_obj > 1 and not mo:
            mo.append(self._mo_context(rung, []))
        obj, g = e["objectives"], e["constraints"]
        loss = alm_loss(self._scalar(obj, None, mo[0] if mo else None), g, self.alm.lam, self.alm.rho)
        self.backend.tell(token, loss, objectives=obj, violation=sum(max(0.0, v) for v in g))

    # ---------------------------------------------------------------- modes
    def _ask_promotion(self, stage: Stage) -> Ask | None:
        target = stage.rung + 1
        done = {e["hash"] for e in self.evals if e["fidelity"] == target}
        done |= {h for p in self.pending_asks.values() if p.fidelity == target for h in p.hashes}
        pool: list[int] = []
        seen: set[str] = set()
        for i, e in enumerate(self.evals):
            if e["fidelity"] == stage.rung and e["status"] == "ok" and e["hash"] not in done and e["hash"] not in seen:
                seen.add(e["hash"])
                pool.append(i)
        if not pool:
            return None
        obj = np.array([self.evals[i]["objectives"] for i in pool], dtype=float)
        viol = np.array([sum(max(0.0, g) for g in self.evals[i]["constraints"]) for i in pool], dtype=float)
        order = rank_for_promotion(obj, viol)[: stage.count]
        chosen = [pool[j] for j in order]
        kind = "certification" if target == len(self.spec.fidelities) - 1 else "promotion"
        ask_id = self._new_id()
        values = [list(self.evals[i]["values"]) for i in chosen]
        decisions = [
            {
                "parent_eval": i,
                "parent_ask_id": self.evals[i]["ask_id"],
                "parent_hash": self.evals[i]["hash"],
                "from_fidelity": stage.rung,
                "rank": r,
                "parent_objectives": self.evals[i]["objectives"],
                "parent_constraints": self.evals[i]["constraints"],
                "parent_feasible": self.evals[i]["feasible"],
            }
            for r, i in enumerate(chosen)
        ]
        self.pending_asks[ask_id] = _Pending(
            kind=kind,
            fidelity=target,
            stage=self.stage_idx,
            tokens=[None] * len(chosen),
            u=[self.evals[i]["u"] for i in chosen],
            values=values,
            hashes=[self.evals[i]["hash"] for i in chosen],
            weights=None,
            parents=chosen,
        )
        self.asked += len(chosen)
        meta = {"stage": self.stage_idx, "promote_top_k": stage.count, "distinct_available": len(pool)}
        return Ask(ask_id, kind, target, [self._candidate(v) for v in values], decisions, meta)

    # ---------------------------------------------------------------- tell
    def _penalty(self) -> float | None:
        if self.loss_range is None:
            return None
        lo, hi = self.loss_range
        return hi + max(hi - lo, 1.0)

    def _parse(self, outcome: Outcome) -> tuple[str, list[float] | None, list[float] | None, str | None]:
        if outcome.status not in STATUSES:
            raise ValueError(f"outcome status must be one of {STATUSES}, got {outcome.status!r}")
        if outcome.status == "failed":
            return "failed", None, None, outcome.failure_category or "unknown"
        needed = [o.metric for o in self.spec.objectives] + [c.metric for c in self.spec.constraints]
        missing = [m for m in needed if m not in outcome.metrics]
        if missing and outcome.status == "ok":
            raise ValueError(f"an ok outcome lacks metrics {missing}")
        if missing:
            return "rejected", None, None, outcome.failure_category
        obj = self.spec.objective_values(outcome.metrics)
        g = self.spec.constraint_values(outcome.metrics)
        if outcome.status == "ok" and not all(math.isfinite(v) for v in obj + g):
            return "failed", None, None, "nonfinite"
        return outcome.status, obj, g, outcome.failure_category

    def _mo_context(self, fidelity: int, batch: list[list[float]]) -> dict:
        """Front (feasible, this rung, told before this batch) and normalization box."""
        prior = [e for e in self.evals if e["fidelity"] == fidelity and e["status"] == "ok"]
        feas = np.array([e["objectives"] for e in prior if e["feasible"]], dtype=float).reshape(-1, self.n_obj)
        front = feas[nondominated_mask(feas)] if feas.shape[0] else feas
        seen = np.array([e["objectives"] for e in prior] + list(batch), dtype=float).reshape(-1, self.n_obj)
        ideal = seen.min(axis=0) if seen.shape[0] else np.zeros(self.n_obj)
        upper = seen.max(axis=0) if seen.shape[0] else np.ones(self.n_obj)
        ref = report_reference(self)
        if ref is not None:
            upper = np.maximum(upper, ref)
        upper = upper + 1e-9 * np.maximum(1.0, np.abs(upper))
        return {"front": front, "ideal": ideal, "upper": upper}

    def _scalar(self, obj: list[float], weights: list[float] | None, mo: dict | None) -> float:
        if self.n_obj == 1:
            return obj[0]
        if self.scalarization == "chebyshev":
            w = np.full(self.n_obj, 1.0 / self.n_obj) if weights is None else np.asarray(weights)
            scale = np.maximum(mo["upper"] - mo["ideal"], 1e-12)
            return chebyshev(np.asarray(obj), w, mo["ideal"], scale)
        return front_loss(np.asarray(obj), mo["front"], mo["upper"], mo["ideal"])

    def tell(self, ask_id: int, outcomes: list[Outcome]) -> list[dict]:
        """Record the reviewed outcomes of an ask and update the optimizer.

        Args:
            ask_id: a pending ask's id.
            outcomes: one per candidate, in the ask's order.

        Returns:
            One JSON-able annotation per outcome (objectives, objective, constraints, feasible,
            alm_loss, alm_lambda, alm_rho, alm_outer, param_hash, status; ``delta`` against the
            parent rung for promotions; ``hypervolume`` of the rung's front with several
            objectives).

        Raises:
            KeyError: ``ask_id`` is not pending.
            ValueError: wrong number of outcomes, an unknown status, or an ok outcome lacking
                an objective or constraint metric. Nothing is changed when raised.
        """
        if ask_id not in self.pending_asks:
            raise KeyError(f"ask {ask_id} is not pending (already told or never asked)")
        p = self.pending_asks[ask_id]
        if len(outcomes) != len(p.values):
            raise ValueError(f"ask {ask_id} has {len(p.values)} candidates, got {len(outcomes)} outcomes")
        parsed = [self._parse(o) for o in outcomes]
        del self.pending_asks[ask_id]

        mo = self._mo_context(p.fidelity, [obj for st, obj, _, _ in parsed if st == "ok"]) if self.n_obj > 1 else None
        state = self.alm
        notes: list[dict] = []
        losses: list[float | None] = []
        for i, (status, obj, g, category) in enumerate(parsed):
            feasible = status == "ok" and all(v <= 0 for v in g)
            loss = None
            if status == "ok":
                w = p.weights[i] if p.weights is not None else None
                loss = alm_loss(self._scalar(obj, w, mo), g, state.lam, state.rho)
            losses.append(loss)
            record = {
                "ask_id": ask_id,
                "kind": p.kind,
                "fidelity": p.fidelity,
                "u": p.u[i],
                "values": p.values[i],
                "hash": p.hashes[i],
                "status": status,
                "failure_category": category,
                "objectives": obj,
                "constraints": g,
                "feasible": feasible,
                "alm_loss": loss,
                "parent": p.parents[i] if p.parents is not None else None,
                "source": p.sources[i] if p.sources is not None else None,
            }
            self.evals.append(record)
            note = {
                "status": status,
                "failure_category": category,
                "objectives": obj,
                "objective": None if obj is None else self._user_sign(obj)[0],
                "constraints": g,
                "feasible": feasible,
                "alm_loss": loss,
                "alm_lambda": list(state.lam),
                "alm_rho": state.rho,
                "alm_outer": state.outer,
                "param_hash": p.hashes[i],
                "kind": p.kind,
                "fidelity": p.fidelity,
            }
            if p.parents is not None:
                note["delta"] = self._delta(p.parents[i], obj, g)
            notes.append(note)

        if p.kind == "search":
            for i, (status, obj, g, _) in enumerate(parsed):
                if status == "ok":
                    lo, hi = self.loss_range or (losses[i], losses[i])
                    self.loss_range = (min(lo, losses[i]), max(hi, losses[i]))
                    self.backend.tell(p.tokens[i], losses[i], objectives=obj, violation=sum(max(0.0, v) for v in g))
            penalty = self._penalty()
            if penalty is not None:
                for i, (status, _, _, _) in enumerate(parsed):
                    if status == "rejected":
                        self.backend.tell(p.tokens[i], penalty, violation=math.inf)
            gs = [g for status, _, g, _ in parsed if status == "ok"]
            if gs:
                self.alm = alm_update(self.alm, np.mean(np.asarray(gs, dtype=float).reshape(len(gs), -1), axis=0))

        if self.n_obj > 1:
            hv = tell_hypervolume(self, p.fidelity)
            self.hv_history.append({"ask_id": ask_id, "fidelity": p.fidelity, "evaluations_told": len(self.evals), "hypervolume": hv})
            for note in notes:
                note["hypervolume"] = hv
        return notes

    def _user_sign(self, obj: list[float]) -> list[float]:
        return [v if o.goal == "minimize" else -v for v, o in zip(obj, self.spec.objectives)]

    def _delta(self, parent: int, obj: list[float] | None, g: list[float] | None) -> dict:
        e = self.evals[parent]
        out = {"from_fidelity": e["fidelity"], "parent_eval": parent, "objectives": None, "constraints": None}
        if obj is not None and e["objectives"] is not None:
            out["objectives"] = [hi - lo for hi, lo in zip(self._user_sign(obj), self._user_sign(e["objectives"]))]
        if g is not None and e["constraints"] is not None:
            out["constraints"] = [hi - lo for hi, lo in zip(g, e["constraints"])]
        return out

    # ---------------------------------------------------------------- summary
    def summary(self) -> dict:
        """JSON-able progress: best (certified or not), certified list, front, ALM state, plan.

        See :func:`huntflow.engine.optimize.report.summarize` for the fields.
        """
        return summarize(self)
