"""Contract of huntflow.store.generations: guarded transitions and the write-ahead commit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from huntflow.errors import StaleTransition
from huntflow.store import campaigns, evolve_commit, generations
from huntflow.store.evolve_commit import PlannedGeneration
from huntflow.store.states import GenerationStatus as GS


def _planned(ask_id: int, index: int, n: int = 3, max_attempts: int = 2) -> PlannedGeneration:
    cands = [{"x0": 0.1 * i, "x1": 0.0, "x2": -0.1 * i} for i in range(n)]
    return PlannedGeneration(
        ask_id=ask_id, generation_index=index, kind="search", fidelity=0, fidelity_name="default",
        seed=11, operator="inline", max_attempts=max_attempts, candidates=cands,
        param_hashes=[f"h{i}" for i in range(n)], decisions=[{} for _ in range(n)],
    )


@pytest.fixture
def campaign(db, make_spec):
    return campaigns.insert_campaign(db, make_spec())


def _commit(db, cid, seq, planned=(), told=None, state=b"ckpt"):
    return evolve_commit.commit_evolve(db, cid, expected_seq=seq, checkpoint=state, summary={"s": seq},
                                     finished=False, told=told or {}, planned=list(planned))


def test_commit_evolve_writes_generation_candidates_and_checkpoint_together(db, campaign):
    (gid,) = _commit(db, campaign, 0, [_planned(0, 0)])
    row = generations.get(db, gid)
    assert "optimizer_checkpoint" not in row  # rows come without the checkpoint bytes
    stored = db.execute("select optimizer_checkpoint from hunt.generations where generation_id = %s", (gid,)).fetchone()
    assert row["status"] == "planned" and bytes(stored["optimizer_checkpoint"]) == b"ckpt"
    evals = generations.evaluations(db, gid)
    assert [e["params"]["x0"] for e in evals] == [0.0, 0.1, 0.2]
    assert all(e["status"] == "pending" for e in evals)
    assert campaigns.checkpoint(db, campaign) == (1, b"ckpt")
    assert "optimizer_state" not in campaigns.get_campaign(db, campaign)


def test_stale_evolve_commit_writes_nothing(db, campaign):
    _commit(db, campaign, 0, [_planned(0, 0)])
    with pytest.raises(StaleTransition):
        _commit(db, campaign, 0, [_planned(1, 1)], state=b"other")
    assert generations.next_index(db, campaign) == 1
    assert campaigns.checkpoint(db, campaign) == (1, b"ckpt")


def test_a_large_population_is_copied_and_a_stale_commit_with_one_writes_nothing(db, campaign):
    """Above COPY_ABOVE candidates the rows go by COPY after the commit's pipeline; a small
    generation of the same commit still goes in the pipeline; a stale commit undoes both."""
    big = evolve_commit.COPY_ABOVE + 3
    small_gid, big_gid = _commit(db, campaign, 0, [_planned(0, 0), _planned(1, 1, n=big)])
    assert [e["candidate_index"] for e in generations.evaluations(db, big_gid)] == list(range(big))
    assert generations.evaluations(db, big_gid)[-1]["params"]["x0"] == pytest.approx(0.1 * (big - 1))
    assert len(generations.evaluations(db, small_gid)) == 3
    with pytest.raises(StaleTransition):
        _commit(db, campaign, 0, [_planned(2, 2, n=big)], state=b"other")
    assert generations.next_index(db, campaign) == 2
    assert db.execute("select count(*) as n from hunt.evaluations where campaign_id = %s",
                      (campaign,)).fetchone()["n"] == big + 3


def test_transition_reports_a_lost_race(db, campaign):
    (gid,) = _commit(db, campaign, 0, [_planned(0, 0)])
    assert generations.transition(db, gid, [GS.PLANNED], GS.DISPATCHED, dispatch_ref="a") is True
    assert generations.transition(db, gid, [GS.PLANNED], GS.DISPATCHED, dispatch_ref="b") is False
    assert generations.get(db, gid)["dispatch_ref"] == "a"


def test_retry_then_fail_after_max_attempts(db, campaign):
    (gid,) = _commit(db, campaign, 0, [_planned(0, 0, max_attempts=2)])
    for attempt in (1, 2):
        assert generations.transition(db, gid, [GS.PLANNED], GS.DISPATCHED, attempt=attempt)
        expected = GS.PLANNED if attempt < 2 else GS.FAILED
        assert generations.retry_or_fail(db, gid, [GS.DISPATCHED], f"lost {attempt}") is expected
    row = generations.get(db, gid)
    assert row["status"] == "failed" and row["error"] == "lost 2"
    assert {e["status"] for e in generations.evaluations(db, gid)} == {"failed"}
    assert generations.retry_or_fail(db, gid, [GS.DISPATCHED], "again") is None


def test_told_generation_gets_annotations_and_a_stale_tell_is_refused(db, campaign):
    (gid,) = _commit(db, campaign, 0, [_planned(0, 0, n=2)])
    for a, b in ((GS.PLANNED, GS.DISPATCHED), (GS.DISPATCHED, GS.RUNNING)):
        generations.transition(db, gid, [a], b)
    generations.mark_succeeded(db, gid, result_document={"x": 1}, artifact_path=None)
    rows = [{"candidate_index": i, "status": "succeeded", "failure_category": None,
             "metrics": {"f": float(i)}, "provenance": {"seed": 11}, "wall_seconds": 0.1} for i in range(2)]
    assert generations.record_parsed(db, gid, rows, {"tier": 1})
    assert generations.record_reviewed(db, gid, [])
    evals = generations.evaluations(db, gid)
    ann = {"objectives": [1.0], "objective": 1.0, "constraints": [], "feasible": True, "alm_loss": 1.0,
           "alm_lambda": [], "alm_rho": 1.0, "alm_outer": 0}
    # every value as it was given, to the bit: non-finite doubles and numpy scalars included
    odd = {"objectives": [0.1 + 0.2, np.float64(1e-300)], "objective": 0.1 + 0.2, "constraints": [-np.inf, 2.5e300],
           "feasible": np.bool_(False), "alm_loss": math.inf, "alm_lambda": [np.float64(0.5), math.nan],
           "alm_rho": 1 / 3, "alm_outer": np.int64(7)}
    _commit(db, campaign, 1, told={gid: [(evals[0]["evaluation_id"], ann), (evals[1]["evaluation_id"], odd)]})
    assert generations.get(db, gid)["status"] == "told"
    got = generations.evaluations(db, gid)
    assert got[0]["feasible"] and got[0]["alm_rho"] == 1.0 and got[0]["constraints"] == []
    assert got[1]["objectives"] == [0.1 + 0.2, 1e-300] and got[1]["objective"] == 0.1 + 0.2
    assert got[1]["constraints"] == [-math.inf, 2.5e300] and got[1]["feasible"] is False
    assert got[1]["alm_loss"] == math.inf and got[1]["alm_lambda"][0] == 0.5 and math.isnan(got[1]["alm_lambda"][1])
    assert got[1]["alm_rho"] == 1 / 3 and got[1]["alm_outer"] == 7
    with pytest.raises(StaleTransition):
        _commit(db, campaign, 2, told={gid: []})


def test_rung_before_finds_the_told_best_by_index_without_rejected_verification_or_later_rows(db, campaign):
    """review's incumbent: the best feasible succeeded objective told at the rung by earlier asks."""
    from huntflow.store import verifications

    def gen(index, ask, status, kind="search", fidelity=0):
        return db.execute(
            "insert into hunt.generations (campaign_id, generation_index, ask_id, kind, fidelity, fidelity_name, seed,"
            " status) values (%s, %s, %s, %s, %s, 'default', 1, %s) returning generation_id, campaign_id, ask_id,"
            " fidelity", (campaign, index, ask, kind, fidelity, status)).fetchone()

    def row(g, i, objective, status="succeeded", feasible=True):
        db.execute(
            "insert into hunt.evaluations (generation_id, campaign_id, candidate_index, params, param_hash, fidelity,"
            " status, objective, feasible) values (%s, %s, %s, '{}', %s, %s, %s, %s, %s)",
            (g["generation_id"], campaign, i, f"{g['ask_id']}-{i}", g["fidelity"], status, objective, feasible))

    told = gen(0, 0, "told")
    for i, (obj, status, feasible) in enumerate([(5.0, "succeeded", True), (1.0, "rejected", True),
                                                 (0.7, "succeeded", False), (9.0, "succeeded", True)]):
        row(told, i, obj, status, feasible)
    row(gen(90, -1, "told", kind="verification"), 0, 0.5)  # a re-run, not a search result
    row(gen(1, 1, "reviewed"), 0, 3.0)  # reviewed, not told yet: untold
    row(gen(2, 2, "told", fidelity=1), 0, 0.2)  # another rung
    row(gen(5, 5, "told"), 0, 0.1)  # a later ask
    checked = gen(3, 3, "parsed")
    got = verifications.rung_before(db, checked)
    assert (got["best_min"], got["best_max"]) == (5.0, 9.0)
    assert [r["objective"] for r in got["untold"]] == [3.0]
    gen(4, 4, "running")
    assert verifications.rung_before(db, gen(6, 6, "parsed")) is None  # an earlier ask is still out
