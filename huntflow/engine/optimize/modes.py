"""Campaign modes: the rule that picks one, and what each asks the hunt to do.

The learn stage records a mode after every told generation and the evolve stage passes it to
:meth:`huntflow.engine.optimize.hunt.Hunt.ask`, where it shapes the next search batch:

* ``explore``: the whole batch comes from the optimizer backend (the default).
* ``exploit``: a share of the batch is local refinement around the incumbent.
* ``recover``: a share of the batch is space-filling diversification away from the history.

:func:`choose_mode` is the rule (pure, so the engine, the learn stage and the benchmarks share
it): ``recover`` after ``max(3, patience // 2)`` generations without improvement (``patience``
unset counts as 6); ``exploit`` once a third of the budget is spent and the best improved within
the last three generations; ``explore`` otherwise.
"""

from __future__ import annotations

EXPLORE = "explore"
EXPLOIT = "exploit"
RECOVER = "recover"
MODES = (EXPLORE, EXPLOIT, RECOVER)


def choose_mode(stagnant: int, patience: int | None, used_fraction: float) -> str:
    """The campaign mode after a told generation.

    Args:
        stagnant: consecutive generations without improvement of the best (0 = just improved).
        patience: ``spec.budget.patience`` (None: not set, counts as 6 here).
        used_fraction: evaluations told so far divided by the evaluation budget.

    Returns:
        ``"recover"``, ``"exploit"`` or ``"explore"``.
    """
    if stagnant >= max(3, (patience or 6) // 2):
        return RECOVER
    if used_fraction >= 1 / 3 and stagnant < 3:
        return EXPLOIT
    return EXPLORE
