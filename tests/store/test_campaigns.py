"""Contract of huntflow.store.campaigns against the real Postgres."""

from __future__ import annotations

import uuid

import pytest

from huntflow.errors import TerminalStateError
from huntflow.store import campaigns, settings
from huntflow.store.campaigns import DuplicateCampaign
from huntflow.store.states import CampaignStatus


def test_insert_then_read_back_by_id_and_slug(db, make_spec):
    spec = make_spec()
    cid = campaigns.insert_campaign(db, spec)
    by_id, by_slug = campaigns.get_campaign(db, cid), campaigns.get_campaign(db, spec.slug)
    assert by_id["campaign_id"] == by_slug["campaign_id"] == cid
    assert campaigns.spec_of(by_id) == spec
    assert by_id["status"] == "active" and by_id["evaluations_budget"] == spec.budget.evaluations


def test_duplicate_slug_is_rejected_and_keeps_the_first(db, make_spec):
    campaigns.insert_campaign(db, make_spec(seed=1))
    with pytest.raises(DuplicateCampaign, match="sphere-3d"):
        campaigns.insert_campaign(db, make_spec(seed=2))
    assert campaigns.get_campaign(db, "sphere-3d")["seed"] == 1


def test_missing_campaign_raises_key_error(db):
    with pytest.raises(KeyError):
        campaigns.get_campaign(db, uuid.uuid4())


def test_claims_rank_by_priority_and_respect_the_concurrency_limit(db, make_spec):
    for slug, prio in (("low-one", 0), ("high-one", 5), ("mid-one", 2)):
        campaigns.insert_campaign(db, make_spec(slug=slug, priority=prio))
    got = campaigns.claim_cohort(db, "tick-a", limit=2, lease_seconds=60)
    assert [r["slug"] for r in got] == ["high-one", "mid-one"]
    # a second tick sees the limit already used by tick-a's live leases
    assert campaigns.claim_cohort(db, "tick-b", limit=2, lease_seconds=60) == []
    got_b = campaigns.claim_cohort(db, "tick-b", limit=3, lease_seconds=60)
    assert [r["slug"] for r in got_b] == ["low-one"]


def test_expired_lease_can_be_claimed_by_another_tick(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    assert campaigns.claim_cohort(db, "tick-a", limit=4, lease_seconds=60)
    assert campaigns.claim_cohort(db, "tick-b", limit=4, lease_seconds=60) == []
    db.execute("update hunt.campaigns set lease_expires_at = now() - interval '1 second' where campaign_id = %s", (cid,))
    assert [r["campaign_id"] for r in campaigns.claim_cohort(db, "tick-b", limit=4, lease_seconds=60)] == [cid]
    assert campaigns.release_lease(db, cid, "tick-a") is False
    assert campaigns.release_lease(db, cid, "tick-b") is True


def test_finish_is_guarded_and_cancels_unlaunched_work(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    assert campaigns.finish_campaign(db, cid, CampaignStatus.COMPLETED, "target_met") is True
    assert campaigns.finish_campaign(db, cid, CampaignStatus.FAILED, "late writer") is False
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "target_met")
    with pytest.raises(ValueError):
        campaigns.finish_campaign(db, cid, CampaignStatus.ACTIVE, "not terminal")


def test_extend_budget_reopens_a_completed_campaign(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    campaigns.finish_campaign(db, cid, CampaignStatus.COMPLETED, "budget_spent")
    row = campaigns.extend_budget(db, "sphere-3d", 16)
    assert (row["status"], row["evaluations_budget"]) == ("active", 48 + 16)
    with pytest.raises(ValueError):
        campaigns.extend_budget(db, "sphere-3d", 0)


def test_extend_budget_refuses_a_cancelled_campaign(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec())
    campaigns.finish_campaign(db, cid, CampaignStatus.CANCELLED, "operator")
    with pytest.raises(TerminalStateError):
        campaigns.extend_budget(db, cid, 10)
    assert campaigns.get_campaign(db, cid)["evaluations_budget"] == 48


def test_settings_round_trip(db):
    assert settings.get_setting(db, "max_concurrent_campaigns", None) == 4
    settings.set_setting(db, "max_concurrent_campaigns", 7)
    assert settings.get_setting(db, "max_concurrent_campaigns", None) == 7
    assert settings.get_setting(db, "absent", "dflt") == "dflt"


def test_spec_of_parses_each_stored_spec_once_and_follows_a_changed_one(db, make_spec):
    a = campaigns.get_campaign(db, campaigns.insert_campaign(db, make_spec(slug="spec-a", seed=1)))
    b = campaigns.get_campaign(db, campaigns.insert_campaign(db, make_spec(slug="spec-b", seed=2)))
    first = campaigns.spec_of(a)
    assert campaigns.spec_of(campaigns.get_campaign(db, a["campaign_id"])) is first  # a fresh read, parsed once
    assert (first.slug, first.seed) == ("spec-a", 1)
    other = campaigns.spec_of(b)
    assert (other.slug, other.seed) == ("spec-b", 2)
    changed = campaigns.spec_of({**a, "spec": {**a["spec"], "seed": 3}})
    assert changed.seed == 3 and campaigns.spec_of(a).seed == 1
