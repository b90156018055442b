"""The ``hunt-campaign`` flows: start, pause, resume and cancel a hunt from the Prefect UI.

Deployments (prefect.yaml) ``hunt-campaign/add``, ``/pause``, ``/resume`` and ``/cancel``.
``add`` takes the campaign spec as a typed parameter (:class:`~huntflow.engine.spec.CampaignSpec`),
so the UI renders it as a form and ``prefect deployment run 'hunt-campaign/add' --params
'{"spec": {...}}'`` works. The flow validates the spec itself (``validate_parameters=False``
and the deployment's ``enforce_parameter_schema: false``), so an invalid spec fails the run with
the same field-naming message as ``huntflow campaign add`` and stores nothing; a valid one is
stored, its first tick is triggered, and the run returns at once. ``pause``/``resume``/``cancel``
say what happens to generations in flight (:mod:`huntflow.tasks.control`). Each run is named
after what it does (``add SLUG``).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from huntflow.engine.spec import CampaignSpec, parse_spec
from huntflow.store import campaigns
from huntflow.store.connection import session
from huntflow.tasks import control


def _run_name(action: str):
    def name() -> str:
        try:
            from prefect.runtime import flow_run

            params = flow_run.parameters or {}
            spec = params.get("spec")
            slug = params.get("slug") or (spec.get("slug") if isinstance(spec, dict) else getattr(spec, "slug", None))
            return f"{action} {slug or '?'}"
        except Exception:
            return action
    return name


def _first_tick(campaign_id: str) -> bool:
    """Start the campaign's first tick now (a run of the tick deployment); ``False`` if that
    failed — the schedule picks the campaign up anyway."""
    from huntflow.flows.generation import trigger_tick

    return trigger_tick(campaign_id)


def _log(message: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().info(message)
    except Exception:
        logging.getLogger(__name__).info(message)


@flow(name="hunt-campaign", flow_run_name=_run_name("add"), validate_parameters=False, log_prints=True)
def hunt_campaign_add(spec: CampaignSpec, start: bool = True) -> dict[str, Any]:
    """Validate and store a campaign spec, then trigger its first tick (returns at once).

    Raises:
        SpecError: the spec is invalid (every field named); nothing is stored.
        DuplicateCampaign: the slug is taken; nothing is stored.
    """
    data = spec.model_dump(mode="json") if isinstance(spec, CampaignSpec) else spec
    checked = parse_spec(data)
    with session() as conn:
        cid = campaigns.insert_campaign(conn, checked)
    triggered = _first_tick(str(cid)) if start else False
    _log(f"added campaign {checked.slug} (budget {checked.budget.evaluations} evaluations);"
         + (" its first tick is on its way" if triggered else " the next scheduled tick starts it"))
    return {"slug": checked.slug, "campaign_id": str(cid), "first_tick_triggered": triggered}


@flow(name="hunt-campaign", flow_run_name=_run_name("pause"), log_prints=True)
def hunt_campaign_pause(slug: str) -> dict[str, Any]:
    """Pause a campaign: nothing new is asked or launched; generations in flight finish and are
    told after resume."""
    with session() as conn:
        out = control.pause(conn, slug)
    _log(out["message"])
    return out


@flow(name="hunt-campaign", flow_run_name=_run_name("resume"), log_prints=True)
def hunt_campaign_resume(slug: str) -> dict[str, Any]:
    """Resume a paused campaign and trigger its next tick."""
    with session() as conn:
        out = control.resume(conn, slug)
    out["next_tick_triggered"] = _first_tick(out["campaign_id"])
    _log(out["message"])
    return out


@flow(name="hunt-campaign", flow_run_name=_run_name("cancel"), log_prints=True)
def hunt_campaign_cancel(slug: str) -> dict[str, Any]:
    """Cancel a campaign: unfinished generations are cancelled, running ones stopped where
    possible (a result that still arrives is discarded)."""
    with session() as conn:
        out = control.cancel(conn, slug)
    _log(out["message"])
    return out
