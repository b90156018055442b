"""Apply ``supabase/migrations/*.sql`` in order, each exactly once.

Applied versions are recorded in ``supabase_migrations.schema_migrations`` — the table the
Supabase CLI itself uses — so a database migrated by ``supabase db push`` and one migrated by
huntflow agree. A session-level advisory lock serialises concurrent starts: the second process
waits, then finds everything applied and does nothing. Each file runs in its own transaction
together with its bookkeeping row, so a failing file leaves no trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

import huntflow
from huntflow.errors import MigrationError

_LOCK_KEY = 0x68756E74  # "hunt"
_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


def migrations_dir() -> Path:
    """``supabase/migrations`` of the checkout, or the copy packaged into the wheel."""
    package = Path(huntflow.__file__).resolve().parent
    for candidate in (package.parent / "supabase" / "migrations", package / "_migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("no supabase/migrations directory found")


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files, ordered by version.

    Raises:
        MigrationError: a file does not follow ``YYYYMMDDHHmmss_name.sql`` or a version repeats.
    """
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named YYYYMMDDHHmmss_name.sql")
        found.append(Migration(m.group(1), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def apply_migrations(conn: psycopg.Connection, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations; return the versions applied now (empty when up to date).

    Raises:
        MigrationError: a migration failed (it is rolled back; earlier ones stay applied).
    """
    pending = discover(directory)
    applied_now: list[str] = []
    conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations ("
            " version text primary key, statements text[], name text)"
        )
        done = {
            r["version"] if isinstance(r, dict) else r[0]
            for r in conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
        }
        for migration in pending:
            if migration.version in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, statements, name)"
                        " values (%s, %s, %s)",
                        (migration.version, [migration.sql], migration.name),
                    )
            except psycopg.Error as e:
                raise MigrationError(f"migration {migration.path.name} failed: {e}") from e
            applied_now.append(migration.version)
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
