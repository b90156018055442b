"""Connection errors: one redacted line (StoreError, exit 1), a malformed URL is bad input
(DatabaseUrlError, exit 2), and the one redaction covers every libpq form of a password."""

from __future__ import annotations

import psycopg
import pytest

from huntflow.config import redact, redact_url
from huntflow.errors import DatabaseUrlError, InputError, StoreError
from huntflow.store.connection import connect, session, store_error

PW = "Pl4nted-S3cret"


@pytest.mark.parametrize("text", [
    f"postgresql://alice:{PW}@db.example.org:5432/hunt",
    f"postgres://:{PW}@db.example.org/hunt",  # empty user
    f"postgresql://alice:{PW}@x@db.example.org/hunt",  # an @ inside the password
    "postgresql://alice:Pl4nted%40S3cret%2F@db.example.org/hunt",  # percent-encoded
    f"host=db.example.org user=alice password={PW} dbname=hunt",
    f"host=db.example.org password='{PW} with spaces' dbname=hunt",
    f"host=db.example.org PASSWORD = {PW}",
    f"postgresql://alice@db.example.org/hunt?password={PW}&sslmode=require",
    f"postgresql://alice@db.example.org/hunt?sslmode=require&password={PW}",
    f"error while connecting with postgresql://alice:{PW}@h/d: boom",
])
def test_redact_removes_every_libpq_form_of_the_password(text):
    out = redact(text)
    assert PW not in out and "S3cret" not in out
    assert "***" in out


def test_redact_keeps_what_is_not_secret():
    assert redact_url("postgresql://alice:pw123@h:5432/db") == "postgresql://alice:***@h:5432/db"
    assert "sslmode=require" in redact(f"postgresql://a@h/d?password={PW}&sslmode=require")
    assert redact("password authentication failed for user \"alice\"") == "password authentication failed for user \"alice\""


def test_redact_scrubs_the_configured_password_wherever_the_driver_repeats_it():
    url = "postgresql://alice:Pl4nted%40S3cret@h/d"
    assert redact("server said: bad secret 'Pl4nted@S3cret' here", url=url).count("***") == 1


@pytest.mark.parametrize("url", [
    f"postgresql://alice:{PW}@127.0.0.1:1/hunt",
    f"host=127.0.0.1 port=1 user=alice password={PW}",
    f"postgresql://:{PW}@127.0.0.1:1/hunt?password={PW}",
])
def test_unreachable_database_is_one_redacted_store_error(url):
    with pytest.raises(StoreError) as e:
        connect(url)
    msg = str(e.value)
    assert PW not in msg and "\n" not in msg and e.value.exit_code == 1
    assert "127.0.0.1:1" in msg
    assert e.value.__cause__ is None  # the driver's exception (and its text) is not chained


@pytest.mark.parametrize("url", [
    f"host=h password={PW} bogus",
    f"postgresql://alice@h/d?password={PW}&nonsense=1",
    f"postgresql://alice:{PW}\x00@h/d",
])
def test_malformed_database_url_is_input_error_naming_the_variable(url):
    with pytest.raises(DatabaseUrlError) as e:
        connect(url)
    assert isinstance(e.value, InputError) and e.value.exit_code == 2
    assert str(e.value).startswith("SUPABASE_DB_URL:") and PW not in str(e.value)


def test_driver_errors_inside_a_session_become_store_errors(database_url):
    with pytest.raises(StoreError) as e:
        with session(database_url) as conn:
            conn.execute("select * from hunt.no_such_table")
    assert "42P01" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value.__cause__, psycopg.errors.UndefinedTable)


def test_store_error_redacts_a_password_inside_any_driver_exception():
    err = store_error(psycopg.ProgrammingError(f"weird: password={PW} in message"),
                      f"postgresql://a:{PW}@h/d")
    assert PW not in str(err)


def test_a_pooled_connection_is_checked_only_after_sitting_idle(database_url, monkeypatch):
    from psycopg_pool import ConnectionPool

    from huntflow.store import connection

    url = database_url + ("&" if "?" in database_url else "?") + "application_name=idle-check"  # a pool of its own
    checks = []
    real = ConnectionPool.check_connection
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda c: (checks.append(c), real(c))))
    with session(url) as conn:  # opened a moment ago: lent without a round trip
        pass
    with session(url) as conn:  # handed back a moment ago: the same
        pass
    assert checks == []
    monkeypatch.setattr(connection, "CHECK_IDLE_SECONDS", 0.0)
    with session(url) as conn:
        assert conn.execute("select 1 as one").fetchone()["one"] == 1
    assert len(checks) == 1


def _own_pool(database_url: str, name: str) -> str:
    return database_url + ("&" if "?" in database_url else "?") + f"application_name={name}"  # a pool of its own


def test_pooled_connections_prepare_statements_at_once_unless_told_never(database_url, monkeypatch):
    url = _own_pool(database_url, "prepare-default")
    with session(url) as conn:
        assert conn.prepare_threshold == 0
        conn.execute("select %s::int as n", (1,))
        prepared = conn.execute("select count(*) as n from pg_prepared_statements").fetchone()["n"]
        assert prepared >= 1  # the first execution was prepared server-side
    monkeypatch.setenv("HUNTFLOW_DB_PREPARE_THRESHOLD", "none")  # a pooler in transaction mode
    url = _own_pool(database_url, "prepare-never")
    with session(url) as conn:
        assert conn.prepare_threshold is None
        for _ in range(6):
            conn.execute("select %s::int as n", (1,))
        assert conn.execute("select count(*) as n from pg_prepared_statements").fetchone()["n"] == 0


def test_a_bad_prepare_threshold_is_one_input_error_naming_the_variable(database_url, monkeypatch):
    monkeypatch.setenv("HUNTFLOW_DB_PREPARE_THRESHOLD", "soon")
    with pytest.raises(InputError, match="HUNTFLOW_DB_PREPARE_THRESHOLD.*'soon'"):
        with session(_own_pool(database_url, "prepare-bad")):
            pass
