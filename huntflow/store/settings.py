"""``hunt.settings``: operator settings every tick reads (e.g. ``max_concurrent_campaigns``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def get_setting(conn: psycopg.Connection, key: str, default: Any) -> Any:
    """The JSON-decoded value of ``key``, or ``default`` when absent."""
    row = conn.execute("select value from hunt.settings where key = %s", (key,)).fetchone()
    return default if row is None else row["value"]


def get_settings_of(conn: psycopg.Connection, defaults: dict[str, Any]) -> dict[str, Any]:
    """:func:`get_setting` of several keys in one statement: ``{key: value or its default}``."""
    return settings_from(conn.execute(MANY_SQL, (list(defaults),)).fetchall(), defaults)


MANY_SQL = "select key, value from hunt.settings where key = any(%s)"
""":func:`get_settings_of`'s statement (to run in a pipeline); :func:`settings_from` reads its rows."""


def settings_from(rows: list[dict[str, Any]], defaults: dict[str, Any]) -> dict[str, Any]:
    found = {r["key"]: r["value"] for r in rows}
    return {k: found.get(k, d) for k, d in defaults.items()}


def set_setting(conn: psycopg.Connection, key: str, value: Any) -> None:
    """Insert or replace ``key``."""
    conn.execute(
        "insert into hunt.settings (key, value) values (%s, %s)"
        " on conflict (key) do update set value = excluded.value, updated_at = now()",
        (key, Jsonb(value)),
    )
