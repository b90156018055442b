"""The ``hunt-report`` flow: write a campaign's report and show it in the Prefect UI.

The report (``report.md``, ``report.json``, ``evaluations.csv`` and PNG plots, in
``$HUNTFLOW_DATA_DIR/reports/<slug>`` by default) is built from the campaign's rows by
:mod:`huntflow.engine.report`. ``huntflow report`` calls :func:`write_report` directly (reading
rows never starts Prefect); the tick writes the same report, without plots, when learn completes a
campaign. Importing this module starts nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow

from huntflow.engine.report import markdown, num
from huntflow.store.connection import session
from huntflow.tasks.report import default_report_dir, load_report_inputs, write_report

__all__ = ["default_report_dir", "hunt_report", "load_report_inputs", "write_report", "artifact_key"]


def artifact_key(slug: str) -> str:
    """``report-<slug>`` (Prefect artifact keys: lowercase letters, digits and dashes)."""
    return "report-" + re.sub(r"[^a-z0-9-]+", "-", slug.lower()).strip("-")


@flow(name="hunt-report", log_prints=True)
def hunt_report(slug: str, out_dir: str | None = None) -> dict[str, Any]:
    """Write the campaign's report files and publish the Markdown as the ``report-<slug>`` artifact.

    Returns:
        The paths written: ``dir``, ``markdown``, ``json``, ``csv``, ``plots``.
    """
    from prefect.artifacts import create_markdown_artifact

    with session() as conn:
        report = write_report(conn, slug, Path(out_dir) if out_dir else None)
    best = report["best"]
    description = (f"{slug}: {report['campaign']['status']}, "
                   + ("no feasible candidate yet" if best is None else
                      f"best {num(best['objective'])} ({'certified' if best['certified'] else 'not certified'})"))
    create_markdown_artifact(markdown=markdown(report), key=artifact_key(slug), description=description)
    return report["files"]
