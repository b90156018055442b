"""The optimizer's journal: what evolve did to a :class:`~huntflow.engine.optimize.hunt.Hunt`
since its last full checkpoint, replayable to give back the exact same hunt.

Pickling the whole hunt is the costliest part of a commit (NGOpt's archive grows with every
tell: ~3.5 MB raw after ~1900 tells of the demo, ~0.1 s to pickle and compress), so evolve writes
a full checkpoint only every :data:`COMMITS_PER_CHECKPOINT` commits (every
:data:`COMMITS_PER_CHECKPOINT_LIVE` where its process keeps the hunt live) and, in between,
appends one journal entry per commit: a list of operations in the order they ran —

* ``["extend", n]`` — ``hunt.extend_budget(n)``;
* ``["tell", ask_id, [[status, metrics, failure_category], ...]]`` — ``hunt.tell`` with these
  outcomes (as the rows had them when told: a row changed later does not change the replay);
* ``["ask", mode, ask_id, fingerprint]`` — ``hunt.ask(mode)``, which returned that ask (or
  ``None`` and ``null``); the fingerprint hashes what it asked, so a replay that would ask
  anything else (another library version, a corrupted entry) stops with a
  :class:`~huntflow.errors.CheckpointError` instead of diverging silently.

The hunt is deterministic (all randomness in its state, no order-dependent containers), so the
checkpoint plus the replayed journal is the state the live hunt had after those commits.
The journal holds data, never code: nothing in it is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from huntflow.engine.optimize.batch import Ask, Outcome
from huntflow.errors import CheckpointError

COMMITS_PER_CHECKPOINT = 8
"""A full checkpoint at least every this many commits where evolve had to load the hunt (no live
one in its process: the next evolve most likely loads it too, and replays what came since)."""

COMMITS_PER_CHECKPOINT_LIVE = 32
"""The same where evolve's process kept the hunt live since its last commit (``tick
--until-done``, the warm worker): nobody reads the checkpoint until a restart, whose one reload
replays at most 31 entries, while the pickling (the demo's NGOpt: ~0.1 s at 2 000 tells, growing
with its archive) happens one commit in 32 instead of one in 8. Measured in benchmarks/RESULTS.md,
"Seventh issue-13 session"."""


def checkpoint_due(entries: int, live: bool) -> bool:
    """Whether the commit after ``entries`` journal entries writes a full checkpoint (``live``:
    the hunt was kept live in this process since the last commit)."""
    return entries + 1 >= (COMMITS_PER_CHECKPOINT_LIVE if live else COMMITS_PER_CHECKPOINT)


def fingerprint(ask: Ask | None) -> str | None:
    """A short hash of what an ask asked (kind, rung, candidates, decisions, meta)."""
    if ask is None:
        return None
    body = json.dumps([ask.ask_id, ask.kind, ask.fidelity, ask.candidates, ask.decisions, ask.meta],
                      sort_keys=True, default=repr)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def outcome_entry(outcome: Outcome) -> list[Any]:
    return [outcome.status, dict(outcome.metrics), outcome.failure_category]


class Recorder:
    """Runs evolve's operations on a hunt and records them as one journal entry (:attr:`ops`)."""

    def __init__(self, hunt: Any) -> None:
        self.hunt = hunt
        self.ops: list[list[Any]] = []

    def extend_budget(self, evaluations: int) -> None:
        self.hunt.extend_budget(evaluations)
        self.ops.append(["extend", int(evaluations)])

    def tell(self, ask_id: int, outcomes: list[Outcome]) -> list[dict]:
        annotations = self.hunt.tell(ask_id, outcomes)
        self.ops.append(["tell", int(ask_id), [outcome_entry(o) for o in outcomes]])
        return annotations

    def ask(self, mode: str) -> Ask | None:
        ask = self.hunt.ask(mode)
        self.ops.append(["ask", str(mode), None if ask is None else ask.ask_id, fingerprint(ask)])
        return ask


def replay(hunt: Any, journal: list[list[list[Any]]]) -> Any:
    """Apply the journal's entries to ``hunt`` (loaded from the checkpoint they follow); returns it.

    Raises:
        CheckpointError: an entry is malformed or an ask does not reproduce what was recorded.
    """
    for n, entry in enumerate(journal):
        for op in entry:
            try:
                kind = op[0]
                if kind == "extend":
                    hunt.extend_budget(int(op[1]))
                elif kind == "tell":
                    hunt.tell(int(op[1]), [Outcome(status=s, metrics=dict(m or {}), failure_category=f)
                                           for s, m, f in op[2]])
                elif kind == "ask":
                    ask = hunt.ask(op[1])
                    got = (None if ask is None else ask.ask_id, fingerprint(ask))
                    if got != (op[2], op[3]):
                        raise CheckpointError(
                            f"the optimizer journal does not replay: commit {n + 1} after the checkpoint asked"
                            f" {op[2]} ({op[3]}), the replay asked {got[0]} ({got[1]})")
                else:
                    raise CheckpointError(f"unknown optimizer journal operation {kind!r}")
            except CheckpointError:
                raise
            except (KeyError, ValueError, TypeError, IndexError) as e:
                raise CheckpointError(f"the optimizer journal does not replay: commit {n + 1} after the"
                                      f" checkpoint: {type(e).__name__}: {e}") from e
    return hunt
