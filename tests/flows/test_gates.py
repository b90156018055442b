"""Gates: the human decisions a campaign waits for, on the real stack (Postgres, Prefect, JAX).

A promotion gate holds a promotion/certification generation until it is decided; a completion
gate holds the campaign's completion. Decisions are made with the real CLI.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from huntflow.errors import TerminalStateError
from huntflow.flows.cli import app
from huntflow.store import campaigns, gates, generations

pytestmark = pytest.mark.usefixtures("prefect_harness")

LADDER = [{"name": "rough", "settings": {"bias": 0.3}}, {"name": "mid", "settings": {"bias": 0.1}},
          {"name": "exact", "promote_top_k": 2}]


def _tick():
    from huntflow.flows.tick import hunt_tick

    return hunt_tick()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _tick_until(db, cid, predicate, max_ticks: int = 20) -> None:
    for _ in range(max_ticks):
        _tick()
        if predicate():
            return
    raise AssertionError("condition not reached")


def _generations(db, cid, kind: str) -> list[dict]:
    return [g for g in db.execute("select * from hunt.generations where campaign_id = %s order by ask_id",
                                  (cid,)).fetchall() if g["kind"] == kind]


def test_promotion_gate_holds_until_approved_and_a_rejection_fails_the_generation(db, make_spec):
    spec = make_spec(slug="gated-ladder", budget={"evaluations": 32}, fidelities=LADDER,
                     optimizer={"name": "ngopt", "population": 8}, gates={"promotion": True})
    cid = campaigns.insert_campaign(db, spec)
    _tick_until(db, cid, lambda: bool(_generations(db, cid, "promotion")))
    [promo] = _generations(db, cid, "promotion")
    # the generation is held: ticking does not launch it, and the gate lists its candidates
    for _ in range(2):
        _tick()
    assert generations.get(db, promo["generation_id"])["status"] == "planned"
    [pending] = json.loads(_cli("gate", "list", "gated-ladder", "--json"))
    assert pending["kind"] == "promotion" and pending["status"] == "pending"
    assert pending["generation_id"] == str(promo["generation_id"])
    rows = generations.evaluations(db, promo["generation_id"])
    assert [c["params"] for c in pending["subject"]["candidates"]] == [e["params"] for e in rows]
    assert all("parent_objectives" in c for c in pending["subject"]["candidates"])
    progress = json.loads(_cli("status", "gated-ladder", "--json"))[0]
    assert progress["gates_pending"] == 1 and progress["status"] == "active"

    decided = json.loads(_cli("gate", "approve", "gated-ladder", "--by", "ada", "--note", "looks right", "--json"))
    assert decided["status"] == "approved" and decided["decided_by"] == "ada"
    _tick_until(db, cid, lambda: generations.get(db, promo["generation_id"])["status"] == "told")

    # the certification is held next; reject it by gate id prefix: it fails for good
    _tick_until(db, cid, lambda: bool(_generations(db, cid, "certification")))
    [cert] = _generations(db, cid, "certification")
    _tick()
    gate = gates.for_generation(db, cert["generation_id"])
    assert gate is not None and gate["status"] == "pending"
    _cli("gate", "reject", str(gate["gate_id"])[:8], "--by", "ada")
    _tick_until(db, cid, lambda: campaigns.get_campaign(db, cid)["status"] != "active")
    row = generations.get(db, cert["generation_id"])
    assert row["status"] == "failed" and "rejected at gate" in row["error"]
    assert {e["failure_category"] for e in generations.evaluations(db, cert["generation_id"])} == {"gate_rejected"}
    final = campaigns.get_campaign(db, cid)
    assert final["status"] == "completed" and final["completion_reason"] == "budget_spent"
    # no certified evaluation exists, so the campaign's best comes from a lower rung
    evals = generations.campaign_evaluations(db, cid)
    assert not [e for e in evals if e["fidelity"] == 2 and e["status"] == "succeeded"]
    # a decided gate cannot be decided again
    with pytest.raises(TerminalStateError, match="already rejected"):
        gates.decide(db, gate["gate_id"], True, "bob")


def test_completion_gate_waits_then_rejection_keeps_running_and_approval_completes(db, make_spec):
    spec = make_spec(slug="gated-end", budget={"evaluations": 16}, optimizer={"name": "ngopt", "population": 8},
                     gates={"completion": True})
    cid = campaigns.insert_campaign(db, spec)
    # `tick --until-done` stops by itself once the only active campaign waits for a decision
    result = CliRunner().invoke(app, ["tick", "--until-done", "--max-ticks", "30"])
    assert result.exit_code == 3, result.output  # stopped: only people can move it on
    assert "waiting for a decision" in result.output
    [gate] = gates.of_campaign(db, cid, "completion")
    assert gate["status"] == "pending" and gate["subject"]["reason"] == "budget_spent"
    assert campaigns.get_campaign(db, cid)["status"] == "active"
    n_gens = len(_generations(db, cid, "search"))

    # rejected: the campaign stays active and is not asked about the same state again
    _cli("gate", "reject", "gated-end", "--kind", "completion", "--by", "ada", "--note", "not yet")
    for _ in range(2):
        _tick()
    assert campaigns.get_campaign(db, cid)["status"] == "active"
    assert len(gates.of_campaign(db, cid, "completion")) == 1
    assert len(_generations(db, cid, "search")) == n_gens

    # more budget: the hunt goes on, spends it, and asks again (a new gate about the new budget)
    _cli("campaign", "extend", "gated-end", "--evaluations", "8")
    _tick_until(db, cid, lambda: any(g["status"] == "pending" for g in gates.of_campaign(db, cid, "completion")))
    assert len(_generations(db, cid, "search")) > n_gens
    second = gates.latest(db, cid, "completion")
    assert second["subject"]["evaluations_budget"] == 24
    best = second["subject"]["best"]
    assert best is not None and best["objective"] == pytest.approx(
        min(e["objective"] for e in generations.campaign_evaluations(db, cid) if e["feasible"]))

    _cli("gate", "approve", str(second["gate_id"]), "--by", "ada")
    _tick()
    final = campaigns.get_campaign(db, cid)
    assert final["status"] == "completed" and final["completion_reason"] == "budget_spent"


def test_gate_references_and_requests_are_checked(db, make_spec):
    cid = campaigns.insert_campaign(db, make_spec(slug="refs-only"))
    first = gates.request(db, cid, "completion", {"reason": "stagnated"})
    assert gates.request(db, cid, "completion", {"reason": "other"})["gate_id"] == first["gate_id"]
    with pytest.raises(ValueError, match="generation_id"):
        gates.request(db, cid, "promotion", {})
    with pytest.raises(ValueError, match="kind"):
        gates.request(db, cid, "pause", {})
    with pytest.raises(KeyError, match="no gate 'nope-nope'"):
        gates.resolve(db, "nope-nope")
    with pytest.raises(ValueError, match="decided_by"):
        gates.decide(db, first["gate_id"], True, "  ")
    result = CliRunner().invoke(app, ["gate", "approve", "no-such-campaign"])
    assert result.exit_code == 2 and "no gate 'no-such-campaign'" in result.output
    assert gates.latest(db, cid, "completion")["status"] == "pending"  # nothing was decided
