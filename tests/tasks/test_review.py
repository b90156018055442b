"""Review's verification batches in whole campaigns on the real database.

Artefact-prone models (``euler_decay``, ``noise_trap``) show that the old check (a same-key
repeat) lets the artefact become the campaign's best while the declared perturbation rejects
it; their honest regions show no false rejection over a whole campaign.
"""

from __future__ import annotations

import uuid

import pytest

from huntflow.engine import verify
from huntflow.engine.report import render as report_render
from huntflow.engine.report import sections as report_sections
from huntflow.engine.summary import best_of
from huntflow.store import campaigns, findings, generations, verifications
from huntflow.store.states import Stage
from huntflow.tasks import dispatch, evolve, kit, learn, parse, review
from huntflow.tasks._stage import TickContext, run_stage

pytestmark = pytest.mark.usefixtures("prefect_harness")  # learn emits an event when a campaign completes
STAGES = [(Stage.DISPATCH, dispatch.run), (Stage.PARSE, parse.run), (Stage.REVIEW, review.run),
          (Stage.EVOLVE, evolve.run), (Stage.LEARN, learn.run)]
DECAY = {"model": {"name": "euler_decay"},
         "space": {"rate": {"low": 0.0, "high": 6.0}, "shift": {"low": -1.0, "high": 1.0}},
         "fidelities": [{"name": "coarse", "settings": {"dt": 0.5, "steps": 5}}],
         "budget": {"evaluations": 24}, "optimizer": {"name": "random", "population": 8}}
HONEST = {**DECAY, "space": {"rate": {"low": 0.0, "high": 1.0}, "shift": {"low": -1.0, "high": 1.0}}}
TRAP = {"model": {"name": "noise_trap", "fixed": {"noise": 0.01}},
        "space": {"x0": {"low": -1.0, "high": 1.0}, "x1": {"low": -1.0, "high": 1.0}},
        "budget": {"evaluations": 24}, "optimizer": {"name": "random", "population": 8}}


def _tick(cid, operator: str = "inline") -> None:
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator=operator)
    for stage, logic in STAGES:
        run_stage(stage, ctx, cid, logic)


def _campaign(db, spec, limit: int = 30, cid=None):
    cid = cid or campaigns.insert_campaign(db, spec)
    for _ in range(limit):
        if campaigns.get_campaign(db, cid)["status"] != "active":
            break
        _tick(cid)
    row = campaigns.get_campaign(db, cid)
    assert row["status"] == "completed", row
    evals = generations.campaign_evaluations(db, cid)
    return cid, evals, best_of(campaigns.spec_of(row), evals), findings.for_campaign(db, cid)


def test_old_check_lets_a_step_size_artefact_win_and_half_dt_rejects_it(db, make_spec):
    old_cid, _, old_best, old_found = _campaign(db, make_spec(slug="decay-old", **DECAY,
                                                              review={"perturbations": ["repeat"]}))
    assert old_best["metrics"]["f"] < -0.5 and old_found == []  # the artefact (exact f >= 0) is the best
    cid, evals, best, found = _campaign(db, make_spec(slug="decay-new", **DECAY))
    assert best["metrics"]["f"] > -0.1  # what the campaign believes now survives a halved step
    high = [f for f in found if f["kind"] == "verification" and f["severity"] == "high"]
    assert high and all("half_dt" in f["message"] for f in high)
    assert all(f["details"]["perturbation"] == "half_dt" and f["details"]["claimed"] < f["details"]["again"]
               for f in high if "claimed" in f["details"])
    rejected = {e["evaluation_id"] for e in evals if e["status"] == "rejected"}
    assert {f["evaluation_id"] for f in high} <= rejected
    assert best["evaluation_id"] not in rejected
    # verification is not search budget: the search spent exactly its 24
    assert len(evals) == 24
    share = verifications.share(db, cid)
    assert share["search_evaluations"] == 24 and share["verification_evaluations"] >= len(high)
    _the_best_survived_a_check(db, cid, best)


def test_an_honest_step_size_region_has_no_false_rejection(db, make_spec):
    cid, evals, best, found = _campaign(db, make_spec(slug="decay-honest", **HONEST))
    assert found == [] and all(e["status"] == "succeeded" for e in evals)
    # only what could become the best is re-run: the first generation's best, then improvements
    assert 1 <= verifications.share(db, cid)["verification_evaluations"] <= 3
    _the_best_survived_a_check(db, cid, best)
    _numbering_and_progress_leave_verification_out(db, cid, 24)


def _verified(db, evaluation_id) -> bool:
    return bool(db.execute(
        "select 1 from hunt.evaluations v join hunt.generations g using (generation_id) where g.kind = 'verification'"
        " and g.status = 'reviewed' and v.decision ->> 'verifies' = %s", (str(evaluation_id),)).fetchall())


def _the_best_survived_a_check(db, cid, best) -> None:
    """Every evaluation that was its rung's best when told (the campaign's best among them) was
    verified first; every promoted candidate's lower-rung result too."""
    assert _verified(db, best["evaluation_id"]) and best["status"] == "succeeded"
    by_generation: dict = {}
    for e in generations.campaign_evaluations(db, cid):  # ask order
        if e["status"] == "succeeded" and e["objective"] is not None and e["feasible"]:
            by_generation.setdefault(e["generation_id"], []).append(e)
    running: dict[int, float] = {}
    for rows in by_generation.values():
        e = min(rows, key=lambda r: (r["objective"], r["candidate_index"]))
        if e["fidelity"] not in running or e["objective"] < running[e["fidelity"]]:
            running[e["fidelity"]] = e["objective"]
            assert _verified(db, e["evaluation_id"]), e
    for g in db.execute("select * from hunt.generations where campaign_id = %s and kind in"
                        " ('promotion', 'certification')", (cid,)).fetchall():
        assert "review" in g["meta"]
        compared = bool(g["meta"]["review"].get("ladder")) and g["status"] in ("reviewed", "told")
        for p in verifications.parents(db, g):  # checked at its rung, or by the promotion itself
            assert p["verified"] or p["status"] == "rejected" or compared, p


def _numbering_and_progress_leave_verification_out(db, cid, search_evaluations: int) -> None:
    """gen-0, gen-1, ... without holes; a verification batch carries its checked generation's
    number; hunt.campaign_progress counts the search and the re-runs apart."""
    gens = db.execute("select kind, generation_index, meta from hunt.generations where campaign_id = %s",
                      (cid,)).fetchall()
    asked = sorted(g["generation_index"] for g in gens if g["kind"] != "verification")
    assert asked == list(range(len(asked)))
    checks = [g for g in gens if g["kind"] == "verification"]
    assert checks and {g["generation_index"] for g in checks} <= set(asked)
    (progress,) = db.execute("select * from hunt.campaign_progress where campaign_id = %s", (cid,)).fetchall()
    share = verifications.share(db, cid)
    assert progress["generations"] == len(asked) and progress["evaluations"] == search_evaluations
    assert progress["verification_generations"] == len(checks) == share["verification_generations"]
    assert progress["verification_evaluations"] == share["verification_evaluations"] > 0


def test_a_noise_lucky_candidate_is_rejected_and_honest_noise_is_not(db, make_spec):
    _, _, old_best, old_found = _campaign(db, make_spec(slug="trap-old", **TRAP, review={"perturbations": ["repeat"]}))
    assert old_best["metrics"]["f"] < -0.5 and old_best["params"]["x0"] > 0.5 and old_found == []
    _, evals, best, found = _campaign(db, make_spec(slug="trap-new", **TRAP))
    assert best["params"]["x0"] <= 0.5 and best["metrics"]["f"] > -0.1
    assert any(f["severity"] == "high" and "noise_key" in f["message"] for f in found)
    honest = {**TRAP, "space": {"x0": {"low": -1.0, "high": 0.5}, "x1": {"low": -1.0, "high": 1.0}}}
    _, evals, _, found = _campaign(db, make_spec(slug="trap-honest", **honest))
    assert found == [] and all(e["status"] == "succeeded" for e in evals)


LADDER = {**DECAY, "fidelities": [{"name": "coarse", "settings": {"dt": 0.5, "steps": 5}},
                                  {"name": "fine", "settings": {"dt": 0.25, "steps": 10}}],
          "budget": {"evaluations": 27}}
# a top rung that is not the coarse one's halved step (a longer horizon): no check for free
LONGER = {**LADDER, "fidelities": [LADDER["fidelities"][0], {"name": "fine", "settings": {"dt": 0.25, "steps": 12}}]}


def _certification_asked_unverified(db, make_spec, slug: str, body: dict):
    """Review off during the search (so nothing is verified yet), on once the certification is
    asked: returns the campaign, the planned certification and its artefact parents."""
    cid = campaigns.insert_campaign(db, make_spec(slug=slug, **body, review={"spot_check_top": 0}))
    for _ in range(20):
        _tick(cid)
        promo = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                           (cid,)).fetchall()
        if promo:
            break
    (promo,) = promo
    assert promo["status"] == "planned" and "review" not in promo["meta"]
    db.execute("update hunt.campaigns set spec = jsonb_set(spec, '{review,spot_check_top}', '1')"
               " where campaign_id = %s", (cid,))
    parents = verifications.parents(db, promo)
    assert not any(p["verified"] for p in parents)
    artefacts = {p["evaluation_id"] for p in parents if p["metrics"]["f"] < -0.5}
    assert artefacts  # the coarse rung's best-looking results are the artefact
    return cid, promo, artefacts


def _promotion_rows_of_rejected_parents_are_rejected(db, promo, artefacts) -> None:
    for p in verifications.parents(db, promo):
        assert (p["status"] == "rejected") == (p["evaluation_id"] in artefacts), p
    rows = {e["candidate_index"]: e for e in generations.evaluations(db, promo["generation_id"])}
    for p in verifications.parents(db, promo):
        row = rows[p["promoted"]]
        assert (row["status"] == "rejected") == (p["evaluation_id"] in artefacts), (row, p)


def test_a_promotion_to_the_halved_step_is_its_parents_check(db, make_spec):
    """The fine rung is the coarse one's halved step: the certification is launched at once (no
    verification batch) and its own results are compared with its parents' claims; the artefacts
    among them are rejected with a high finding naming half_dt and both values, their
    certification results are not believed, the honest parents are not rejected."""
    assert [p.name for p in verify.ladder(make_spec(slug="ladder-x", **LADDER), 0, 1)] == ["half_dt"]
    cid, promo, artefacts = _certification_asked_unverified(db, make_spec, "decay-ladder", LADDER)
    _, evals, best, found = _campaign(db, None, cid=cid)
    promo = generations.get(db, promo["generation_id"])
    assert verifications.of_promotion(db, promo["generation_id"]) == []  # nothing re-run for the parents
    assert promo["meta"]["review"]["ladder"] == ["half_dt"] and promo["meta"]["review"]["parents_checked"] == 0
    on_parents = [f for f in found if f["details"].get("ladder") and f["evaluation_id"] in artefacts]
    assert {f["evaluation_id"] for f in on_parents if f["severity"] == "high"} == artefacts
    for f in on_parents:
        assert "half_dt" in f["message"] and f["details"]["perturbation"] == "half_dt"
        if "claimed" in f["details"]:  # both values: the coarse claim (the artefact) and the fine result
            assert f["details"]["claimed"] < -0.5 < f["details"]["again"]
    assert {f["details"]["parent_rejected"] for f in found if f["details"].get("parent_rejected")} \
        == {str(a) for a in artefacts}
    _promotion_rows_of_rejected_parents_are_rejected(db, promo, artefacts)
    assert best["evaluation_id"] not in artefacts  # (review was off during the search: its best is unchecked)
    # with review on from the start, the same ladder believes no artefact at either rung
    cid, evals, best, found = _campaign(db, make_spec(slug="decay-ladder-on", **LADDER))
    assert best["metrics"]["f"] > -0.1
    _the_best_survived_a_check(db, cid, best)
    (cert,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                         (cid,)).fetchall()
    assert verifications.of_promotion(db, cert["generation_id"]) == []  # contenders' checks only
    # review.verify_promoted: false trusts the parents: no comparison, no rejection of them
    cid, _, best, found = _campaign(db, make_spec(slug="decay-ladder-trust", **LADDER, review={"verify_promoted": False}))
    (cert,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                         (cid,)).fetchall()
    assert cert["meta"]["review"] == {"parents_checked": 0, "parents_rejected": [], "ladder": []}
    assert not any(f["details"].get("ladder") for f in found)
    assert best["metrics"]["f"] > -0.1 and _verified(db, best["evaluation_id"])


def test_an_honest_ladder_has_no_false_rejection(db, make_spec):
    honest = {**LADDER, "space": HONEST["space"]}
    cid, evals, best, found = _campaign(db, make_spec(slug="decay-ladder-honest", **honest))
    assert found == [] and all(e["status"] == "succeeded" for e in evals)
    (cert,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                         (cid,)).fetchall()
    promoted = len(verifications.parents(db, cert))
    assert cert["meta"]["review"]["ladder"] == ["half_dt"] and promoted >= 3
    _the_best_survived_a_check(db, cid, best)
    share = verifications.share(db, cid)
    assert share["promoted_checked_by_ladder"] == promoted  # the report says so
    (line, _) = report_render.verification(report_sections.verification(share))
    assert f"{promoted} promoted candidate(s) were checked by their promotion's own finer-rung result" in line


def test_every_promoted_candidate_is_verified_before_its_promotion_is_launched(db, make_spec):
    """Where the next rung does not refine the step (a longer horizon), the certification's
    parents are checked at their own rung before it is launched; the artefacts among them are
    rejected there, and their certification results are not believed."""
    assert verify.ladder(make_spec(slug="longer-x", **LONGER), 0, 1) == []
    cid, promo, artefacts = _certification_asked_unverified(db, make_spec, "decay-longer", LONGER)
    _, evals, best, found = _campaign(db, None, cid=cid)
    promo = generations.get(db, promo["generation_id"])
    checks = verifications.of_promotion(db, promo["generation_id"])
    assert checks and {c["status"] for c in checks} == {"reviewed"}
    assert all(c["generation_index"] != promo["generation_index"] for c in checks)  # numbered like their parents
    assert max(c["finished_at"] or c["updated_at"] for c in checks) <= promo["dispatched_at"]
    assert set(promo["meta"]["review"]["parents_rejected"]) == {str(a) for a in artefacts}
    assert promo["meta"]["review"]["ladder"] == []
    _promotion_rows_of_rejected_parents_are_rejected(db, promo, artefacts)
    assert any(f["details"].get("parent_rejected") for f in found)
    assert best["evaluation_id"] not in artefacts


def test_a_kit_generation_is_verified_by_a_kit_while_the_search_goes_on(db, make_spec, tmp_path):
    """The verification batch runs on the checked generation's operator (manual: a kit); the
    checked generation waits, parsed, while the next search generation is asked."""
    cid = campaigns.insert_campaign(db, make_spec(slug="decay-kit", **HONEST))
    _tick(cid, "manual")  # evolve plans two generations (two may be in flight off-inline)
    _tick(cid, "manual")  # dispatch writes their kits

    def run_and_import_kits():
        for k in kit.waiting(db):
            kit.run_kit(k["kit"])
            kit.import_kit(db, k["kit"])

    run_and_import_kits()
    _tick(cid, "manual")  # parse; review plans the first one's verification kit; evolve cannot ask (2 parsed)
    gens = db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()
    checks = [g for g in gens if g["kind"] == "verification"]
    searched = [g for g in gens if g["kind"] != "verification"]
    # the second waits for the first's review: what it must beat (the rung's best) is not known yet
    assert len(checks) == 1 and checks[0]["operator"] == "manual"
    assert checks[0]["meta"]["verification"]["verifies"] == str(searched[0]["generation_id"])
    assert [g["status"] for g in searched] == ["parsed", "parsed"]
    _tick(cid, "manual")  # dispatch writes the verification kit
    rows = generations.evaluations(db, checks[0]["generation_id"])
    assert len(rows) == 1 and rows[0]["decision"]["key_index"] >= 0
    run_and_import_kits()
    _tick(cid, "manual")  # parse it; review completes the first (the second plans its kit if it improves)
    statuses = {g["kind"] + ":" + g["status"] for g in db.execute(
        "select kind, status from hunt.generations where campaign_id = %s", (cid,)).fetchall()}
    assert {"verification:reviewed", "search:told", "search:planned"} <= statuses
    assert len(generations.campaign_evaluations(db, cid)) == 24  # 2 told + 1 planned; no verification rows


def test_a_search_at_the_promoted_rung_waits_for_the_promotion_that_checks_its_parents(db, make_spec):
    """A promotion whose own result checks its parents may reject its rung's best; a later
    search generation at that rung (here a kit, asked after a budget extension while the inline
    certification is pending) is only reviewed, its incumbent read, once that promotion is: the
    order in which they come back changes nothing."""
    cid = campaigns.insert_campaign(db, make_spec(slug="decay-ladder-more", **{**LADDER, "space": HONEST["space"]}))
    for _ in range(20):
        _tick(cid)
        (cert,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'certification'",
                             (cid,)).fetchall() or [None]
        if cert is not None:
            break
    assert cert["status"] == "planned"
    campaigns.extend_budget(db, cid, 8)  # the hunt searches the coarse rung again after the certification
    _tick(cid, "manual")  # review clears the certification; evolve asks the coarse search (a kit)
    (later,) = db.execute("select * from hunt.generations where campaign_id = %s and kind = 'search'"
                          " and ask_id > %s", (cid, cert["ask_id"])).fetchall()
    assert later["fidelity"] == 0 and later["operator"] == "manual"
    tick = uuid.uuid4()
    ctx = TickContext(tick_id=tick, owner=f"tick:{tick}", operator="manual")
    run_stage(Stage.DISPATCH, ctx, cid, dispatch.run)  # the certification runs inline; the kit is written
    for k in kit.waiting(db):
        kit.run_kit(k["kit"])
        kit.import_kit(db, k["kit"])
    run_stage(Stage.PARSE, ctx, cid, parse.run)
    cert, later = generations.get(db, cert["generation_id"]), generations.get(db, later["generation_id"])
    assert (cert["status"], later["status"]) == ("parsed", "parsed")
    assert verifications.rung_before(db, later) is None  # the certification may still reject a coarse row
    run_stage(Stage.REVIEW, ctx, cid, review.run)
    cert, later = generations.get(db, cert["generation_id"]), generations.get(db, later["generation_id"])
    assert (cert["status"], later["status"]) == ("reviewed", "reviewed")
    assert verifications.rung_before(db, later) is not None
