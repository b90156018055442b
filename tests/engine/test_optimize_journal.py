"""The optimizer journal: a checkpoint plus the replayed operations since is the live hunt."""

from __future__ import annotations

import pytest

from huntflow.engine.optimize import journal
from huntflow.engine.optimize.hunt import Hunt, Outcome
from huntflow.engine.spec import parse_spec
from huntflow.errors import CheckpointError

SPEC = {"slug": "journal-rosen", "model": {"name": "rosenbrock"},
        "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
        "objectives": [{"metric": "f", "goal": "minimize"}], "budget": {"evaluations": 400},
        "optimizer": {"name": "ngopt", "population": 8}, "seed": 5}


def _outcomes(ask):
    out = []
    for i, c in enumerate(ask.candidates):
        x = [c[f"x{j}"] for j in range(3)]
        f = sum(100 * (x[j + 1] - x[j] ** 2) ** 2 + (1 - x[j]) ** 2 for j in range(2))
        out.append(Outcome(status="failed", failure_category="blowup") if i == 3 else Outcome(status="ok", metrics={"f": f}))
    return out


def _commit(rec, pending):
    """One evolve-like commit: tell what is back, ask the next batch."""
    for ask in pending:
        rec.tell(ask.ask_id, _outcomes(ask))
    ask = rec.ask("exploit" if len(rec.ops) % 2 else "explore")
    return [ask] if ask is not None else []


def test_checkpoint_plus_replayed_journal_asks_what_the_live_hunt_asks():
    spec = parse_spec(SPEC)
    live = Hunt.start(spec)
    pending = _commit(journal.Recorder(live), [])
    checkpoint = live.dumps()
    entries = []
    for _ in range(5):  # five commits after the checkpoint, recorded
        rec = journal.Recorder(live)
        rec.extend_budget(8) if not entries else None
        pending = _commit(rec, pending)
        entries.append(rec.ops)
    resumed = journal.replay(Hunt.loads(checkpoint), entries)
    assert resumed.summary() == live.summary()
    mine, theirs = pending, list(pending)
    for _ in range(3):  # both go on alike: same asks, same candidates, same keys (ask ids)
        mine, theirs = _commit(journal.Recorder(live), mine), _commit(journal.Recorder(resumed), theirs)
        assert [(a.ask_id, a.candidates, a.decisions) for a in mine] == [(a.ask_id, a.candidates, a.decisions) for a in theirs]


def test_a_journal_that_does_not_replay_is_refused_with_one_clear_error():
    spec = parse_spec(SPEC)
    live = Hunt.start(spec)
    checkpoint = live.dumps()
    rec = journal.Recorder(live)
    pending = _commit(rec, [])
    rec2 = journal.Recorder(live)
    _commit(rec2, pending)
    tampered = [op if op[0] != "tell" else ["tell", op[1], [["ok", {"f": 0.0}, None]] * len(op[2])] for op in rec2.ops]
    with pytest.raises(CheckpointError, match="does not replay"):
        journal.replay(Hunt.loads(checkpoint), [rec.ops, tampered])  # other values told: other points asked
    with pytest.raises(CheckpointError, match="unknown optimizer journal operation"):
        journal.replay(Hunt.loads(checkpoint), [[["teleport"]]])
