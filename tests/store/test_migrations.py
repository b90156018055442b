"""supabase/migrations apply in order, exactly once, safely under concurrency."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from huntflow.errors import MigrationError
from huntflow.store.migrations import apply_migrations, discover


@pytest.fixture
def fresh_db(database_url):
    """A brand-new empty database on the session server, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(database_url, autocommit=True)
    admin.execute(f'create database "{name}"')
    url = make_conninfo(database_url, dbname=name)
    try:
        yield url
    finally:
        admin.execute(f'drop database "{name}" with (force)')
        admin.close()


def snapshot(conn) -> dict:
    q = {
        "columns": "select table_name, column_name, data_type, is_nullable, column_default"
                   " from information_schema.columns where table_schema = 'hunt' order by 1, 2",
        "policies": "select tablename, policyname, cmd, roles::text from pg_policies where schemaname = 'hunt' order by 1, 2",
        "indexes": "select indexname, indexdef from pg_indexes where schemaname = 'hunt' order by 1",
        "enums": "select t.typname, e.enumlabel from pg_type t join pg_enum e on e.enumtypid = t.oid"
                 " join pg_namespace n on n.oid = t.typnamespace where n.nspname = 'hunt' order by 1, e.enumsortorder",
        "rls": "select relname, relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace"
               " where n.nspname = 'hunt' and relkind = 'r' order by 1",
        "settings": "select key, value from hunt.settings order by 1",
        "history": "select version, name from supabase_migrations.schema_migrations order by 1",
    }
    return {k: conn.execute(v).fetchall() for k, v in q.items()}


def test_migrations_applied_twice_change_nothing(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True, row_factory=dict_row) as conn:
        first = apply_migrations(conn)
        assert first == [m.version for m in discover()]
        before = snapshot(conn)
        assert apply_migrations(conn) == []
        assert snapshot(conn) == before


def test_schema_has_rls_on_every_table_and_the_progress_view(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True, row_factory=dict_row) as conn:
        apply_migrations(conn)
        snap = snapshot(conn)
        tables = {r["relname"] for r in snap["rls"]}
        assert tables == {"settings", "campaigns", "generations", "evaluations", "stage_runs", "findings",
                          "trajectories", "gates", "generation_summaries", "campaign_folds", "dashboard_builds",
                          "learn_states"}
        assert all(r["relrowsecurity"] for r in snap["rls"])
        for t in tables:
            roles = {p["roles"] for p in snap["policies"] if p["tablename"] == t}
            assert roles == {"{service_role}", "{authenticated}"}, t
        assert conn.execute("select value from hunt.settings where key = 'max_concurrent_campaigns'").fetchone()["value"] == 4
        cols = {r["column_name"] for r in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'hunt'"
            " and table_name = 'campaign_progress'").fetchall()}
        assert {"slug", "status", "stage", "generations", "evaluations", "best_objective", "gates_pending"} <= cols


def test_authenticated_role_reads_but_cannot_write(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True, row_factory=dict_row) as conn:
        apply_migrations(conn)
        with conn.transaction():
            conn.execute("set local role authenticated")
            keys = {r["key"] for r in conn.execute("select key from hunt.settings").fetchall()}
            assert {"max_concurrent_campaigns", "lease_seconds", "failure_streak_limit"} <= keys
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("set local role authenticated")
                conn.execute("insert into hunt.settings (key, value) values ('x', '1')")


def test_concurrent_starts_apply_each_migration_once(fresh_db):
    results, errors = [], []

    def worker():
        try:
            with psycopg.connect(fresh_db, autocommit=True, row_factory=dict_row) as conn:
                results.append(apply_migrations(conn))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = [v for r in results for v in r]
    assert sorted(applied) == [m.version for m in discover()]


def test_a_failing_migration_is_rolled_back_and_named(fresh_db, tmp_path):
    for m in discover():
        (tmp_path / m.path.name).write_text(m.sql)
    (tmp_path / "29990101000000_broken.sql").write_text(
        "create table hunt.half_done (x int);\nselect * from hunt.no_such_table;\n"
    )
    with psycopg.connect(fresh_db, autocommit=True, row_factory=dict_row) as conn:
        with pytest.raises(MigrationError, match="29990101000000_broken.sql"):
            apply_migrations(conn, tmp_path)
        assert conn.execute("select to_regclass('hunt.half_done') as t").fetchone()["t"] is None
        versions = [r["version"] for r in conn.execute("select version from supabase_migrations.schema_migrations")]
        assert "29990101000000" not in versions and len(versions) == len(discover())


def test_misnamed_migration_file_is_rejected(tmp_path):
    (tmp_path / "init.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="YYYYMMDDHHmmss"):
        discover(tmp_path)
