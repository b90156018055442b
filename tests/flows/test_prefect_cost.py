"""What Prefect costs a tick: the settings huntflow gives the API it starts itself."""

from __future__ import annotations

from huntflow.flows.cli.common import EPHEMERAL_API_DEFAULTS, prefect_defaults


def _cleared(monkeypatch) -> None:
    for key in EPHEMERAL_API_DEFAULTS:  # set first, so monkeypatch restores what was there
        monkeypatch.setenv(key, "x")
        monkeypatch.delenv(key)


def test_the_ephemeral_api_batches_task_run_writes_with_settings_prefect_reads(monkeypatch):
    from prefect.settings import Settings

    _cleared(monkeypatch)
    before = Settings().server.services.task_run_recorder
    prefect_defaults()
    after = Settings().server.services.task_run_recorder
    assert before.batch_size == 1  # Prefect's default: one transaction per state-change event
    assert after.batch_size == 100
    # the recorder sleeps int(flush_interval) seconds between periodic flushes: 0 would spin
    assert int(after.flush_interval) == 1


def test_a_value_the_user_set_wins_over_the_defaults(monkeypatch):
    from prefect.settings import Settings

    _cleared(monkeypatch)
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "7")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    prefect_defaults()
    assert Settings().server.services.task_run_recorder.batch_size == 7
    assert Settings().logging.level == "DEBUG"
