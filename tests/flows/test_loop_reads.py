"""What the loop of ``tick --until-done`` reads after each tick (store/waits.py: loop_rows,
progress_key) agrees with ``hunt.campaign_progress`` and moves exactly when work moved."""

from __future__ import annotations

import pytest

from huntflow.store import campaigns, waits


def _used_by_status(db, cid) -> dict:
    row = db.execute("select * from hunt.campaign_progress where campaign_id = %s", (cid,)).fetchone()
    used = (row["evaluations_succeeded"] + row["evaluations_failed"] + row["evaluations_rejected"]
            + row["evaluations_filtered"])
    return {"used": used, "best": row["best_objective"], "rung": row["best_fidelity_name"],
            "certified": row["best_certified"], "status": str(row["status"])}


@pytest.mark.usefixtures("prefect_harness")
def test_loop_rows_match_the_progress_view_and_the_key_moves_only_with_work(db, make_spec):
    from prefect import flow

    from huntflow.flows import artifacts
    from huntflow.flows.tick import run_tick

    cid = campaigns.insert_campaign(db, make_spec(slug="loop-reads", budget={"evaluations": 32}))
    other = campaigns.insert_campaign(db, make_spec(slug="loop-reads-other"))
    seen: list[tuple] = []

    def look() -> None:
        (row,) = waits.loop_rows(db, [cid])
        want = _used_by_status(db, cid)
        assert (row["slug"], row["status"], row["evaluations_budget"]) == ("loop-reads", want["status"], 32)
        assert row["evaluations_used"] == want["used"]
        assert (row["best_objective"], row["best_fidelity_name"], row["best_certified"]) == \
            (want["best"], want["rung"], want["certified"])
        seen.append((waits.progress_key(db, [cid]), want["used"], want["status"]))

    @flow(name="hunt-tick")
    def loop() -> None:
        look()
        for _ in range(8):  # plans, then a generation of 8 a tick until the budget is spent
            run_tick([str(cid)])
            look()
        assert artifacts.flush(timeout=60)

    loop()
    keys = [k for k, _, _ in seen]
    assert seen[-1][1:] == (32, "completed")
    # every tick until completion moved something; once completed, a tick moves nothing
    done = next(i for i, (_, _, status) in enumerate(seen) if status == "completed")
    assert all(keys[i] != keys[i - 1] for i in range(1, done + 1))
    assert keys[done + 1:] and all(k == keys[done] for k in keys[done + 1:])
    # another campaign's end moves the key of all campaigns, not this one's
    before_all, before_one = waits.progress_key(db, None), waits.progress_key(db, [cid])
    db.execute("update hunt.campaigns set status = 'cancelled' where campaign_id = %s", (other,))
    assert waits.progress_key(db, None) != before_all
    assert waits.progress_key(db, [cid]) == before_one
    assert [r["slug"] for r in waits.loop_rows(db, None)] == ["loop-reads", "loop-reads-other"]
