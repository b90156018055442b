"""``hunt.gates``: the human decisions a campaign waits for.

Two kinds (``spec.gates`` turns each on):

* ``promotion`` — one gate per held generation (``generation_id``): a promotion or
  certification generation stays ``planned`` until its gate is approved; dispatch launches it
  then, or fails it for good when the gate is rejected.
* ``completion`` — learn asks before completing (``subject.reason``); at most one is pending per
  campaign (a partial unique index). Approved: learn completes with that reason. Rejected: the
  campaign keeps running.

A decision is a guarded ``pending -> approved|rejected`` update, so two people deciding at once
cannot both win: the second learns the gate was already decided.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.errors import HuntflowError, TerminalStateError

KINDS = ("promotion", "completion")
STATUSES = ("pending", "approved", "rejected")


class GateNotFound(HuntflowError, KeyError):
    """Raised when a gate reference matches no gate, or more than one."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def request(conn: psycopg.Connection, campaign_id: UUID, kind: str, subject: dict[str, Any],
            generation_id: UUID | None = None) -> dict[str, Any]:
    """The gate for this generation (promotion) or the pending completion gate, created if absent.

    Idempotent: a second request for the same generation, or for a completion while one is
    pending, returns the existing row unchanged.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
    if (kind == "promotion") != (generation_id is not None):
        raise ValueError("generation_id: required for a promotion gate, and only for one")
    row = conn.execute(
        "insert into hunt.gates (campaign_id, kind, generation_id, subject) values (%s, %s, %s, %s)"
        " on conflict do nothing returning *",
        (campaign_id, kind, generation_id, Jsonb(subject)),
    ).fetchone()
    if row is not None:
        return row
    if generation_id is not None:
        return for_generation(conn, generation_id)
    pending = latest(conn, campaign_id, "completion")
    assert pending is not None and pending["status"] == "pending"
    return pending


def for_generation(conn: psycopg.Connection, generation_id: UUID) -> dict[str, Any] | None:
    """The promotion gate holding ``generation_id``, if any."""
    return conn.execute("select * from hunt.gates where generation_id = %s", (generation_id,)).fetchone()


def latest(conn: psycopg.Connection, campaign_id: UUID, kind: str) -> dict[str, Any] | None:
    """The campaign's most recently requested gate of ``kind``."""
    return conn.execute(
        "select * from hunt.gates where campaign_id = %s and kind = %s order by requested_at desc, gate_id limit 1",
        (campaign_id, kind),
    ).fetchone()


def of_campaign(conn: psycopg.Connection, campaign_id: UUID, kind: str | None = None) -> list[dict[str, Any]]:
    """A campaign's gates, oldest first (optionally of one kind)."""
    return conn.execute(
        "select * from hunt.gates where campaign_id = %s and (%s::hunt.gate_kind is null or kind = %s::hunt.gate_kind)"
        " order by requested_at, gate_id",
        (campaign_id, kind, kind),
    ).fetchall()


def listing(conn: psycopg.Connection, slug: str | None = None, status: str | None = "pending") -> list[dict[str, Any]]:
    """Gates with their campaign slug, oldest first; ``status=None`` lists every status."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status: must be one of {STATUSES}, got {status!r}")
    return conn.execute(
        "select q.*, c.slug from hunt.gates q join hunt.campaigns c using (campaign_id)"
        " where (%s::text is null or c.slug = %s) and (%s::hunt.gate_status is null or q.status = %s::hunt.gate_status)"
        " order by q.requested_at, q.gate_id",
        (slug, slug, status, status),
    ).fetchall()


_HEX = re.compile(r"^[0-9a-f-]{6,36}$")


def resolve(conn: psycopg.Connection, ref: str, kind: str | None = None) -> dict[str, Any]:
    """The gate ``ref`` names: a gate id, a unique prefix of one (6+ characters), or a campaign
    slug with exactly one pending gate (of ``kind`` when given).

    Raises:
        GateNotFound: nothing matches, or the reference is ambiguous (the message says which).
    """
    ref = ref.strip().lower()
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
    if _HEX.match(ref):
        rows = conn.execute(
            "select q.*, c.slug from hunt.gates q join hunt.campaigns c using (campaign_id)"
            " where q.gate_id::text like %s order by q.requested_at",
            (ref + "%",),
        ).fetchall()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise GateNotFound(f"gate reference {ref!r} is ambiguous: {len(rows)} gates start with it")
    rows = [r for r in listing(conn, slug=ref, status="pending") if kind is None or r["kind"] == kind]
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise GateNotFound(f"no gate {ref!r}: neither a gate id nor a campaign with a pending"
                           f" {kind + ' ' if kind else ''}gate")
    raise GateNotFound(f"campaign {ref!r} has {len(rows)} pending gates; name one by its id "
                       f"({', '.join(str(r['gate_id'])[:8] for r in rows)})")


def decide(conn: psycopg.Connection, gate_id: UUID, approve: bool, decided_by: str, note: str = "") -> dict[str, Any]:
    """Approve or reject a pending gate.

    Raises:
        GateNotFound: no such gate.
        TerminalStateError: the gate was already decided (by someone else, or before).
        ValueError: ``decided_by`` is empty.
    """
    if not decided_by.strip():
        raise ValueError("decided_by: say who decides")
    row = conn.execute(
        "update hunt.gates set status = %s, decided_at = now(), decided_by = %s, note = %s"
        " where gate_id = %s and status = 'pending' returning *",
        ("approved" if approve else "rejected", decided_by.strip(), note, gate_id),
    ).fetchone()
    if row is not None:
        return row
    existing = conn.execute("select * from hunt.gates where gate_id = %s", (gate_id,)).fetchone()
    if existing is None:
        raise GateNotFound(f"no gate {gate_id}")
    raise TerminalStateError(
        f"gate {str(gate_id)[:8]} was already {existing['status']} by {existing['decided_by']} at {existing['decided_at']}"
    )
