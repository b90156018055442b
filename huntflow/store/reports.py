"""The rows a campaign report is made of, read in one place (``huntflow report``, the tick's
report on completion and the ``hunt-report`` flow all use :func:`report_inputs`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from huntflow.engine.spec import CampaignSpec
from huntflow.engine.summary import best_of
from huntflow.store import campaigns, findings, generations, trajectories, verifications

# generation columns the report shows (not the optimizer checkpoint nor the result document itself)
_GENERATION_COLUMNS = (
    "generation_id, generation_index, ask_id, kind, fidelity, fidelity_name, status, operator, attempt,"
    " artifact_path, (result_document is not null) as has_result_document, error, created_at, finished_at"
)


# evaluation columns the report reads (not the optimizer's decision, the ALM multipliers, the
# row's timestamps, nor every row's provenance: at 1M rows leaving those out took the read from
# 15-24 s to 11-14 s; the best's provenance, which the report shows, is read for it alone)
_EVALUATION_COLUMNS = (
    "e.evaluation_id, e.generation_id, e.campaign_id, e.candidate_index, e.params, e.param_hash, e.fidelity,"
    " e.status, e.failure_category, e.metrics, e.objectives, e.objective, e.constraints, e.feasible,"
    " e.alm_loss, e.alm_rho, e.alm_outer, e.wall_seconds"
)


def report_evaluations(conn: psycopg.Connection, spec: CampaignSpec, campaign_id: UUID) -> list[dict[str, Any]]:
    """:func:`~huntflow.store.generations.campaign_evaluations` with the columns the report reads;
    the best evaluation (:func:`huntflow.engine.summary.best_of`) also has its ``provenance``."""
    rows = generations.campaign_evaluations(conn, campaign_id, _EVALUATION_COLUMNS)
    best = best_of(spec, rows)
    if best is not None:
        best["provenance"] = conn.execute("select provenance from hunt.evaluations where evaluation_id = %s",
                                          (best["evaluation_id"],)).fetchone()["provenance"]
    return rows


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
        "stage_runs", "verification"}`` (``evaluations`` as :func:`report_evaluations` returns them).
    Raises:
        KeyError: no such campaign.
    """
    row = campaigns.get_campaign(conn, ref)
    cid = row["campaign_id"]
    spec = campaigns.spec_of(row)
    return {
        "campaign": row,
        "spec": spec,
        "evaluations": report_evaluations(conn, spec, cid),
        "generations": generation_rows(conn, cid),
        "trajectories": trajectories.for_campaign(conn, cid),
        "findings": findings.for_campaign(conn, cid),
        "stage_runs": stage_run_rows(conn, cid),
        "verification": verifications.share(conn, cid),
    }
