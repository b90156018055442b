"""The rows a campaign report is made of, read in one place (``huntflow report``, the tick's
report on completion and the ``hunt-report`` flow all use :func:`report_inputs`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from huntflow.store import campaigns, findings, generations, trajectories, verifications

# generation columns the report shows (not the optimizer checkpoint nor the result document itself)
_GENERATION_COLUMNS = (
    "generation_id, generation_index, ask_id, kind, fidelity, fidelity_name, status, operator, attempt,"
    " artifact_path, (result_document is not null) as has_result_document, error, created_at, finished_at"
)


def generation_rows(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    """A campaign's generations in ask order, without their checkpoints and result documents
    (``has_result_document`` says whether one is stored)."""
    return conn.execute(
        f"select {_GENERATION_COLUMNS} from hunt.generations where campaign_id = %s order by ask_id",
        (campaign_id,),
    ).fetchall()


def stage_run_rows(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    """Every ``hunt.stage_runs`` row of a campaign, oldest first."""
    return conn.execute(
        "select * from hunt.stage_runs where campaign_id = %s order by started_at, stage_run_id", (campaign_id,)
    ).fetchall()


def report_inputs(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """The plain rows :func:`huntflow.engine.report.build` takes, for a campaign id or slug.

    Returns:
        ``{"campaign", "spec", "evaluations", "generations", "trajectories", "findings",
        "stage_runs", "verification"}`` (``evaluations`` as :func:`~huntflow.store.generations.campaign_evaluations`
        returns them).
    Raises:
        KeyError: no such campaign.
    """
    row = campaigns.get_campaign(conn, ref)
    cid = row["campaign_id"]
    return {
        "campaign": row,
        "spec": campaigns.spec_of(row),
        "evaluations": generations.campaign_evaluations(conn, cid),
        "generations": generation_rows(conn, cid),
        "trajectories": trajectories.for_campaign(conn, cid),
        "findings": findings.for_campaign(conn, cid),
        "stage_runs": stage_run_rows(conn, cid),
        "verification": verifications.share(conn, cid),
    }
