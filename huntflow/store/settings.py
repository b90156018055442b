"""``hunt.settings``: operator settings every tick reads (e.g. ``max_concurrent_campaigns``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def get_setting(conn: psycopg.Connection, key: str, default: Any) -> Any:
    """The JSON-decoded value of ``key``, or ``default`` when absent."""
    row = conn.execute("select value from hunt.settings where key = %s", (key,)).fetchone()
    return default if row is None else row["value"]


def set_setting(conn: psycopg.Connection, key: str, value: Any) -> None:
    """Insert or replace ``key``."""
    conn.execute(
        "insert into hunt.settings (key, value) values (%s, %s)"
        " on conflict (key) do update set value = excluded.value, updated_at = now()",
        (key, Jsonb(value)),
    )
