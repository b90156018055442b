"""discover: read settings, rank active campaigns, claim a cohort under a lease."""

from __future__ import annotations

from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE

from huntflow.store import campaigns, stage_runs
from huntflow.store.connection import session
from huntflow.store.states import Stage
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
        # one statement: the settings, the reaping, the claim and the claimed campaigns' stage rows
        defaults = {"max_concurrent_campaigns": 4, "lease_seconds": ctx.lease_seconds}
        rows, _, reaped = campaigns.discover_cohort(conn, ctx.tick_id, ctx.owner, defaults, stage_runs.REAP_SQL,
                                                    only=only, session_pid=ctx.session_pid)
        if not rows:
            active = conn.execute("select count(*) as n from hunt.campaigns where status = 'active'").fetchone()["n"]
            stage_runs.record_done(conn, ctx.tick_id, Stage.DISCOVER,
                                   [(None, {"claimed": 0, "active": active, "reaped": reaped})])
        return [r["campaign_id"] for r in rows]


@task(cache_policy=NO_CACHE, name="discover", retries=RETRIES, retry_delay_seconds=retry_delays(), retry_jitter_factor=0.5,
      timeout_seconds=120)
def discover(ctx: TickContext, only: list[UUID] | None = None) -> list[UUID]:
    """Rank active campaigns and claim a cohort with a lease."""
    return run(ctx, only)
