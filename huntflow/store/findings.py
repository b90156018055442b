"""``hunt.findings``: what review found, one row per finding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.store.states import Severity


@dataclass(frozen=True)
class Finding:
    severity: Severity
    kind: str
    message: str
    evaluation_id: UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)


def insert_findings(
    conn: psycopg.Connection, campaign_id: UUID, generation_id: UUID | None, findings: list[Finding]
) -> None:
    if not findings:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "insert into hunt.findings (campaign_id, generation_id, evaluation_id, severity, kind, message, details)"
            " values (%s, %s, %s, %s, %s, %s, %s)",
            [
                (campaign_id, generation_id, f.evaluation_id, f.severity.value, f.kind, f.message, Jsonb(f.details))
                for f in findings
            ],
        )


def for_campaign(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "select * from hunt.findings where campaign_id = %s order by finding_id", (campaign_id,)
    ).fetchall()
