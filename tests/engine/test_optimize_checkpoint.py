"""Checkpoints are authenticated before anything is unpickled: tampered, foreign-key and legacy
(unauthenticated pickle) checkpoints are refused with a CheckpointError, and no code runs."""

from __future__ import annotations

import os
import pickle
import zlib

import pytest

from huntflow.engine.optimize import Hunt, Outcome
from huntflow.engine.optimize import checkpoint
from huntflow.engine.spec import parse_spec
from huntflow.errors import CheckpointError

KEY = b"k" * 32


def _hunt() -> Hunt:
    spec = parse_spec({
        "slug": "ckpt", "model": {"name": "sphere"},
        "space": {"x0": {"low": -1, "high": 1}, "x1": {"low": -1, "high": 1}},
        "objectives": [{"metric": "f"}], "budget": {"evaluations": 32},
        "optimizer": {"name": "cma", "population": 4}, "seed": 3,
    })
    hunt = Hunt.start(spec)
    ask = hunt.ask()
    hunt.tell(ask.ask_id, [Outcome("ok", {"f": float(sum(v * v for v in c.values()))}) for c in ask.candidates])
    return hunt


def test_roundtrip_with_the_same_key_asks_the_same_points():
    hunt = _hunt()
    again = Hunt.loads(hunt.dumps(key=KEY), key=KEY)
    assert again.ask().candidates == hunt.ask().candidates


class _Boom:
    def __reduce__(self):  # what an attacker plants: unpickling runs os.system
        return (os.system, ("touch /tmp/huntflow-pwned-by-checkpoint",))


@pytest.mark.parametrize("forge", ["flip_body", "flip_tag", "other_key", "legacy_hfz1", "bare_pickle", "garbage"])
def test_tampered_or_unauthenticated_checkpoint_is_refused_without_running_code(forge, tmp_path):
    marker = "/tmp/huntflow-pwned-by-checkpoint"
    if os.path.exists(marker):
        os.unlink(marker)
    good = bytearray(_hunt().dumps(key=KEY))
    evil = pickle.dumps(_Boom())
    data = {
        "flip_body": bytes(good[:-1]) + bytes([good[-1] ^ 1]),
        "flip_tag": bytes(good[:6]) + bytes([good[6] ^ 1]) + bytes(good[7:]),
        "other_key": checkpoint.dumps(_Boom(), key=b"x" * 32),
        "legacy_hfz1": b"HFZ1" + zlib.compress(evil),
        "bare_pickle": evil,
        "garbage": b"not a checkpoint",
    }[forge]
    with pytest.raises(CheckpointError) as e:
        Hunt.loads(data, key=KEY)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)
    assert not os.path.exists(marker)
    if forge.startswith(("legacy", "bare")):
        assert "unauthenticated" in str(e.value)
    elif forge != "garbage":
        assert "fails authentication" in str(e.value)


def test_a_checkpoint_signed_in_this_process_without_a_key_is_useless_with_a_real_one():
    data = _hunt().dumps()  # the per-process random key
    Hunt.loads(data)
    with pytest.raises(CheckpointError):
        Hunt.loads(data, key=KEY)


def test_short_keys_are_refused():
    with pytest.raises(CheckpointError, match="at least 16 bytes"):
        checkpoint.dumps({}, key=b"short")


def test_config_key_file_is_created_0600_and_stable(tmp_path, monkeypatch):
    from huntflow.config import checkpoint_key

    monkeypatch.setenv("HUNTFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUNTFLOW_CHECKPOINT_KEY", raising=False)
    k1 = checkpoint_key()
    assert len(k1) >= 32 and (tmp_path / "checkpoint.key").stat().st_mode & 0o777 == 0o600
    assert checkpoint_key() == k1
    monkeypatch.setenv("HUNTFLOW_CHECKPOINT_KEY", "an-operator-chosen-key")
    assert checkpoint_key() == b"an-operator-chosen-key"


def test_points_travel_as_one_array_and_a_version_1_checkpoint_still_loads():
    """Version 2 stores the told evaluations' points as one array beside the state; the live hunt
    keeps its own, the loaded one gets the same values, and both ask the same next batch. A
    version-1 checkpoint (each point in its evaluation, as earlier huntflow wrote them) loads
    to the same hunt."""
    import numpy as np

    hunt = _hunt()
    ask = hunt.ask()
    hunt.tell(ask.ask_id, [Outcome("ok", {"f": float(sum(v * v for v in c.values()))}) for c in ask.candidates])
    before = [e["u"] for e in hunt.evals]
    blob = checkpoint.loads(hunt.dumps(key=KEY), key=KEY)
    assert blob["version"] == 2 and blob["points"].shape == (len(hunt.evals), 2)
    assert all("u" not in e for e in blob["state"]["evals"])
    assert all(e["u"] is u for e, u in zip(hunt.evals, before))  # the live hunt's own, put back
    state = {k: v for k, v in hunt.__dict__.items() if not k.startswith("_evalindex")}
    v1 = checkpoint.dumps({"version": 1, "state": state}, key=KEY)
    loaded = [Hunt.loads(hunt.dumps(key=KEY), key=KEY), Hunt.loads(v1, key=KEY)]
    for other in loaded:
        assert len(other.evals) == len(hunt.evals)
        for a, b in zip(other.evals, hunt.evals):
            assert a.keys() == b.keys() and a["u"].dtype == b["u"].dtype and np.array_equal(a["u"], b["u"])
            assert {k: v for k, v in a.items() if k != "u"} == {k: v for k, v in b.items() if k != "u"}
    asks = [h.ask() for h in (hunt, *loaded)]
    assert asks[0].candidates == asks[1].candidates == asks[2].candidates
    with pytest.raises(CheckpointError, match="points do not match"):
        Hunt.loads(checkpoint.dumps({**blob, "points": blob["points"][:-1]}, key=KEY), key=KEY)
