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
    # no automations or live subscribers on a throwaway API: those consumers of every event are off
    assert Settings().server.services.triggers.enabled is False
    assert Settings().server.events.stream_out_enabled is False
    assert Settings().server.services.event_persister.enabled is True  # events are still stored


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
