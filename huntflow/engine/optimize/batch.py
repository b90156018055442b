"""What a hunt hands out and takes back: :class:`Ask` (a batch to evaluate), :class:`Outcome`
(the reviewed result of one candidate), and the pending-ask record a checkpoint carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
class Pending:
    """An asked batch not yet told (part of the checkpoint)."""

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
