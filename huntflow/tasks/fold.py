"""The mode replay as a fold that can be stored and continued (``hunt.campaign_folds``).

The replay (:func:`huntflow.tasks.learn.current_mode`, the rule learn records) sweeps a
campaign's generations in ask order: at each told ask id, the bests so far (top fidelity, any
fidelity), the evaluations used and the stagnation count give the mode. The sweep is a left
fold, so its state after a prefix of generations that can no longer change (*settled*: told, or
failed and told as failures, with their summary row) is all a later sweep needs: :func:`replay`
continues from a stored state over the generations after it and returns the new state to store
when the settled prefix grew. The result is the full replay's, exactly.

A state is a JSON-able dict: ``ask_id`` (last generation covered; None: nothing), ``best_top`` /
``best_top_gen``, ``best_any`` / ``best_any_gen`` (the first of equals, in ask order),
``used``, ``hits`` (target hits at the top fidelity), ``told`` (told generations covered),
``prev_best``, ``stagnant`` and ``mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from huntflow.engine.optimize import modes
from huntflow.engine.spec import CampaignSpec
from huntflow.engine.summary import better
from huntflow.store.states import Mode

IMPROVEMENT_TOL = 1e-12


def empty() -> dict[str, Any]:
    """The state before any generation."""
    return {"ask_id": None, "best_top": None, "best_top_gen": None, "best_any": None, "best_any_gen": None,
            "used": 0, "hits": 0, "told": 0, "prev_best": None, "stagnant": 0, "mode": Mode.EXPLORE.value}


def gen_best(spec: CampaignSpec, g: dict[str, Any]) -> float | None:
    """A generation summary's best feasible objective (user's sign)."""
    return g["best_min"] if spec.objectives[0].goal == "minimize" else g["best_max"]


def progress(spec: CampaignSpec, prev_best: float | None, best_value: float | None,
             stagnant: int) -> tuple[float | None, int]:
    """(improvement over ``prev_best``, generations without improvement) after one generation."""
    improvement = None
    if best_value is not None and prev_best is not None:
        improvement = abs(best_value - prev_best) if better(spec, best_value, prev_best) else 0.0
    improved = (improvement is None and best_value is not None) or (improvement or 0) > IMPROVEMENT_TOL
    return improvement, 0 if improved else stagnant + 1


class Sweep:
    """The fold's running state (a copy of ``state``; :meth:`state` gives it back as a dict)."""

    def __init__(self, spec: CampaignSpec, state: dict[str, Any] | None, evaluations_budget: int) -> None:
        self.spec, self.top, self.budget = spec, len(spec.fidelities) - 1, evaluations_budget
        self.s = dict(state or empty())

    @property
    def value(self) -> float | None:
        """Best so far: at the top fidelity if any, else at any fidelity."""
        return self.s["best_top"] if self.s["best_top"] is not None else self.s["best_any"]

    @property
    def best_gen(self) -> Any:
        """The generation holding :attr:`value` (first of equals in ask order)."""
        return self.s["best_top_gen"] if self.s["best_top"] is not None else self.s["best_any_gen"]

    def add(self, g: dict[str, Any]) -> None:
        """Fold one generation summary in (ask order)."""
        self.s["used"] += int(g["used"] or 0)
        top = g["fidelity"] == self.top
        if top:
            self.s["hits"] += int(g["target_hits"] or 0)
        b = gen_best(self.spec, g)
        if b is not None:
            if better(self.spec, b, self.s["best_any"]):
                self.s["best_any"], self.s["best_any_gen"] = b, str(g["generation_id"])
            if top and better(self.spec, b, self.s["best_top"]):
                self.s["best_top"], self.s["best_top_gen"] = b, str(g["generation_id"])

    def step(self) -> tuple[float | None, int, Mode]:
        """After a told generation: (improvement, stagnant, mode); the mode is stored."""
        best_value = self.value
        improvement, self.s["stagnant"] = progress(self.spec, self.s["prev_best"], best_value, self.s["stagnant"])
        mode = Mode(modes.choose_mode(self.s["stagnant"], self.spec.budget.patience,
                                      self.s["used"] / max(1, self.budget)))
        self.s["mode"] = mode.value
        self.s["told"] += 1
        if best_value is not None:
            self.s["prev_best"] = best_value
        return improvement, self.s["stagnant"], mode

    def state(self, ask_id: int | None) -> dict[str, Any]:
        return {**self.s, "ask_id": ask_id}


def replay(spec: CampaignSpec, state: dict[str, Any] | None, gens: list[dict[str, Any]], told_ask_ids: Iterable[int],
           evaluations_budget: int, settled: Callable[[dict[str, Any]], bool]) -> tuple[Mode, dict[str, Any] | None]:
    """The mode after the last told ask id, continuing from ``state``.

    Args:
        gens: summaries of the generations after ``state["ask_id"]``, in ask order.
        told_ask_ids: ask ids of the told generations (those covered by ``state`` are ignored).
        settled: whether a generation of ``gens`` can no longer change.

    Returns:
        The mode, and the state to store (covering the settled prefix through a told ask id),
        or None when it did not move.
    """
    sweep = Sweep(spec, state, evaluations_budget)
    after = sweep.s["ask_id"]
    told = sorted(a for a in set(told_ask_ids) if after is None or a > after)
    mode = Mode(sweep.s["mode"])
    fresh, all_settled, i = None, True, 0
    for ask_id in told:
        while i < len(gens) and gens[i]["ask_id"] <= ask_id:
            all_settled = all_settled and settled(gens[i])
            sweep.add(gens[i])
            i += 1
        _, _, mode = sweep.step()
        if all_settled:
            fresh = sweep.state(ask_id)
    return mode, fresh
