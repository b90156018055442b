"""What Prefect costs a tick: the settings huntflow gives the API it starts itself."""

from __future__ import annotations

import pytest

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


def test_only_the_ephemeral_server_runs_without_automations_and_event_stream_out(monkeypatch):
    """Given to the spawned server's environment alone: this process's environment (which a
    user's own ``prefect server`` started from it would inherit) keeps Prefect's defaults."""
    import os

    from prefect.settings import Settings

    from huntflow.flows.ephemeral import SERVER_DEFAULTS, server_env

    _cleared(monkeypatch)
    for key in SERVER_DEFAULTS:
        monkeypatch.setenv(key, "x")
        monkeypatch.delenv(key)
    prefect_defaults()
    assert not set(SERVER_DEFAULTS) & set(os.environ)
    assert Settings().server.services.triggers.enabled is True
    env = server_env(dict(os.environ))
    for key, value in SERVER_DEFAULTS.items():
        monkeypatch.setenv(key, env[key])
    served = Settings()
    assert served.server.services.triggers.enabled is False  # no automations to run
    assert served.server.events.stream_out_enabled is False  # nobody subscribed (its UI is off)
    assert served.server.services.event_persister.enabled is True  # events are still stored
    assert server_env({"PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true"})[
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "true"  # the user's value wins


def test_a_value_the_user_set_wins_over_the_defaults(monkeypatch):
    from prefect.settings import Settings

    _cleared(monkeypatch)
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "7")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    prefect_defaults()
    assert Settings().server.services.task_run_recorder.batch_size == 7
    assert Settings().logging.level == "DEBUG"


@pytest.mark.usefixtures("prefect_harness")
def test_a_loop_of_ticks_names_its_one_run_after_every_campaign_it_advanced(db, make_spec):
    from prefect import flow
    from prefect.client.orchestration import get_client

    from huntflow.flows import artifacts
    from huntflow.flows.tick import run_tick
    from huntflow.store import campaigns

    a = campaigns.insert_campaign(db, make_spec(slug="name-a"))
    b = campaigns.insert_campaign(db, make_spec(slug="name-b", seed=4))

    @flow(name="hunt-tick")
    def loop() -> str:
        from prefect.runtime import flow_run

        for cid in (a, b, a):
            run_tick([str(cid)])
        assert artifacts.flush(timeout=60)  # the name is written off the ticks' path
        return str(flow_run.id)

    run_id = loop()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).name == "tick: name-a, name-b"
