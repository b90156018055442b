"""The hunt: a resumable ask/tell state machine over a campaign's whole search.

:class:`Hunt` is what the evolve stage drives. It walks the ladder plan
(:mod:`~huntflow.engine.optimize.ladder`): *search* stages ask the optimizer backend
(:mod:`~huntflow.engine.optimize.backends`) for batches of ``population`` candidates at a low
rung; *promotion* stages re-evaluate the top-K distinct candidates one rung higher; the last
promotion is the *certification* at the top rung (same params, never re-optimized).

What the optimizer is told is in :mod:`~huntflow.engine.optimize.telling`; how search batches
are asked (prefilter, modes, injected points, duplicates) and promotions chosen, in
:mod:`~huntflow.engine.optimize.search`; :mod:`~huntflow.engine.optimize.batch` holds
:class:`Ask` and :class:`Outcome`.

Determinism: every random choice comes from ``spec.seed`` (the backend's RNG, the Halton
permutations, the per-ask weight RNG, the exploit and recover RNGs seeded by
``(spec.seed, ask_id)``), and the state holds no set or dict whose iteration order depends on
hashing, so ``Hunt.loads(h.dumps())`` asks exactly what ``h`` would have for any sequence of
modes. Checkpoints written before modes existed load with the mode state at its defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from huntflow.engine.optimize import checkpoint, evalindex, search, telling
from huntflow.engine.optimize import prefilter as pf
from huntflow.engine.optimize.alm import AlmState
from huntflow.engine.optimize.backends import make_backend
from huntflow.engine.optimize.batch import (EXPLOIT_MAX_DIM, EXPLOIT_SHARE, FILL, STATUSES, Ask, Outcome,
                                            default_shares)
from huntflow.engine.optimize.batch import Pending as _Pending  # checkpoints pickle it by this name
from huntflow.engine.optimize.ladder import Stage, plan_ladder
from huntflow.engine.optimize.modes import EXPLORE, MODES
from huntflow.engine.optimize.options import duplicate_policy as _duplicate_policy
from huntflow.engine.optimize.options import share as _share
from huntflow.engine.optimize.options import size as _size
from huntflow.engine.optimize.report import summarize
from huntflow.engine.space import SearchSpace
from huntflow.engine.spec import CampaignSpec
from huntflow.errors import CheckpointError

__all__ = ["Ask", "EXPLOIT_MAX_DIM", "EXPLOIT_SHARE", "FILL", "Hunt", "Outcome", "STATUSES", "default_shares"]

CHECKPOINT_VERSION = 2
"""2: the told evaluations' unit-cube points (``evals[i]["u"]``) travel as one (n, d) array beside
the state instead of n small arrays, which were most of the evaluations' pickling and unpickling
time (benchmarks/RESULTS.md, "Seventh issue-13 session"). Version 1 checkpoints still load, and
a hunt whose points are not all alike (1-D float64 of one length) is still written as one."""
READABLE_VERSIONS = (1, 2)


def _stacked(evals: list[dict]) -> np.ndarray | None:
    """The evaluations' points as one (n, d) float64 array; None when there are none or they are
    not all 1-D float64 arrays of one length (such a hunt is checkpointed as version 1)."""
    us = [e.get("u") for e in evals]
    if not us or any(type(u) is not np.ndarray for u in us):
        return None
    if us[0].ndim != 1 or {(u.dtype, u.shape) for u in us} != {(np.dtype(np.float64), us[0].shape)}:
        return None
    return np.stack(us)


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
        self.feasibility_first = spec.optimizer.options.get("feasibility_first") is True  # see telling

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
        problem, ~0.45 MB compressed); evolve writes one every few commits and journals the
        commits between (:mod:`~huntflow.engine.optimize.journal`)."""
        state = {k: v for k, v in self.__dict__.items() if k != evalindex.ATTRIBUTE}  # derived: rebuilt on load
        points = _stacked(self.evals)
        if points is None:
            return checkpoint.dumps({"version": 1, "state": state}, key=key)
        saved = [e.pop("u") for e in self.evals]  # pickled once, as ``points``; back right after
        try:
            return checkpoint.dumps({"version": CHECKPOINT_VERSION, "state": state, "points": points}, key=key)
        finally:
            for e, u in zip(self.evals, saved):
                e["u"] = u

    @classmethod
    def loads(cls, data: bytes, *, key: bytes | None = None) -> "Hunt":
        """Restore a hunt from :meth:`dumps` (the same ``key``).

        Raises:
            CheckpointError: (a ``ValueError``) the bytes fail authentication, are not a
                checkpoint, or are of an unknown version.
        """
        blob = checkpoint.loads(data, key=key)
        if not isinstance(blob, dict) or blob.get("version") not in READABLE_VERSIONS:
            raise CheckpointError("not a hunt checkpoint of a known version")
        hunt = cls.__new__(cls)
        hunt.__dict__.update(blob["state"])
        points = blob.get("points")
        if points is not None:  # version 2: each evaluation's point, a row of one array
            if len(points) != len(hunt.evals):
                raise CheckpointError("the hunt checkpoint's points do not match its evaluations")
            for e, u in zip(hunt.evals, points):
                e["u"] = u
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
        self.__dict__.setdefault("feasibility_first", options.get("feasibility_first") is True)

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
        return search.ask_search(self, stage, n, mode)

    def _tell_known(self, token: Any, index: int | None, rung: int, mo: list) -> None:
        search.tell_known(self, token, index, rung, mo)

    def _ask_promotion(self, stage: Stage) -> Ask | None:
        return search.ask_promotion(self, stage)

    # ---------------------------------------------------------------- tell
    def _penalty(self) -> float | None:
        return telling.penalty(self)

    def _parse(self, outcome: Outcome) -> tuple[str, list[float] | None, list[float] | None, str | None]:
        return telling.parse(self, outcome)

    def _mo_context(self, fidelity: int, batch: list[list[float]]) -> dict:
        return telling.mo_context(self, fidelity, batch)

    def _scalar(self, obj: list[float], weights: list[float] | None, mo: dict | None) -> float:
        return telling.scalar(self, obj, weights, mo)

    def tell(self, ask_id: int, outcomes: list[Outcome]) -> list[dict]:
        """Record the reviewed outcomes of an ask and update the optimizer
        (:func:`~huntflow.engine.optimize.telling.tell`: annotations per outcome; ``KeyError``
        when ``ask_id`` is not pending, ``ValueError`` for bad outcomes, nothing changed then)."""
        return telling.tell(self, ask_id, outcomes)

    def _user_sign(self, obj: list[float]) -> list[float]:
        return telling.user_sign(self, obj)

    def _delta(self, parent: int, obj: list[float] | None, g: list[float] | None) -> dict:
        return telling.delta(self, parent, obj, g)

    # ---------------------------------------------------------------- summary
    def summary(self) -> dict:
        """JSON-able progress: best (certified or not), certified list, front, ALM state, plan.

        See :func:`huntflow.engine.optimize.report.summarize` for the fields.
        """
        return summarize(self)
