"""The schema dump a fresh ``PREFECT_HOME`` is seeded from (flows/prefect_schema)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from huntflow.flows import prefect_schema


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _revision(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


def test_the_dump_is_at_the_installed_prefects_migration_head():
    """A Prefect upgrade without a new dump fails here (``python -m huntflow.flows.prefect_schema``
    writes it): seeding an older schema would leave the server a database it cannot use."""
    import prefect.server.database as database
    from alembic.script import ScriptDirectory

    migrations = Path(database.__file__).parent / "_migrations"
    heads = ScriptDirectory(str(migrations), version_locations=[str(migrations / "versions" / "sqlite")]).get_heads()
    dump = prefect_schema.template()
    assert dump.is_file(), f"no schema dump for this Prefect: run python -m huntflow.flows.prefect_schema ({dump})"
    assert f"INSERT INTO \"alembic_version\" VALUES('{heads[0]}');" in dump.read_text() and len(heads) == 1


def test_a_fresh_home_is_seeded_once_and_an_existing_database_is_left_alone(tmp_path):
    db = tmp_path / "home" / "prefect.db"
    assert prefect_schema.seed(_url(db)) is True
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type = 'table'")}
    assert {"flow", "flow_run", "task_run", "deployment", "events"} <= tables
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("insert into flow (name) values ('kept')")
        conn.commit()
    assert prefect_schema.seed(_url(db)) is False  # there already: never overwritten
    assert sqlite3.connect(db).execute("select name from flow").fetchall() == [("kept",)]
    assert not [p for p in db.parent.iterdir() if p.name.startswith(".prefect.db.")]  # no temporary left
    assert prefect_schema.seed("postgresql+asyncpg://u@h/prefect") is False
    assert prefect_schema.seed("sqlite+aiosqlite:///:memory:") is False


def _schema(path: Path) -> dict:
    """Tables' columns, foreign keys and indexes as sets (Alembic's batch migrations order a
    table's constraints differently from run to run), and the migration revision."""
    out: dict = {"revision": _revision(path)}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for (table,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
            cols = frozenset(tuple(r[1:]) for r in conn.execute(f"pragma table_info('{table}')"))
            fks = frozenset(tuple(r[2:]) for r in conn.execute(f"pragma foreign_key_list('{table}')"))
            idx = frozenset((r[1], r[2], tuple(c[2] for c in conn.execute(f"pragma index_info('{r[1]}')")))
                            for r in conn.execute(f"pragma index_list('{table}')"))
            out[table] = (cols, fks, idx)
        out["other"] = frozenset(conn.execute("select type, name, sql from sqlite_master"
                                              " where type not in ('table', 'index')").fetchall())
    return out


@pytest.mark.slow
def test_the_seeded_database_is_what_prefects_migrations_build(tmp_path):
    """Runs Prefect's ~150 migrations (seconds): same tables, columns, keys, indexes, revision."""
    migrated = tmp_path / "migrated.db"
    with contextlib.closing(sqlite3.connect(migrated)) as conn:
        conn.executescript(prefect_schema.migrated_dump())
    seeded = tmp_path / "seeded.db"
    assert prefect_schema.seed(_url(seeded))
    assert _schema(seeded) == _schema(migrated)
