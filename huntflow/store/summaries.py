"""``hunt.generation_summaries``: each told generation in a few numbers.

evolve writes a generation's row in the same transaction as its tell (:func:`record`), and the
mode replay and learn read one row per generation (:func:`for_campaign`) instead of every
evaluation, so a tick's cost stays flat as a campaign grows. A generation without a row (in
flight, cancelled, told before the table existed) is summarised from its evaluation rows on
read: the same numbers, computed the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg

Target = tuple[str, str, float]
"""``(metric, goal, target)`` of an objective with a target."""

_OK = "e.status = 'succeeded' and e.feasible and e.objective is not null"


def _aggregate(targets: list[Target]) -> tuple[str, list[Any]]:
    """The summary columns as SQL aggregates over ``hunt.evaluations e``, and their parameters."""
    hit, params = "false", []
    if targets:
        hit = " and ".join(
            f"coalesce((e.metrics->>%s)::double precision {'<=' if goal == 'minimize' else '>='} %s, false)"
            for _, goal, _ in targets)
        params = [v for metric, _, target in targets for v in (metric, float(target))]
    sql = f"""
      count(*)::int as evaluations,
      (count(*) filter (where e.status <> 'pending'))::int as used,
      (count(*) filter (where e.feasible))::int as feasible,
      min(e.objective) filter (where {_OK}) as best_min,
      max(e.objective) filter (where {_OK}) as best_max,
      (count(*) filter (where e.status = 'succeeded' and e.feasible and e.metrics is not null and {hit}))::int
        as target_hits
    """
    return sql, params


def record(conn: psycopg.Connection, generation_ids: Iterable[UUID], targets: list[Target]) -> None:
    """Summarise these (just told) generations from their evaluation rows; call inside the
    tell's transaction, after the evaluations' annotations are written."""
    ids = list(generation_ids)
    if not ids:
        return
    agg, params = _aggregate(targets)
    conn.execute(
        f"""
        insert into hunt.generation_summaries
          (generation_id, campaign_id, ask_id, fidelity, evaluations, used, feasible, best_min, best_max,
           target_hits)
        select g.generation_id, g.campaign_id, g.ask_id, g.fidelity, {agg}
        from hunt.generations g join hunt.evaluations e using (generation_id)
        where g.generation_id = any(%s) and g.kind <> 'verification'
        group by g.generation_id
        on conflict (generation_id) do update set
          evaluations = excluded.evaluations, used = excluded.used, feasible = excluded.feasible,
          best_min = excluded.best_min, best_max = excluded.best_max, target_hits = excluded.target_hits,
          told_at = now()
        """,
        (*params, ids),
    )


def for_campaign(conn: psycopg.Connection, campaign_id: UUID, targets: list[Target],
                 after: int | None = None) -> list[dict[str, Any]]:
    """One dict per generation of the campaign (review's verification re-runs left out: they
    are neither search results nor budget), in ask order, only those with ``ask_id > after``
    when given: ``generation_id, ask_id, generation_index, kind, fidelity, fidelity_name,
    status, evaluations, used, feasible, best_min, best_max, target_hits, summarized`` (whether
    the numbers come from its stored row)."""
    return conn.execute(*campaign_query(campaign_id, targets, after)).fetchall()


def after_fold_sql(campaign: str, fold_ask: str = "f.ask_id") -> str:
    """``g.ask_id`` past the campaign's stored fold (``fold_ask``: which of its ask ids, read from
    ``f``), every generation without a fold; ``campaign``: a column or a placeholder."""
    return (f"g.ask_id > coalesce((select {fold_ask} from hunt.campaign_folds f where f.campaign_id = {campaign}),"
            " -2147483648)")


def campaign_query(campaign_id: UUID, targets: list[Target], after: int | None = None,
                   after_fold: str | None = None, recorded: bool = False) -> tuple[str, list[Any]]:
    """:func:`for_campaign`'s one statement and its parameters (to run it in a pipeline with
    other reads). ``after_fold``: instead of ``after``, only the generations after the
    campaign's stored fold (``"state"``: its ``ask_id``; ``"oldest"``: the older of it and its
    ``previous``; all of them without a fold). ``recorded``: add whether each has its
    trajectory row. A generation without a summary row is summarised from its evaluation rows
    in the same statement (the lateral aggregate runs for those only)."""
    agg, params = _aggregate(targets)
    cols = ("g.generation_id, g.ask_id, g.generation_index, g.kind, g.fidelity, g.fidelity_name,"
            " g.status::text as status")
    nums = ("evaluations", "used", "feasible", "best_min", "best_max", "target_hits")
    where, args = " where g.campaign_id = %s and g.kind <> 'verification'", [campaign_id]
    if after_fold is not None:
        fold_ask = {"state": "f.ask_id",
                    "oldest": "least(f.ask_id, (f.previous->>'ask_id')::int)"}[after_fold]
        where += " and " + after_fold_sql("%s", fold_ask)
        args.append(campaign_id)
    elif after is not None:
        where += " and g.ask_id > %s"
        args.append(int(after))
    # a lateral probe of trajectories' unique index per generation read: as ``exists (...)`` the
    # planner, which cannot tell how few generations follow the fold, hashed the whole table
    # (every campaign's rows: 8 ms a tick at 1M evaluations, growing with the database)
    flag = ", tr.recorded is not null as recorded" if recorded else ""
    probe = (" left join lateral (select true as recorded from hunt.trajectories t"
             " where t.generation_id = g.generation_id limit 1) tr on true" if recorded else "")
    sql = (f"select {cols}, " + ", ".join(f"coalesce(s.{n}, a.{n}) as {n}" for n in nums)
           + ", s.generation_id is not null as summarized" + flag
           + " from hunt.generations g left join hunt.generation_summaries s using (generation_id)"
           f" left join lateral (select {agg} from hunt.evaluations e"
           "   where e.generation_id = g.generation_id and s.generation_id is null) a on true"
           + probe + where + " order by g.ask_id")
    return sql, [*params, *args]


BEST_EVALUATION_SQL = (
    "select e.evaluation_id, e.objective, e.params, e.fidelity, e.generation_id, e.candidate_index"
    f" from hunt.evaluations e where e.generation_id = %s and {_OK} and e.objective = %s"
    " order by e.candidate_index limit 1")
"""A generation's first (candidate order) feasible succeeded evaluation with this objective
(parameters: the generation id, the objective); :func:`huntflow.store.campaigns.set_best_from`
stores it."""


def feasible_evaluations(conn: psycopg.Connection, campaign_id: UUID) -> list[dict[str, Any]]:
    """The campaign's feasible succeeded evaluations, in ask order, with the columns a Pareto
    front needs (learn's hypervolume with several objectives)."""
    return conn.execute(
        "select e.evaluation_id, e.status, e.feasible, e.objective, e.objectives, e.fidelity, e.param_hash,"
        " g.ask_id from hunt.evaluations e join hunt.generations g using (generation_id)"
        f" where e.campaign_id = %s and {_OK} order by g.ask_id, e.candidate_index",
        (campaign_id,),
    ).fetchall()


def used_sql(campaign: str) -> str:
    """The SQL expression of :func:`used_evaluations` for the campaign id ``campaign`` (a column
    or a named placeholder), for statements that read it beside other things.

    The generations not summarised yet are looked for after the campaign's fold only (every
    generation up to its ``ask_id`` is settled, with its summary row: ``hunt.campaign_folds``),
    each probed in the summaries' unique index: as ``not exists (...)`` over every generation
    the planner hashed both tables, 12 ms at 1M evaluations and growing with the database."""
    return (f"(coalesce((select sum(s.used) from hunt.generation_summaries s where s.campaign_id = {campaign}), 0)::int"
            " + (select count(*) from (select g.generation_id from hunt.generations g"
            "      left join lateral (select true as summarized from hunt.generation_summaries s"
            "                          where s.generation_id = g.generation_id limit 1) sm on true"
            f"     where g.campaign_id = {campaign} and g.kind <> 'verification' and sm.summarized is null"
            f"       and {after_fold_sql(campaign)}) u"
            "    join hunt.evaluations e using (generation_id) where e.status <> 'pending')::int)")


def used_evaluations(conn: psycopg.Connection, campaign_id: UUID) -> int:
    """The campaign's search evaluations that are no longer pending (the budget used, as the report
    counts it; review's verification re-runs left out): the told generations' summaries plus the
    rows of the generations not summarised yet, so its cost follows the generation count only."""
    return conn.execute(f"select {used_sql('%(c)s')} as used", {"c": campaign_id}).fetchone()["used"]
