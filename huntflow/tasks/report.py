"""Write a campaign's report files from its rows: what ``huntflow report``, the ``hunt-report``
flow and learn (when it completes a campaign) share.

Rows come from :func:`huntflow.store.reports.report_inputs`, the document from
:mod:`huntflow.engine.report`; files go to ``$HUNTFLOW_DATA_DIR/reports/<slug>`` unless told
otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from huntflow.config import get_settings
from huntflow.engine import report as render
from huntflow.store.reports import report_inputs

load_report_inputs = report_inputs


def default_report_dir(slug: str) -> Path:
    """``$HUNTFLOW_DATA_DIR/reports/<slug>``."""
    return get_settings().data_dir / "reports" / slug


def write_report(conn: psycopg.Connection, ref: UUID | str, out_dir: Path | None = None, *,
                 plots: bool = True) -> dict[str, Any]:
    """Write ``report.md``, ``report.json``, ``evaluations.csv`` (and, with ``plots``, the PNG
    plots) for a campaign (id or slug); returns the report dict, ``files`` naming what was written.

    Raises:
        KeyError: no such campaign.
    """
    inputs = report_inputs(conn, ref)
    out = Path(out_dir) if out_dir is not None else default_report_dir(inputs["campaign"]["slug"])
    return render.write(inputs, out, plots=plots)
