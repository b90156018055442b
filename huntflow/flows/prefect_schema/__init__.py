"""A fresh ``PREFECT_HOME``'s SQLite database created from a schema dump, not by migrations.

On a fresh home the ephemeral Prefect API's start runs Prefect's ~150 Alembic migrations on its
SQLite file: about 5 s of CPU on this 2-core machine (Alembic reflects and copies each table a
``batch_alter_table`` touches), more than the rest of the server's start after its imports.
:func:`seed` writes the schema those migrations produce instead — ``sqlite-<version>.sql`` beside
this module, an ``iterdump`` of a database Prefect itself migrated (its ``alembic_version`` row
included), for the pinned Prefect version only — in a few milliseconds. The server's own
migration step then finds the database at head and does nothing. Any other Prefect version, a
configured database URL or an existing file: nothing is seeded and Prefect migrates as before.
``python -m huntflow.flows.prefect_schema`` regenerates the dump after a Prefect upgrade
(``tests/flows/test_prefect_schema.py`` holds it equal to what the migrations build).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_PREFIX = "sqlite+aiosqlite:///"


def template(version: str | None = None) -> Path:
    """The dump for Prefect ``version`` (default: the installed one); it may not exist."""
    if version is None:
        import prefect

        version = prefect.__version__
    return HERE / f"sqlite-{version}.sql"


def database_path(url: str) -> Path | None:
    """The file of a ``sqlite+aiosqlite:///`` URL, or None (another database, in-memory)."""
    if not url.startswith(_PREFIX):
        return None
    rest = url[len(_PREFIX):].split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def seed(url: str) -> bool:
    """Create the SQLite database of ``url`` from the dump when it does not exist yet; whether
    it did. Atomic: the database is built in a temporary file and linked into place, so a
    concurrent start sees either no file (and seeds or migrates itself) or a complete one."""
    path = database_path(url)
    dump = template()
    if path is None or not dump.exists() or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(tmp)) as conn:
            conn.executescript(dump.read_text())
        try:
            os.link(tmp, path)  # fails when another process got there first: theirs stays
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def dump(path: Path) -> str:
    """The SQL that recreates the SQLite database at ``path`` (schema and rows)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return "\n".join(conn.iterdump()) + "\n"


def migrated_dump() -> str:
    """Run Prefect's own migrations on a new SQLite file and dump the result (seconds)."""
    from prefect.settings import temporary_settings

    with tempfile.TemporaryDirectory() as home:
        db = Path(home) / "prefect.db"
        with temporary_settings(updates={"home": home, "server.database.connection_url": f"{_PREFIX}{db}"}):
            from prefect.server.database import provide_database_interface

            asyncio.run(provide_database_interface().create_db())
        return dump(db)


def regenerate() -> Path:
    """Write the dump for the installed Prefect version (after an upgrade); returns its path."""
    out = template()
    out.write_text(migrated_dump())
    return out
