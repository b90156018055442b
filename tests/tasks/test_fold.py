"""The stored fold continues the mode replay exactly (tasks/fold.py), whatever order the
generations are told in: pure, no database."""

from __future__ import annotations

import random
import uuid

import pytest

from huntflow.tasks import fold, learn


def _gens(rng: random.Random, n: int, top: int) -> list[dict]:
    out = []
    for a in range(n):
        best = rng.choice([None, rng.uniform(0, 10), rng.uniform(0, 10)])
        out.append({"generation_id": uuid.uuid4(), "ask_id": a, "fidelity": rng.randint(0, top),
                    "status": rng.choice(["told", "told", "told", "failed"] + (["running"] if a >= n - 10 else [])),
                    "used": rng.randint(0, 8), "target_hits": rng.randint(0, 1),
                    "best_min": best, "best_max": best})
    return out


@pytest.mark.parametrize("seed", range(4))
def test_continuing_from_a_stored_fold_gives_the_full_replay(make_spec, seed):
    rng = random.Random(seed)
    spec = make_spec(budget={"evaluations": 200, "patience": 6},
                     fidelities=[{"name": "rough", "settings": {"bias": 0.3}}, {"name": "exact"}])
    gens = _gens(rng, 40, 1)
    told = {g["ask_id"] for g in gens if g["status"] == "told"}
    settled = lambda g: g["status"] in ("told", "failed")  # noqa: E731
    # fold tick by tick: each tick sees a growing prefix of what is told, stores what it may
    state, seen = None, set()
    for cut in sorted(rng.sample(sorted(told), k=min(8, len(told)))) + [max(told)]:
        seen |= {a for a in told if a <= cut}
        after = None if state is None else state["ask_id"]
        tail = [g for g in gens if after is None or g["ask_id"] > after]
        mode, new = fold.replay(spec, state, tail, seen, 200, settled)
        assert mode == learn.mode_of_generations(spec, gens, seen, 200)
        state = new or state
    assert state is not None
    # the stored state is the full replay's at its ask id: bests, budget used, hits, best generation
    upto = [g for g in gens if g["ask_id"] <= state["ask_id"]]
    assert fold.replay(spec, None, upto, {a for a in told if a <= state["ask_id"]}, 200, lambda g: True)[1] == state
    every = fold.Sweep(spec, None, 200)
    for g in upto:
        every.add(g)
    assert (every.s["used"], every.s["hits"], every.value) == (state["used"], state["hits"],
                                                               state["best_top"] if state["best_top"] is not None
                                                               else state["best_any"])
    # nothing unsettled is ever inside the stored fold
    assert all(settled(g) for g in upto)
