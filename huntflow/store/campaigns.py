"""Campaign rows: insert, read, claim a cohort under a lease, finish.

A tick claims campaigns with a lease (``lease_owner``, ``lease_expires_at`` compared with the
database clock), so overlapping ticks never work the same campaign; a crashed tick's lease simply
expires. Completion is guarded by ``status = 'active'``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from huntflow.engine.spec_limits import LIMITS
from huntflow.errors import InputError, StaleTransition, TerminalStateError
from huntflow.store.columns import light
from huntflow.store.states import CampaignStatus, Mode, Stage
from huntflow.store.summaries import BEST_EVALUATION_SQL

if TYPE_CHECKING:  # the spec module loads the model registry (JAX): reading rows does not need it
    from huntflow.engine.spec import CampaignSpec


class DuplicateCampaign(InputError):
    """Raised when a campaign with the same slug already exists."""


def insert_campaign(conn: psycopg.Connection, spec: CampaignSpec) -> UUID:
    """Store a validated spec as a new active campaign.

    Returns:
        The new campaign id.
    Raises:
        DuplicateCampaign: the slug is taken (nothing is written).
    """
    try:
        row = conn.execute(
            """
            insert into hunt.campaigns
              (slug, title, spec, spec_fingerprint, model, seed, priority, evaluations_budget)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
            returning campaign_id
            """,
            (
                spec.slug, spec.title, Jsonb(spec.model_dump(mode="json")), spec.fingerprint(),
                spec.model.label, spec.seed, spec.priority, spec.budget.evaluations,
            ),
        ).fetchone()
    except psycopg.errors.UniqueViolation as e:
        raise DuplicateCampaign(f"a campaign with slug {spec.slug!r} already exists") from e
    return row["campaign_id"]


def get_campaign(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """A campaign row by id or slug, without its optimizer checkpoint (:func:`checkpoint`).

    Raises:
        KeyError: no such campaign.
    """
    column = "campaign_id" if isinstance(ref, UUID) else "slug"
    row = conn.execute(f"select {light(conn, 'campaigns')} from hunt.campaigns where {column} = %s", (ref,)).fetchone()
    if row is None:
        raise KeyError(f"no campaign {ref!s}")
    return row


def checkpoint(conn: psycopg.Connection, campaign_id: UUID) -> tuple[int, bytes | None]:
    """``(optimizer_seq, optimizer_state)``: the campaign's latest optimizer checkpoint."""
    row = conn.execute(
        "select optimizer_seq, optimizer_state from hunt.campaigns where campaign_id = %s", (campaign_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no campaign {campaign_id!s}")
    state = row["optimizer_state"]
    return row["optimizer_seq"], None if state is None else bytes(state)


def checkpoint_and_journal(conn: psycopg.Connection, campaign_id: UUID) -> tuple[int, bytes | None, list[Any]]:
    """``(optimizer_seq, optimizer_state, optimizer_journal)``: the latest full checkpoint and the
    journal of the commits since (:mod:`huntflow.engine.optimize.journal`)."""
    row = conn.execute(
        "select optimizer_seq, optimizer_state, optimizer_journal from hunt.campaigns where campaign_id = %s",
        (campaign_id,),
    ).fetchone()
    if row is None:
        raise KeyError(f"no campaign {campaign_id!s}")
    state = row["optimizer_state"]
    return row["optimizer_seq"], None if state is None else bytes(state), list(row["optimizer_journal"] or [])


DIGEST_SQL = ("select optimizer_seq, optimizer_state_md5 || ':' || jsonb_array_length(optimizer_journal) as digest"
              " from hunt.campaigns where campaign_id = %s")


def checkpoint_digest(conn: psycopg.Connection, campaign_id: UUID) -> tuple[int, str | None]:
    """``(optimizer_seq, digest)`` with digest ``"<md5 of optimizer_state>:<journal entries>"``,
    the md5 computed by the database when the state was written (a trigger, whoever wrote it:
    migration ``20261209010000``; no bytes travel or are hashed on reading); :func:`state_digest`
    computes the same locally."""
    row = conn.execute(DIGEST_SQL, (campaign_id,)).fetchone()
    if row is None:
        raise KeyError(f"no campaign {campaign_id!s}")
    return row["optimizer_seq"], row["digest"]


def state_digest(state: bytes | None, journal_entries: int) -> str | None:
    """What :func:`checkpoint_digest` reads for a stored ``state`` and journal length."""
    import hashlib

    return None if state is None else f"{hashlib.md5(state).hexdigest()}:{journal_entries}"


def digest_entries(digest: str | None) -> int:
    """The journal length a :func:`state_digest` records (0 for no checkpoint)."""
    return 0 if digest is None else int(digest.rsplit(":", 1)[1])


def digest_after_entry(digest: str | None) -> str | None:
    """The :func:`state_digest` of the same checkpoint with one more journal entry."""
    if digest is None:
        return None
    md5, n = digest.rsplit(":", 1)
    return f"{md5}:{int(n) + 1}"


_SPECS: dict[str, CampaignSpec] = {}
"""Parsed specs by their stored JSON text (every stage of every tick reads its campaign's spec)."""


def spec_of(row: dict[str, Any]) -> CampaignSpec:
    """The validated spec stored on a campaign row (not re-checked against its model).

    Parsed once per process for each distinct stored text (specs are frozen models; parsing
    one costs about a millisecond, and each stage of each tick asks)."""
    from huntflow.engine.spec import parse_spec

    spec = row["spec"]
    text = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)
    parsed = _SPECS.get(text)
    if parsed is None:
        parsed = parse_spec(json.loads(text), stored=True)
        if len(_SPECS) >= 1024:
            _SPECS.clear()
        _SPECS[text] = parsed
    return parsed


def progress(conn: psycopg.Connection, slug: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``hunt.campaign_progress`` (all, or the one with ``slug``), newest first."""
    if slug is None:
        return conn.execute("select * from hunt.campaign_progress order by created_at, slug").fetchall()
    return conn.execute("select * from hunt.campaign_progress where slug = %s", (slug,)).fetchall()


def claim_cohort(
    conn: psycopg.Connection, owner: str, limit: int, lease_seconds: float, only: list[UUID] | None = None,
    session_pid: int | None = None,
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` active campaigns nobody else holds, best ranked first.

    Ranking: priority (high first), then the latest trajectory reward (high first), then age.
    ``limit`` counts campaigns already leased by other live ticks, so the total in progress
    never exceeds it. Rows locked by a concurrent claim are skipped, not waited for.
    ``only`` restricts the claim to those campaign ids. A lease is free when it expired or when
    its owner's heartbeat session is gone (``lease_pid`` without its advisory lock: the owner's
    process died); ``session_pid`` is this claimer's heartbeat session
    (:class:`huntflow.store.leases.Heartbeat`).

    Returns:
        The claimed campaign rows, in rank order.
    """
    returning = light(conn, "campaigns", "c")
    # one statement (one snapshot, no explicit transaction): the room left by other live ticks'
    # leases, then the best ranked free campaigns claimed
    rows = conn.execute(
        f"with limits as (select %(limit)s::int as lim, %(lease)s::float8 as lease), {_claim_ctes(returning)}"
        " select * from claimed",
        {"owner": owner, "limit": int(limit), "lease": float(lease_seconds), "only": only, "pid": session_pid},
    ).fetchall()
    rows.sort(key=_rank_order)
    return rows


def _rank_order(row: dict[str, Any]) -> tuple:
    """A claimed row's place in the cohort: as the claim ranks (priority, reward, age)."""
    return -row["priority"], -(row["rank_reward"] or float("-inf")), row["created_at"]


def _claim_ctes(returning: str) -> str:
    """The claim as CTEs ``busy``, ``ranked``, ``claimed`` (the claimed rows: ``returning`` and
    ``rank_reward``), reading ``lim`` and ``lease`` from a CTE ``limits`` the caller defines."""
    return f"""
        busy as (
          select count(*) as n from hunt.campaigns where status = 'active'
             and lease_expires_at > now() and lease_owner <> %(owner)s
             and (lease_pid is null or hunt.lease_session_alive(lease_pid))
        ), ranked as (
          select c.campaign_id, c.priority, t.reward, c.created_at
          from hunt.campaigns c
          left join lateral (
            select reward from hunt.trajectories t
            where t.campaign_id = c.campaign_id
            order by generation_index desc limit 1
          ) t on true
          where c.status = 'active'
            and (c.lease_expires_at is null or c.lease_expires_at < now() or c.lease_owner = %(owner)s
                 or (c.lease_pid is not null and not hunt.lease_session_alive(c.lease_pid)))
            and (%(only)s::uuid[] is null or c.campaign_id = any(%(only)s::uuid[]))
          order by c.priority desc, t.reward desc nulls last, c.created_at
          limit greatest(0, (select lim from limits) - (select n from busy))
          for update of c skip locked
        ), claimed as (
          update hunt.campaigns c
             set lease_owner = %(owner)s,
                 lease_expires_at = now() + make_interval(secs => (select lease from limits)),
                 lease_pid = %(pid)s, current_stage = 'discover', updated_at = now()
            from ranked
           where c.campaign_id = ranked.campaign_id
          returning {returning}, ranked.reward as rank_reward
        )"""


def discover_cohort(
    conn: psycopg.Connection, tick_id: UUID, owner: str, defaults: dict[str, Any], reap_sql: str,
    only: list[UUID] | None = None, session_pid: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """discover's writes in one statement (one round trip, one commit): the settings
    (``max_concurrent_campaigns``, ``lease_seconds``; ``defaults`` when unset), the reaping of
    dead ticks' rows (``reap_sql``, an ``UPDATE … RETURNING campaign_id`` of ``hunt.stage_runs``
    taking ``%(tick)s``), :func:`claim_cohort`'s claim, and one succeeded ``discover`` stage row
    per claimed campaign with its summary (rank, priority, reward, cohort size, limit, rows
    reaped of it). One snapshot: the reaping decides as if it ran first (a row is an orphan when
    its tick no longer holds the campaign, claimed by us next or not).

    Returns:
        ``(claimed rows in rank order, {"max_concurrent_campaigns", "lease_seconds"}, rows reaped)``.
    """
    returning = light(conn, "campaigns", "c")
    rows = conn.execute(
        f"""
        with limits as (
          select coalesce((select trunc((value #>> '{{}}')::numeric)::int from hunt.settings
                            where key = 'max_concurrent_campaigns'), %(limit)s) as lim,
                 coalesce((select (value #>> '{{}}')::float8 from hunt.settings
                            where key = 'lease_seconds'), %(lease)s) as lease
        ), reaped as ({reap_sql}), {_claim_ctes(returning)},
        ranks as (
          select c.campaign_id, c.priority, c.rank_reward,
                 row_number() over (order by c.priority desc, c.rank_reward desc nulls last, c.created_at) - 1 as rank,
                 count(*) over () as cohort
            from claimed c
        ), recorded as (
          insert into hunt.stage_runs (tick_id, campaign_id, stage, status, attempt, summary, finished_at)
          select %(tick)s, r.campaign_id, 'discover', 'succeeded', 1,
                 jsonb_build_object('rank', r.rank, 'priority', r.priority, 'reward', r.rank_reward,
                                    'cohort_size', r.cohort, 'max_concurrent_campaigns', (select lim from limits),
                                    'reaped', (select count(*) from reaped x where x.campaign_id = r.campaign_id)),
                 now()
            from ranks r
          on conflict (tick_id, campaign_id, stage, pass) do update set status = 'succeeded', attempt = 1,
            summary = excluded.summary, error = null, started_at = now(), finished_at = now()
          returning 1
        )
        select l.lim as _limit, l.lease as _lease, (select count(*) from reaped)::int as _reaped,
               (select count(*) from recorded)::int as _recorded, c.*
          from limits l left join claimed c on true
        """,
        {"owner": owner, "limit": int(defaults["max_concurrent_campaigns"]),
         "lease": float(defaults["lease_seconds"]), "only": only, "pid": session_pid, "tick": tick_id},
    ).fetchall()
    first = rows[0]
    got = {"max_concurrent_campaigns": first["_limit"], "lease_seconds": first["_lease"]}
    reaped = first["_reaped"]
    claimed = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows if r["campaign_id"] is not None]
    claimed.sort(key=_rank_order)
    return claimed, got, reaped


def release_lease(conn: psycopg.Connection, campaign_id: UUID, owner: str) -> bool:
    """Drop the lease if ``owner`` still holds it; ``False`` when someone else does."""
    cur = conn.execute(
        "update hunt.campaigns set lease_owner = null, lease_expires_at = null, lease_pid = null, updated_at = now()"
        " where campaign_id = %s and lease_owner = %s",
        (campaign_id, owner),
    )
    return cur.rowcount == 1


def set_stage(conn: psycopg.Connection, campaign_id: UUID, stage: Stage) -> None:
    conn.execute(
        "update hunt.campaigns set current_stage = %s, updated_at = now() where campaign_id = %s",
        (stage.value, campaign_id),
    )


def set_mode(conn: psycopg.Connection, campaign_id: UUID, mode: Mode) -> None:
    conn.execute(
        "update hunt.campaigns set mode = %s, updated_at = now() where campaign_id = %s",
        (mode.value, campaign_id),
    )


def set_best(conn: psycopg.Connection, campaign_id: UUID, objective: float | None, evaluation_id: UUID | None) -> None:
    conn.execute(
        "update hunt.campaigns set best_objective = %s, best_evaluation_id = %s, updated_at = now()"
        " where campaign_id = %s",
        (objective, evaluation_id, campaign_id),
    )


def set_best_from(conn: psycopg.Connection, campaign_id: UUID, generation_id: UUID,
                  objective: float) -> psycopg.Cursor:
    """:func:`set_best` to the generation's first (candidate order) feasible succeeded evaluation
    with this objective, found and stored in one statement (it may run in a pipeline); the
    cursor yields that evaluation (:data:`huntflow.store.summaries.BEST_EVALUATION_SQL`), or no
    row (nothing stored) when there is none."""
    return conn.execute(
        "update hunt.campaigns c set best_objective = b.objective, best_evaluation_id = b.evaluation_id,"
        f" updated_at = now() from ({BEST_EVALUATION_SQL}) b where c.campaign_id = %s"
        " returning b.evaluation_id, b.objective, b.params, b.fidelity, b.generation_id, b.candidate_index",
        (generation_id, objective, campaign_id),
    )


def finish_campaign(
    conn: psycopg.Connection, campaign_id: UUID, status: CampaignStatus, reason: str
) -> bool:
    """Move an active campaign to a terminal status; cancel its unlaunched generations.

    Returns:
        ``False`` when the campaign was no longer active (a concurrent writer finished it).
    """
    if not status.is_finished():
        raise ValueError(f"{status} is not a terminal status")
    with conn.transaction():
        locked = conn.execute(
            "select 1 from hunt.campaigns where campaign_id = %s and status = 'active' for update", (campaign_id,)
        ).fetchone()
        if locked is None:
            return False
        # generations first: the lease (which a tick's guarded connection writes under) goes last
        conn.execute(
            "update hunt.generations set status = 'cancelled', updated_at = now()"
            " where campaign_id = %s and status = 'planned'",
            (campaign_id,),
        )
        conn.execute(
            "update hunt.campaigns set status = %s, completion_reason = %s, completed_at = now(),"
            " lease_owner = null, lease_expires_at = null, lease_pid = null, updated_at = now()"
            " where campaign_id = %s and status = 'active'",
            (status.value, reason, campaign_id),
        )
    return True


def extend_budget(conn: psycopg.Connection, ref: UUID | str, evaluations: int) -> dict[str, Any]:
    """Raise a campaign's evaluation budget by ``evaluations``; a completed campaign reopens.

    The optimizer learns the new budget at its next evolve (it compares the row's budget with
    its own). Raises:
        KeyError: no such campaign.
        TerminalStateError: the campaign failed or was cancelled.
        InputError: ``evaluations`` is not positive, or the budget would pass
            :data:`~huntflow.engine.spec_limits.LIMITS` ``["evaluations"]`` (a ``ValueError``).
    """
    cap = LIMITS["evaluations"]
    if isinstance(evaluations, bool) or not isinstance(evaluations, int) or not 0 < evaluations <= cap:
        raise InputError(f"evaluations (-n): must be an integer in [1, {cap}], got {evaluations}")
    row = get_campaign(conn, ref)
    if row["evaluations_budget"] + evaluations > cap:
        raise InputError(f"evaluations (-n): the budget would be {row['evaluations_budget'] + evaluations},"
                         f" more than the {cap} a campaign may have")
    status = CampaignStatus(row["status"])
    if status in (CampaignStatus.FAILED, CampaignStatus.CANCELLED):
        raise TerminalStateError(f"campaign {row['slug']} is {status.value}; its budget cannot be extended")
    return conn.execute(
        "update hunt.campaigns set evaluations_budget = evaluations_budget + %s,"
        " status = 'active', completion_reason = null, completed_at = null, search_finished = false,"
        " updated_at = now() where campaign_id = %s and status in ('active', 'paused', 'completed')"
        f" returning {light(conn, 'campaigns')}",
        (evaluations, row["campaign_id"]),
    ).fetchone()


def set_paused(conn: psycopg.Connection, ref: UUID | str, paused: bool) -> dict[str, Any]:
    """Pause an active campaign (``active -> paused``) or resume a paused one.

    A paused campaign is not claimed by ticks: nothing new is asked or launched; generations
    already launched run on and their results wait in their rows until it is resumed.

    Returns:
        The updated campaign row.
    Raises:
        KeyError: no such campaign.
        TerminalStateError: the campaign is not in the status the change starts from.
    """
    row = get_campaign(conn, ref)
    src, dst = (CampaignStatus.ACTIVE, CampaignStatus.PAUSED) if paused else (CampaignStatus.PAUSED, CampaignStatus.ACTIVE)
    updated = conn.execute(
        "update hunt.campaigns set status = %s, updated_at = now() where campaign_id = %s and status = %s returning *",
        (dst.value, row["campaign_id"], src.value),
    ).fetchone()
    if updated is None:
        verb = "paused" if paused else "resumed"
        raise TerminalStateError(f"campaign {row['slug']} is {row['status']}; only a {src.value} campaign can be {verb}")
    return updated


def unfinished_generations(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    """Generations asked and not yet told, failed or cancelled, in ask order (no checkpoints)."""
    return conn.execute(
        "select generation_id, generation_index, kind, fidelity_name, status, operator, dispatch_ref, attempt"
        " from hunt.generations where campaign_id = %s and status not in ('told', 'failed', 'cancelled')"
        " order by ask_id",
        (campaign_id,),
    ).fetchall()


def cancel_campaign(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """Cancel an active or paused campaign and every generation of it not yet told, in one
    transaction. A generation still running elsewhere loses its guarded ``running -> succeeded``
    write, so its result is discarded; the caller stops the runs it can (flow runs, jobs).

    Returns:
        ``{"campaign": row, "generations": [the generations cancelled, with their status before]}``.
    Raises:
        KeyError: no such campaign.
        TerminalStateError: the campaign already completed, failed or was cancelled.
    """
    row = get_campaign(conn, ref)
    with conn.transaction():
        updated = conn.execute(
            "update hunt.campaigns set status = 'cancelled', completion_reason = 'cancelled', completed_at = now(),"
            " lease_owner = null, lease_expires_at = null, updated_at = now()"
            " where campaign_id = %s and status in ('active', 'paused') returning *",
            (row["campaign_id"],),
        ).fetchone()
        if updated is None:
            raise TerminalStateError(f"campaign {row['slug']} is {row['status']}; it cannot be cancelled")
        gens = unfinished_generations(conn, row["campaign_id"])
        conn.execute(
            "update hunt.generations set status = 'cancelled', finished_at = now(), updated_at = now()"
            " where campaign_id = %s and status not in ('told', 'failed', 'cancelled')",
            (row["campaign_id"],),
        )
    return {"campaign": updated, "generations": gens}


def delete_campaign(conn: psycopg.Connection, ref: UUID | str) -> dict[str, Any]:
    """Delete a campaign and all its rows (generations, evaluations, stage runs, findings,
    trajectories, gates cascade). Refused while a tick holds its lease or a generation of it is
    launched, so nothing running writes into rows that are gone.

    Returns:
        The deleted campaign row with ``generations`` and ``evaluations`` counts.
    Raises:
        KeyError: no such campaign.
        StaleTransition: a tick holds it or generations are running (cancel it first).
    """
    row = get_campaign(conn, ref)
    with conn.transaction():
        locked = conn.execute(
            "select *, (lease_expires_at > now()) as leased,"
            " (select count(*) from hunt.generations g where g.campaign_id = c.campaign_id"
            "   and g.status in ('dispatched', 'running')) as launched,"
            " (select count(*) from hunt.generations g where g.campaign_id = c.campaign_id) as generations,"
            " (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id) as evaluations"
            " from hunt.campaigns c where campaign_id = %s for update",
            (row["campaign_id"],),
        ).fetchone()
        if locked is None:
            raise KeyError(f"no campaign {ref!s}")
        if locked["leased"]:
            raise StaleTransition(f"campaign {row['slug']} is being advanced by a tick right now; try again in a moment")
        if locked["launched"]:
            raise StaleTransition(f"campaign {row['slug']} has {locked['launched']} generation(s) running;"
                                  f" cancel it first (huntflow campaign cancel {row['slug']})")
        conn.execute("delete from hunt.campaigns where campaign_id = %s", (row["campaign_id"],))
    return locked
