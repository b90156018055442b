"""discover: read settings, rank active campaigns, claim a cohort under a lease."""

from __future__ import annotations

from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.store import campaigns, settings, stage_runs
from huntflow.store.connection import session
from huntflow.store.states import Stage, StageRunStatus
from huntflow.tasks._stage import RETRIES, TickContext, retry_delays


def run(ctx: TickContext, only: list[UUID] | None = None) -> list[UUID]:
    """Claim up to ``max_concurrent_campaigns`` active campaigns for this tick.

    Writes one succeeded ``discover`` stage row per claimed campaign (with its rank), or a
    single row without a campaign when nothing was claimed. First closes the stage rows that
    dead ticks left ``running`` as ``crashed`` (:func:`~huntflow.store.stage_runs.reap_orphans`).

    Args:
        only: restrict the cohort to these campaigns (a campaign's own follow-up tick).
    Returns:
        The claimed campaign ids, best ranked first.
    """
    with session() as conn:
        limit = int(settings.get_setting(conn, "max_concurrent_campaigns", 4))
        lease = float(settings.get_setting(conn, "lease_seconds", ctx.lease_seconds))
        rows = campaigns.claim_cohort(conn, ctx.owner, limit, lease, only=only, session_pid=ctx.session_pid)
        reaped = stage_runs.reap_orphans(conn, ctx.tick_id)
        for rank, row in enumerate(rows):
            run_id = stage_runs.start(conn, ctx.tick_id, row["campaign_id"], Stage.DISCOVER, 1)
            stage_runs.finish(
                conn, run_id, StageRunStatus.SUCCEEDED,
                summary={"rank": rank, "priority": row["priority"], "reward": row["rank_reward"],
                         "cohort_size": len(rows), "max_concurrent_campaigns": limit,
                         "reaped": sum(1 for r in reaped if r["campaign_id"] == row["campaign_id"])},
            )
        if not rows:
            active = conn.execute("select count(*) as n from hunt.campaigns where status = 'active'").fetchone()["n"]
            run_id = stage_runs.start(conn, ctx.tick_id, None, Stage.DISCOVER, 1)
            stage_runs.finish(conn, run_id, StageRunStatus.SUCCEEDED, summary={"claimed": 0, "active": active,
                                                                             "reaped": len(reaped)})
        return [r["campaign_id"] for r in rows]


@task(cache_policy=NO_CACHE, name="discover", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=120)
def discover(ctx: TickContext, only: list[UUID] | None = None) -> list[UUID]:
    """Rank active campaigns and claim a cohort with a lease."""
    return run(ctx, only)
