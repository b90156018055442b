"""Optimizers: the resumable ask/tell hunt the evolve stage drives, and its parts.

* :mod:`.hunt` — :class:`Hunt`, :class:`Ask`, :class:`Outcome`: the state machine.
* :mod:`.backends` — nevergrad NGOpt / CMA / TwoPointsDE and a scrambled-Halton baseline.
* :mod:`.alm` — augmented Lagrangian constraint handling.
* :mod:`.ladder` — fidelity ladder plan, promotion size, param identity.
* :mod:`.dedup` — no evaluation twice on one point (repeats told their stored result).
* :mod:`.modes` — campaign modes (explore / exploit / recover) and the rule that picks one.
* :mod:`.pareto` — dominance, exact hypervolume, Chebyshev scalarization.
* :mod:`.prefilter` — k-NN feasibility prefilter.
* :mod:`.report` — the summary, front and hypervolume views.
"""

from huntflow.engine.optimize.hunt import Ask, Hunt, Outcome

__all__ = ["Ask", "Hunt", "Outcome"]
