"""The campaign's live artifacts in the Prefect UI (the hunt's control room), one set per campaign:

* ``campaign-<slug>-progress``: a progress artifact, the share of the evaluation budget used,
  updated in place;
* ``campaign-<slug>``: the dashboard Markdown (:mod:`huntflow.engine.dashboard`), also updated in
  place (one row per campaign however long the hunt runs), with the plots embedded as PNG;
* ``campaign-<slug>-batch``: the generations' batch table, a row per generation (a pool's
  generation flow writes a version per generation; inline, a version holds the generations
  finished since the campaign's last one, at most one version per :func:`progress_seconds`:
  back-to-back ticks of a fast hunt wrote one every ~0.15 s, ~20 ms of the API's CPU each).

The dashboard is rebuilt from the campaign's whole history (every evaluation row), so it is
refreshed at most every ``HUNTFLOW_PLOT_SECONDS`` (default 60) per campaign — or every
:data:`COST_FACTOR` times the last rebuilds of all active campaigns together, if longer
(:func:`refresh_seconds`) — and always when it finishes. Each rebuild's time and cost are kept
in ``hunt.dashboard_builds`` (:mod:`huntflow.store.dashboards`), so every process paces alike:
a scheduled tick (a fresh process each time) as a long-lived worker.
The progress artifact is updated every tick: a tick in between reads only the budget used
(``summaries.used_evaluations``: the told generations' summaries plus the untold ones' rows), so
its cost does not grow with the history; it writes the artifact (by the id this process last
saw, without reading the API) only when the percentage moved.
Publishing never fails a tick: errors are logged as warnings. It also never holds a tick up:
:func:`publish_later` hands the work to one background thread (:class:`Publisher`; a newer
request for a campaign's progress/dashboard or batch table replaces one still queued and runs
at most every :func:`progress_seconds`; the batch table takes every generation waiting), and the flow that ticks waits for it once, at
its end (:func:`flush`), so the artifacts of every tick are in the UI when its run finishes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from huntflow.engine import dashboard
from huntflow.engine import report as render
from huntflow.engine import summary as kpi

_log = logging.getLogger(__name__)
_PROGRESS: dict[UUID, tuple[Any, float]] = {}
"""Campaign -> its progress artifact's id and the percentage it shows (as this process set it):
a throttled tick updates it without reading the API first, and not at all when unchanged."""
COST_FACTOR = 20
"""A campaign's artifacts are rebuilt at most once per ``COST_FACTOR`` times their last cost, so
they take at most ~5 % of a long hunt's time however large its history grows."""


def keys(slug: str) -> dict[str, str]:
    """Artifact keys (lowercase letters, digits and dashes: a slug already is)."""
    base = f"campaign-{slug}"
    return {"markdown": base, "progress": f"{base}-progress", "batch": f"{base}-batch"}


def label_of(generation_id: str) -> dict[str, Any] | None:
    """A generation's row facts with ``label`` = ``SLUG/gen-N (rung)``; ``None`` if absent."""
    return labels_of([generation_id]).get(str(generation_id))


def labels_of(generation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`label_of` of many generations in one statement (by generation id as text)."""
    from huntflow.store.connection import session

    with session() as conn:
        rows = conn.execute(
            "select g.generation_id::text as id, c.slug, g.generation_index, g.fidelity_name, g.kind, g.status,"
            " g.operator from hunt.generations g join hunt.campaigns c using (campaign_id)"
            " where g.generation_id = any(%s::uuid[])", ([str(g) for g in generation_ids],)).fetchall()
    return {r.pop("id"): {**r, "label": f"{r['slug']}/gen-{r['generation_index']} ({r['fidelity_name']})"}
            for r in rows}


def batch_table(summary: dict[str, Any] | list[dict[str, Any]]) -> None:
    """The batch table of one generation, or of several finished since the campaign's last one
    (``campaign-<slug>-batch``, a new version each time): a row per generation with its label,
    candidates, successes, seconds and best value of each metric."""
    from prefect.artifacts import create_table_artifact

    items = summary if isinstance(summary, list) else [summary]
    if not items:
        return
    about = labels_of([s["generation_id"] for s in items])
    rows = []
    for s in items:
        rows.append({"generation": (about.get(str(s["generation_id"])) or {}).get("label", str(s["generation_id"])),
                     "candidates": s.get("candidates"), "ok": s.get("ok"), "seconds": s.get("wall_seconds"),
                     **{f"best {k}": v for k, v in (s.get("best") or {}).items()}})
    slug = next((a["slug"] for a in about.values()), "unknown")
    ok, n = sum(s.get("ok") or 0 for s in items), sum(s.get("candidates") or 0 for s in items)
    first, last = rows[0]["generation"], rows[-1]["generation"]
    description = (f"{first}: {ok}/{n} ok in {items[0].get('wall_seconds')} s" if len(items) == 1 else
                   f"{first} … {last}: {len(items)} generations, {ok}/{n} ok")
    create_table_artifact(key=keys(slug)["batch"], table=rows, description=description)


def _inline_batches(dispatched: Any) -> list[dict[str, Any]]:
    """The summaries of the inline generations a tick's dispatch ran, or that the loop's
    executor finished (``finished``), that succeeded."""
    items = [*dispatched.get("launched", []), *dispatched.get("finished", [])] if isinstance(dispatched, dict) else []
    return [item["result"] for item in items
            if item.get("operator") == "inline" and (item.get("result") or {}).get("status") == "succeeded"]


_BATCHES: dict[str, list[dict[str, Any]]] = {}
"""Campaign -> the summaries of its generations whose batch table waits to be published."""
_BATCHES_LOCK = threading.Lock()


def batch_tables(slug: str, campaign_id: str) -> None:
    """Publish the campaign's waiting batch tables as one version (never raises)."""
    with _BATCHES_LOCK:
        waiting = _BATCHES.pop(campaign_id, [])
    try:
        batch_table(waiting)
    except Exception as e:
        _log.warning("batch table of %s not published: %s: %s", slug, type(e).__name__, e)


def plot_seconds() -> float:
    return float(os.environ.get("HUNTFLOW_PLOT_SECONDS", "60"))


def refresh_seconds(active_cost: float | None = None) -> float:
    """How often one active campaign's dashboard may be rebuilt: every ``HUNTFLOW_PLOT_SECONDS``,
    or :data:`COST_FACTOR` times what the last rebuilds of all active campaigns cost together
    (``active_cost``; default: read from ``hunt.dashboard_builds``), if longer (0: every tick).
    Summed, because a tick rebuilds every campaign whose turn came: with 100 campaigns of 1 s
    each, a per-campaign bound would let the rebuilds take the whole tick once a tick outlasts
    the period."""
    base = plot_seconds()
    if not base:
        return base
    if active_cost is None:
        from huntflow.store import dashboards
        from huntflow.store.connection import session

        with session() as conn:
            active_cost = dashboards.active_cost(conn)
    return max(base, COST_FACTOR * float(active_cost))


def _latest(client, names: list[str]) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    found = client.read_latest_artifacts(
        artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=names)))
    return {a.key: a for a in found}


def _old_plots(data: Any) -> str | None:
    if isinstance(data, str) and dashboard.PLOTS_HEADING in data:
        return data[data.index(dashboard.PLOTS_HEADING):].rstrip("\n")
    return None


def render_dashboard(inputs: dict[str, Any], plots: bool) -> tuple[dict[str, Any], str, str | None]:
    """``(report, markdown, plots_section)`` for a campaign's rows (``plots``: draw them now)."""
    spec, evals = inputs["spec"], inputs["evaluations"]
    numbers = kpi.kpis(spec, evals)  # one pass over the history for the report and the plots
    report = render.build(inputs["campaign"], spec, evals, inputs["trajectories"], inputs["findings"],
                          inputs["stage_runs"], inputs["generations"], kpis=numbers)
    section = None
    if plots:
        from huntflow.engine import plots as draw

        names = ["best_vs_evaluation"] + (["pareto_front"] if len(spec.objectives) == 2 else [])
        figs = draw.figures(spec, numbers, names)
        section = dashboard.plots_section({n: draw.png(f, dpi=80) for n, f in figs.items()})
    return report, dashboard.markdown(report, spec, evals, section), section


def publish_campaign(campaign_id: UUID | str) -> dict[str, Any] | None:
    """Create or update the campaign's progress and dashboard artifacts; ``None`` on failure."""
    try:
        return _publish(campaign_id)
    except Exception as e:
        _log.warning("artifacts of campaign %s not published: %s: %s", campaign_id, type(e).__name__, e)
        return None


def _set_progress(client, cid: UUID, key: str, prog: Any, pct: float, description: str, *, changed_only: bool) -> None:
    """Create the campaign's progress artifact, or update the one the API returned (``prog``):
    its value only, and only when it moved (``changed_only``), or value and description."""
    from prefect.artifacts import create_progress_artifact
    from prefect.client.schemas.actions import ArtifactUpdate

    if prog is None:
        art = create_progress_artifact(progress=pct, key=key, description=description)
    else:
        art = prog.latest_id
        if not changed_only:
            client.update_artifact(art, ArtifactUpdate(data=pct, description=description))
        elif prog.data != pct:
            client.update_artifact(art, ArtifactUpdate(data=pct))
    _PROGRESS[cid] = (art, pct)


def _publish(campaign_id: UUID | str) -> dict[str, Any]:
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    from huntflow.store import dashboards, summaries
    from huntflow.store.connection import session
    from huntflow.store.reports import report_inputs

    cid = UUID(str(campaign_id))
    started = time.monotonic()
    with session() as conn:
        row = dashboards.pacing(conn, cid)
        if row is None:
            raise KeyError(f"no campaign {campaign_id}")
        used = summaries.used_evaluations(conn, cid)
    k = keys(row["slug"])
    every = refresh_seconds(row["active_cost"])
    ago = math.inf if row["built_ago"] is None else row["built_ago"]
    throttled = row["status"] == "active" and ago < every  # rebuilt by any process within its period
    if throttled and cid in _PROGRESS:  # this process set it last: no read of the API, no write if unchanged
        pct = dashboard.budget_percent(used, row["evaluations_budget"])
        art, shown = _PROGRESS[cid]
        if pct != shown:
            with get_client(sync_client=True) as client:
                _PROGRESS.pop(cid)  # set again only once the update went through
                client.update_artifact(art, ArtifactUpdate(data=pct))
            _PROGRESS[cid] = (art, pct)
        return {"keys": k, "progress": pct, "plots": False, "fresh": True}
    with get_client(sync_client=True) as client:
        latest = _latest(client, [k["markdown"], k["progress"]])
        old = latest.get(k["markdown"])
        fresh = old is not None and old.updated is not None and (
            dt.datetime.now(dt.timezone.utc) - old.updated).total_seconds() < plot_seconds()
        if throttled or (fresh and row["status"] == "active"):  # the history is read at most every plot_seconds()
            pct = dashboard.budget_percent(used, row["evaluations_budget"])
            _set_progress(client, cid, k["progress"], latest.get(k["progress"]), pct,
                          f"{row['slug']}: {used}/{row['evaluations_budget']} evaluations", changed_only=True)
            return {"keys": k, "progress": pct, "plots": False, "fresh": True}
        with session() as conn:
            inputs = report_inputs(conn, UUID(str(campaign_id)))
        finished = inputs["campaign"]["status"] != "active"
        keep = _old_plots(old.data) if old is not None and fresh and not finished else None
        report, md, _ = render_dashboard(inputs, plots=keep is None)
        if keep is not None:
            md = md.rstrip("\n") + "\n\n" + keep + "\n"
        line = dashboard.summary_line(report)
        pct = dashboard.progress_percent(report)
        if old is None:
            create_markdown_artifact(markdown=md, key=k["markdown"], description=line)
        else:
            client.update_artifact(old.latest_id, ArtifactUpdate(data=md, description=line))
        _set_progress(client, cid, k["progress"], latest.get(k["progress"]), pct, line, changed_only=False)
    with session() as conn:  # once finished, its cost no longer paces the others (active ones only count)
        dashboards.record_build(conn, cid, time.monotonic() - started)
    return {"keys": k, "progress": pct, "plots": keep is None}


class _Anonymous(int):
    """The key of a job queued without one (never replaced, never spaced)."""


class Publisher:
    """One daemon thread that sends what the UI shows (artifacts, the run's name) to the Prefect
    API in the order asked, off the tick's path.

    Jobs run in the context (flow run) they were queued from, so the artifacts link to it. A
    job queued under a key that is still waiting replaces it (the campaign's newest state is all
    the UI shows); jobs without a key never do. A
    keyed job may ask for ``spacing``: it runs at least that many seconds after the last job of
    its key ran (each API write costs the API ~10 ms of CPU, and back-to-back ticks would write
    a campaign's progress several times a second), counted from the end of that last run, so a job
    queued while the last of its key still runs waits its spacing after that one finished;
    :meth:`flush` runs what waits at once.
    """

    def __init__(self) -> None:
        self._jobs: OrderedDict[Any, tuple[contextvars.Context, Callable[[], Any], float]] = OrderedDict()
        self._last: dict[Any, float] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._hurry = 0
        self._thread: threading.Thread | None = None
        self._seq = 0

    def submit(self, job: Callable[[], Any], key: Any = None, spacing: float = 0.0) -> None:
        with self._cond:
            if key is None:
                self._seq += 1
                key = _Anonymous(self._seq)
            self._jobs.pop(key, None)
            self._jobs[key] = (contextvars.copy_context(), job, spacing)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="huntflow-artifacts", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _next(self) -> tuple[Any, contextvars.Context, Callable[[], Any]]:
        """The first job due, in the order queued, waiting for one (holding ``self._cond``)."""
        while True:
            now = time.monotonic()
            soonest = math.inf
            for key, (ctx, job, spacing) in self._jobs.items():
                # from the last run's end, read now: one queued while it ran must not go at once
                not_before = self._last.get(key, -math.inf) + spacing if spacing > 0 else -math.inf
                if not_before <= now or self._hurry:
                    del self._jobs[key]
                    return key, ctx, job
                soonest = min(soonest, not_before)
            self._cond.wait(None if soonest == math.inf else soonest - now)

    def _run(self) -> None:
        while True:
            with self._cond:
                key, ctx, job = self._next()
                self._busy = True
            try:
                ctx.run(job)
            except Exception as e:  # jobs catch their own errors; this is the last line
                _log.warning("artifact not published: %s: %s", type(e).__name__, e)
            finally:
                with self._cond:
                    if not isinstance(key, _Anonymous):  # keys are campaigns and runs: few
                        self._last[key] = time.monotonic()
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float = 60.0) -> bool:
        """Run every queued job now, spaced or not, and wait until they ran (False: ``timeout``
        passed first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while self._jobs or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._hurry -= 1
        return True


_PUBLISHER = Publisher()


def progress_seconds() -> float:
    """Least seconds between two updates of one campaign's progress/dashboard
    (``HUNTFLOW_PROGRESS_SECONDS``, default 1; its last state is always published, at the
    latest when the run ends)."""
    return float(os.environ.get("HUNTFLOW_PROGRESS_SECONDS", "1"))


def publish_later(slug: str, campaign_id: UUID | str, dispatched: Any = None) -> bool:
    """Queue the batch tables of ``dispatched`` and the campaign's progress/dashboard update
    (:func:`batch_tables`, :func:`publish_campaign`; at most every :func:`progress_seconds`) on
    the background publisher; True once queued."""
    try:
        batches = _inline_batches(dispatched)
    except Exception as e:  # a table is never a reason to fail a tick
        _log.warning("batch table of %s not queued: %s: %s", slug, type(e).__name__, e)
        batches = []
    if batches:
        cid = str(campaign_id)
        with _BATCHES_LOCK:
            _BATCHES.setdefault(cid, []).extend(batches)
        _PUBLISHER.submit(lambda: batch_tables(slug, cid), key=("batch", cid), spacing=progress_seconds())
    _PUBLISHER.submit(lambda: publish_campaign(campaign_id), key=("campaign", str(campaign_id)),
                      spacing=progress_seconds())
    return True


def later(job: Callable[[], Any], key: Any = None) -> None:
    """Run ``job`` on the background publisher: an API write the UI shows that must never fail
    or hold up a tick (it catches its own errors); a newer job of ``key`` replaces one waiting."""
    _PUBLISHER.submit(job, key=key)


def flush(timeout: float = 60.0) -> bool:
    """Wait for the queued artifacts (the end of a flow that ticks); never raises."""
    try:
        return _PUBLISHER.flush(timeout)
    except Exception as e:
        _log.warning("artifacts not flushed: %s: %s", type(e).__name__, e)
        return False
