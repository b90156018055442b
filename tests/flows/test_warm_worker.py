"""The warm worker (huntflow.flows.warm) on the Prefect test harness: a pool campaign whose
generations run as flow runs of the generation deployment inside this very process, and whose
next ticks run here as soon as a generation finishes; plus the generation heartbeat and the
Cancelled end of a cancelled generation. (tests/flows/test_e2e_server.py runs it as
``huntflow worker`` against a real ``prefect server``.)"""

from __future__ import annotations

import os
import time
from uuid import UUID

import pytest

from huntflow.store import campaigns, generations
from huntflow.store.states import GenerationStatus as GS

pytestmark = pytest.mark.usefixtures("prefect_harness")
POOL = "warm-test"


@pytest.fixture
def pool_deployment(monkeypatch):
    """A process pool with the generation deployment on it (as `prefect deploy` makes it)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    from huntflow.flows.generation import hunt_generation

    monkeypatch.setenv("HUNTFLOW_OPERATOR", "pool")
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # control.cancel asks the API only when set
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except Exception:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        flow_id = client.create_flow(hunt_generation)
        client.create_deployment(flow_id=flow_id, name="gpu", work_pool_name=POOL,
                                 entrypoint="huntflow/flows/generation.py:hunt_generation")
    yield


def _runs_named(prefix: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=prefix)))


def test_a_pool_campaign_runs_to_completion_in_one_warm_process(db, make_spec, pool_deployment):
    from huntflow.flows import generation
    from huntflow.flows.tick import hunt_tick
    from huntflow.flows.warm import LocalTicks, WarmWorker

    spec = make_spec(slug="warm-sphere", budget={"evaluations": 8}, review={"spot_check_top": 0},
                     optimizer={"name": "ngopt", "population": 4, "options": {"max_in_flight": 2}})
    cid = campaigns.insert_campaign(db, spec)
    out = hunt_tick()  # plans two generations (max_in_flight 2); its chained tick, in the same run, launches them
    launched = generations.by_status(db, cid, [GS.DISPATCHED])
    assert len(launched) == 2 and all(len(g["dispatch_ref"]) == 36 for g in launched)
    assert len(out["chained"]) == 1 and out["campaigns"][str(cid)]["follow_up"] is False  # nothing left waiting

    local = LocalTicks()
    generation.use_local_ticks(local.request)
    generation.use_device_slots(1)  # as `huntflow worker --limit 1 --prefetch 1`: two runs claimed, one evaluates
    try:
        import anyio

        deadline = time.monotonic() + 120
        while campaigns.get_campaign(db, cid)["status"] == "active" and time.monotonic() < deadline:
            worker = WarmWorker(work_pool_name=POOL, limit=2, create_pool_if_not_found=False)
            anyio.run(lambda: worker.start(run_once=True, printer=lambda *a: None))
            time.sleep(0.2)  # the local tick that follows a generation runs in its own thread
    finally:
        generation.use_device_slots(None)
        generation.use_local_ticks(None)
        local.stop()
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("completed", "budget_spent")
    gens = db.execute("select * from hunt.generations where campaign_id = %s order by ask_id", (cid,)).fetchall()
    assert all(g["operator"] == "pool" and g["status"] == "told" for g in gens)
    # both launched runs were claimed by one poll, yet they took the device one after the other
    # (the second's row went running only once the first had succeeded)
    first, second = sorted((g for g in gens if str(g["generation_id"]) in {str(x["generation_id"]) for x in launched}),
                           key=lambda g: g["started_at"])
    assert first["started_at"] < first["finished_at"] <= second["started_at"]
    claimed = [_pending_at(g["dispatch_ref"]) for g in (first, second)]
    assert claimed[1] < first["finished_at"]  # the second run was claimed while the first evaluated
    assert local.ticks >= 1  # finished generations ticked their campaign here, not on a tick deployment
    runs = {r.name: r for r in _runs_named("warm-sphere/gen-")}
    for g in gens:
        run = runs[f"warm-sphere/gen-{g['generation_index']} ({g['fidelity_name']})"]
        assert str(run.id) == g["dispatch_ref"] and run.state.is_completed()
        assert run.infrastructure_pid == str(os.getpid())  # it ran in this process, not a new one


def _pending_at(flow_run_id: str):
    """When the worker claimed the flow run (its first Pending state)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(UUID(flow_run_id))
    return min(s.timestamp for s in states if s.type.value == "PENDING")


def test_device_slots_go_in_dispatch_order():
    import threading

    from huntflow.flows.generation import DeviceSlots

    slots, order = DeviceSlots(1), []
    holding, release = threading.Event(), threading.Event()

    def first():
        with slots.hold(0.0):
            holding.set()
            release.wait(10)
            order.append(0)

    def later(key: float):
        with slots.hold(key):
            order.append(key)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(10)
    for key in (3.0, 1.0, 2.0):  # claimed in this order while the slot is busy
        threads.append(threading.Thread(target=later, args=(key,)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while slots.waiting() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    assert order == [0, 1.0, 2.0, 3.0]


def test_pool_dispatch_is_idempotent_per_attempt(db, make_spec, pool_deployment):
    from huntflow.tasks.dispatch import launch_pool

    gid = UUID(int=7)
    one = launch_pool({"generation_id": gid, "attempt": 0})
    assert launch_pool({"generation_id": gid, "attempt": 0}) == one  # a repeated dispatch finds the same run
    assert launch_pool({"generation_id": gid, "attempt": 1}) != one  # the next attempt is a new run


def _running_generation(db, make_spec):
    from huntflow.flows.tick import hunt_tick

    cid = campaigns.insert_campaign(db, make_spec(slug="beating", review={"spot_check_top": 0}))
    os.environ["HUNTFLOW_OPERATOR"] = "manual"  # planned, then sent out as a kit: nobody runs it
    try:
        hunt_tick()
    finally:
        os.environ.pop("HUNTFLOW_OPERATOR")
    g = generations.by_status(db, cid, [GS.PLANNED])[0]
    assert generations.transition(db, g["generation_id"], [GS.PLANNED], GS.RUNNING, attempt=1,
                                  started_at="now()")
    db.execute("update hunt.generations set heartbeat_at = now() - interval '1 hour' where generation_id = %s",
               (g["generation_id"],))
    return cid, g["generation_id"]


def test_a_running_generation_beats_until_it_stops_running(db, make_spec):
    from huntflow.flows.generation import Heartbeat

    _, gid = _running_generation(db, make_spec)
    with Heartbeat(str(gid), every=0.05) as beat:
        deadline = time.monotonic() + 10
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert beat.beats >= 2
    fresh = db.execute("select heartbeat_at > now() - interval '1 minute' as fresh from hunt.generations"
                       " where generation_id = %s", (gid,)).fetchone()["fresh"]
    assert fresh  # parse's lost-run check sees a live worker
    assert generations.transition(db, gid, [GS.RUNNING], GS.SUCCEEDED)
    assert not generations.heartbeat(db, gid)  # a finished generation is never beaten again


def test_a_claimed_generation_waiting_for_the_device_beats_under_its_own_run(db, make_spec):
    from huntflow.flows.generation import Heartbeat

    cid, gid = _running_generation(db, make_spec)
    db.execute("update hunt.generations set status = 'dispatched', dispatch_ref = 'run-b',"
               " heartbeat_at = now() - interval '1 hour' where generation_id = %s", (gid,))
    with Heartbeat(str(gid), every=0.05, dispatch_ref="run-a") as stale:  # an older attempt's run
        time.sleep(0.3)
    assert stale.beats == 0
    with Heartbeat(str(gid), every=0.05, dispatch_ref="run-b") as beat:
        deadline = time.monotonic() + 10
        while beat.beats < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert beat.beats >= 1
    assert [g["generation_id"] for g in generations.lost(db, cid, 60)] == []  # not lost while its run waits


def test_preload_imports_what_the_first_tick_would():
    """A warm worker's first tick after a generation must not import nevergrad (5-14 s here)."""
    import sys

    from huntflow.flows.warm import PRELOADED, preload, warm_optimizer

    preload()
    assert "nevergrad" in PRELOADED and "sklearn.linear_model" in PRELOADED
    assert [m for m in PRELOADED if m not in sys.modules] == []
    assert warm_optimizer()  # the throw-away ask/tell/ask runs (a skipped warm-up would leave it to evolve)


def test_a_generation_cancelled_while_it_ran_ends_its_run_cancelled(db, make_spec):
    from huntflow.flows.generation import hunt_generation
    from huntflow.tasks import control

    cid, gid = _running_generation(db, make_spec)
    control.cancel(db, cid)
    assert generations.get(db, gid)["status"] == "cancelled"
    state = hunt_generation(str(gid), return_state=True)
    assert state.is_cancelled(), state


def test_local_ticks_coalesce_requests_into_one_tick(db):
    from huntflow.flows.warm import LocalTicks

    local = LocalTicks()
    try:
        for _ in range(5):
            local.request(str(UUID(int=1)))  # no such campaign: the tick claims nothing
        deadline = time.monotonic() + 60
        while local.ticks < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        local.stop()
    assert 1 <= local.ticks <= 2  # five requests, one (or, if the first came in alone, two) ticks


def test_local_ticks_wait_for_a_lease_held_elsewhere_then_tick(db, make_spec):
    from huntflow.flows.warm import LocalTicks

    cid = campaigns.insert_campaign(db, make_spec(slug="leased"))
    db.execute("update hunt.campaigns set lease_owner = 'tick:elsewhere', lease_expires_at = now() + interval '1 hour'"
               " where campaign_id = %s", (cid,))
    local = LocalTicks(retry_seconds=0.1)
    try:
        local.request(str(cid))
        time.sleep(1.0)
        assert local.ticks == 0  # no tick in vain (no empty flow runs) while another tick holds it
        db.execute("update hunt.campaigns set lease_owner = null, lease_expires_at = null where campaign_id = %s", (cid,))
        deadline = time.monotonic() + 60
        while not db.execute("select 1 from hunt.stage_runs where campaign_id = %s", (cid,)).fetchall() \
                and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        local.stop()
    assert local.ticks == 1
    assert db.execute("select count(*) as n from hunt.stage_runs where campaign_id = %s", (cid,)).fetchone()["n"] == 6


def test_worker_command_refuses_bad_input_in_one_line(monkeypatch):
    from typer.testing import CliRunner

    from huntflow.flows.cli import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    runner = CliRunner()
    no_api = runner.invoke(app, ["worker", "--pool", "gpu"])
    assert no_api.exit_code == 2 and "PREFECT_API_URL" in no_api.output and "Traceback" not in no_api.output
    bad = runner.invoke(app, ["worker", "--ticks", "sometimes"])
    assert bad.exit_code == 2 and "--ticks" in bad.output


def test_warm_ups_compile_a_new_pool_campaign_once_and_a_generations_exact_batch(db, make_spec):
    """The worker's warm-up compiles a new campaign's first executable as soon as it is active
    (once), and a claimed generation's own batch, so that evaluating it compiles nothing."""
    import jax

    from huntflow.flows.tick import hunt_tick
    from huntflow.tasks.execute import execute_generation
    from huntflow.tasks.warmup import CampaignWarmer, pool_campaigns, prepare_generation

    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)
    new = campaigns.insert_campaign(db, make_spec(slug="warm-new", fidelities=[{"name": "w", "settings": {"bias": 0.375}}]))
    warmer = CampaignWarmer()
    got = warmer.scan()
    assert [g["slug"] for g in got] == ["warm-new"] and got[0]["seconds"] > 0 and compiles
    assert warmer.scan() == []  # warmed once
    # a campaign whose generations go elsewhere (here: kits) is not the pool's
    other = campaigns.insert_campaign(db, make_spec(slug="warm-kit", review={"spot_check_top": 0},
                                                    fidelities=[{"name": "k", "settings": {"bias": 0.625}}]))
    os.environ["HUNTFLOW_OPERATOR"] = "manual"
    try:
        hunt_tick([str(other)])
    finally:
        os.environ.pop("HUNTFLOW_OPERATOR")
    assert [cid for cid, _ in pool_campaigns(db)] == [new]
    g = generations.by_status(db, other, [GS.PLANNED])[0]
    assert prepare_generation(str(g["generation_id"]))["seconds"] > 0
    before = len(compiles)
    assert execute_generation(g["generation_id"])["status"] == "succeeded"
    assert len(compiles) == before  # its executable was ready
    assert "error" in prepare_generation(str(UUID(int=5)))  # never raises


def test_the_warm_up_prepares_queued_pool_generations_once(db, make_spec, pool_deployment):
    """A pool generation planned and dispatched (nobody has claimed it yet) is compiled by the
    worker's look, once; when it then runs it compiles nothing."""
    import jax

    from huntflow.flows.tick import hunt_tick
    from huntflow.tasks.execute import execute_generation
    from huntflow.tasks.warmup import CampaignWarmer

    cid = campaigns.insert_campaign(db, make_spec(slug="warm-queued", review={"spot_check_top": 0},
                                                  fidelities=[{"name": "q", "settings": {"bias": 0.875}}]))
    hunt_tick([str(cid)])  # plans and dispatches (flow runs of the deployment: no worker takes them here)
    queued = generations.by_status(db, cid, [GS.DISPATCHED])
    assert queued
    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)
    warmer = CampaignWarmer()
    warmer.warmed[str(cid)] = {}  # the campaign-level warm-up out of the way: only the generations' own
    got = warmer.scan()
    mine = {str(g["generation_id"]) for g in queued}
    assert mine <= {g.get("generation_id") for g in got} and compiles
    assert not [g for g in warmer.scan() if g.get("generation_id") in mine]  # once
    g = queued[0]
    before = len(compiles)
    assert execute_generation(g["generation_id"], dispatch_ref=g["dispatch_ref"])["status"] == "succeeded"
    assert len(compiles) == before


def test_only_the_generation_deployments_pool_warms_up(pool_deployment):
    from huntflow.flows.warm import serves_generations

    assert serves_generations(POOL) is True
    assert serves_generations("ticks-only") is False  # a worker serving only ticks compiles nothing


def test_a_claimed_earlier_run_gets_the_free_device_first_and_an_absent_one_is_not_waited_for_long():
    """Two runs claimed in one poll: the later one reaching a free device first leaves it to the
    earlier one; a claimed run that never comes holds the others up only ``grace`` seconds."""
    import threading

    from huntflow.flows.generation import DeviceSlots

    slots, order = DeviceSlots(1, grace=5.0), []
    slots.expect("run-0", 0.0)
    slots.expect("run-1", 1.0)

    def run(rid: str, key: float) -> None:
        with slots.hold(key, rid):
            order.append(rid)

    later = threading.Thread(target=run, args=("run-1", 1.0))
    later.start()
    time.sleep(0.3)
    assert order == [] and slots.waiting() == 1  # run-1 waits for run-0 though the device is free
    run("run-0", 0.0)
    later.join(10)
    assert order == ["run-0", "run-1"]
    slots.expect("gone", 2.0)
    quick = DeviceSlots(1, grace=0.2)
    quick.expect("gone", 2.0)
    t0 = time.monotonic()
    with quick.hold(3.0, "here"):
        waited = time.monotonic() - t0
    assert 0.15 < waited < 5  # the absent earlier run held it up only for the grace
    slots.forget("gone")
    with slots.hold(5.0, "next"):  # forgotten: nobody waits for it
        pass
