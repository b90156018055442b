"""Column lists without the large bytea columns (optimizer checkpoints).

``select *`` on ``hunt.campaigns`` or ``hunt.generations`` drags the optimizer checkpoint
(megabytes, growing with the optimizer's archive) back with every row, a dozen times a tick.
:func:`light` lists every other column, read from the catalog once per process and database, so
columns added by later migrations come along without anyone editing a list.
"""

from __future__ import annotations

import threading

import psycopg

HEAVY = {"campaigns": ("optimizer_state", "optimizer_journal"), "generations": ("optimizer_checkpoint",)}
_CACHE: dict[tuple[str, str], list[str]] = {}
_LOCK = threading.Lock()


def light(conn: psycopg.Connection, table: str, alias: str | None = None) -> str:
    """``"c.campaign_id, c.slug, ..."``: every column of ``hunt.<table>`` but its heavy ones."""
    pg = conn.pgconn  # host, port and database name: cheap libpq reads (``conn.info.dsn`` parses the conninfo, ~0.5 ms)
    key = (f"{pg.host!r}:{pg.port!r}/{pg.db!r}", table)
    names = _CACHE.get(key)
    if names is None:
        rows = conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
            " and not attisdropped order by attnum",
            (f"hunt.{table}",),
        ).fetchall()
        names = [r["attname"] if isinstance(r, dict) else r[0] for r in rows]
        names = [n for n in names if n not in HEAVY.get(table, ())]
        with _LOCK:
            _CACHE[key] = names
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{n}"' for n in names)
