"""``hunt.campaign_folds``: a campaign's told generations folded into one row.

evolve's mode replay and learn continue from the fold instead of re-reading every generation
(:mod:`huntflow.tasks.fold`); evolve writes it inside its commit's transaction (:func:`put`), so
a crash before the commit leaves the previous fold and the same mode is replayed.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


def get(conn: psycopg.Connection, campaign_id: UUID) -> dict[str, Any] | None:
    """``{"state", "previous"}`` of the campaign's fold (``previous`` may be None), or None."""
    return conn.execute(GET_SQL, (campaign_id,)).fetchone()


GET_SQL = "select state, previous from hunt.campaign_folds where campaign_id = %s"
""":func:`get`'s statement (parameter: the campaign id), to run it in a pipeline."""


def put(conn: psycopg.Connection, campaign_id: UUID, state: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Store the fold (``state["ask_id"]`` is the last generation it covers); call inside the
    tell's transaction."""
    conn.execute(
        "insert into hunt.campaign_folds (campaign_id, ask_id, state, previous) values (%s, %s, %s, %s)"
        " on conflict (campaign_id) do update set ask_id = excluded.ask_id, state = excluded.state,"
        " previous = excluded.previous, updated_at = now()",
        (campaign_id, int(state["ask_id"]), Jsonb(state), None if previous is None else Jsonb(previous)),
    )
