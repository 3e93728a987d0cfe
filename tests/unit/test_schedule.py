"""Scheduled apps: cron parsing (croniter), the runner's decisions and loop under a fake clock, the
run history, and the operator's refusal of a schedule croniter cannot read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from localcluster import examples
from shoal_agent.runtime.app import InvocationRequest
from shoal_agent.runtime.outcome import InvocationResult, Outcome
from shoal_agent.triggers.schedule import (
    Due,
    Finished,
    ScheduleRunner,
    ScheduleView,
    Waiting,
    following,
    may_start,
    record,
    wait_seconds,
)
from shoal_api import WasmApp
from shoal_api.schedule import (
    MAX_RUNS,
    ScheduleError,
    latest_runs,
    output_tail,
    parse_schedule,
    schedule_problem,
)
from shoal_api.wasmapp import ScheduledRun, ScheduleTrigger, Trigger, WasmAppStatus
from shoal_api.wasmplacement import WasmPlacement
from shoal_operator import adapt
from shoal_operator.reconciler import Reconciler

from .test_reconcile_noop import DIGEST, NOW, RecordingKube, cluster

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- parsing --------------------------------------------------------------------------------------


def test_five_fields_run_on_the_minute() -> None:
    schedule = parse_schedule("*/5 * * * *")
    assert schedule.next_after(at(1)) == at(300)
    assert schedule.next_after(at(300)) == at(600)  # strictly after


def test_a_sixth_field_in_front_gives_seconds() -> None:
    schedule = parse_schedule("*/3 * * * * *")
    assert schedule.with_seconds
    assert [schedule.next_after(at(s)) for s in (0, 1, 2.5, 3)] == [at(3), at(3), at(3), at(6)]
    assert parse_schedule("30 0 * * * *").next_after(T0) == at(30)  # second 30 of minute 0 of each hour


def test_macros_and_time_zones() -> None:
    assert parse_schedule("@hourly").next_after(at(1)) == at(3600)
    berlin = parse_schedule("0 9 * * *", "Europe/Berlin")
    assert berlin.next_after(T0) == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # CET: UTC+1
    assert berlin.next_after(datetime(2026, 4, 1, tzinfo=UTC)) == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    assert berlin.zone_name == "Europe/Berlin"
    assert parse_schedule("* * * * *").zone_name == "UTC"


@pytest.mark.parametrize(
    ("cron", "zone", "words"),
    [
        ("75 * * * *", None, "out of range"),
        ("0 0 30 2 *", None, "can never occur"),
        ("* * * *", None, "expected 5 fields, or 6 with seconds first"),
        ("0 0 * * * * 2030", None, "expected 5 fields, or 6 with seconds first"),
        ("@often", None, "unknown macro"),
        ("H * * * *", None, "hashed fields (H) are not supported"),
        ("* * * * *", "Mars/Olympus", "not a known IANA time zone"),
    ],
)
def test_what_croniter_refuses_is_said_in_words(cron: str, zone: str | None, words: str) -> None:
    problem = schedule_problem(cron, zone)
    assert problem is not None and words in problem, problem
    with pytest.raises(ScheduleError):
        parse_schedule(cron, zone)


def test_the_model_checks_the_shape_and_leaves_the_ranges_to_the_operator() -> None:
    trigger = Trigger.model_validate({"schedule": {"cron": "*/5 * * * *", "args": ["0", "x"]}})
    assert trigger.kind == "schedule"
    assert trigger.args == ["0", "x"]
    assert trigger.summary() == "schedule */5 * * * *"
    assert trigger.to_dict()["schedule"]["concurrencyPolicy"] == "Allow"
    zoned = ScheduleTrigger(cron="0 9 * * 1-5", time_zone="Europe/Berlin", concurrency_policy="Forbid")
    assert Trigger(schedule=zoned).summary() == "schedule 0 9 * * 1-5 Europe/Berlin"
    ScheduleTrigger(cron="75 * * * *")  # the shape is fine; croniter (in the operator) refuses it
    for bad in ("every minute", "* * * *", "* * * * * * *", "@ hourly", ""):
        with pytest.raises(ValidationError):
            ScheduleTrigger(cron=bad)
    with pytest.raises(ValidationError):
        ScheduleTrigger(cron="* * * * *", time_zone="../etc/passwd")
    with pytest.raises(ValidationError):
        ScheduleTrigger(cron="* * * * *", concurrency_policy="Replace")
    with pytest.raises(ValidationError, match="exactly one trigger kind"):
        Trigger.model_validate({"job": {}, "schedule": {"cron": "* * * * *"}})


# --- history --------------------------------------------------------------------------------------


def run(start: float, *, node: str = "n1", outcome: str = "ok", output: str = "") -> ScheduledRun:
    return ScheduledRun(
        node=node,
        schedule_time=at(start),
        start_time=at(start),
        completion_time=at(start + 0.5),
        outcome=outcome,
        exit_code=0 if outcome == "ok" else 1,
        output=output,
    )


def test_latest_runs_keeps_the_newest_once_each_oldest_first() -> None:
    old = [run(s) for s in range(4)]
    merged = latest_runs(old, [run(3, output="again"), run(4), run(5)], [run(4, node="n2")])
    assert len(merged) == MAX_RUNS
    assert [(r.start_time, r.node) for r in merged] == [
        (at(2), "n1"),
        (at(3), "n1"),
        (at(4), "n1"),
        (at(4), "n2"),
        (at(5), "n1"),
    ]
    assert merged[1].output == "again"  # the later report of the same run wins
    assert latest_runs(old, limit=0) == []


def test_output_tail_is_bounded_in_bytes_at_a_character_boundary() -> None:
    assert output_tail(b"short") == "short"
    tail = output_tail(("é" * 400).encode(), limit=101)
    assert len(tail.encode()) <= 101 and set(tail) == {"é"} and len(tail) == 50
    assert output_tail(b"x" * 1000 + b"END", limit=10) == "xxxxxxxEND"


def test_record_of_a_finished_run() -> None:
    failed = InvocationResult(Outcome.EXIT, stdout=b"out\n", stderr=b"exiting with 3\n", exit_code=3)
    r = record("n1", at(3), at(3.01), at(3.2), failed)
    assert (r.outcome, r.exit_code, r.output, r.succeeded) == ("exit", 3, "out\nexiting with 3\n", False)
    ok = record("n1", at(6), at(6), at(6.1), InvocationResult(Outcome.OK))
    assert (ok.exit_code, ok.succeeded) == (0, True)
    timeout = record("n1", at(9), at(9), at(10), InvocationResult(Outcome.TIMEOUT, message="deadline"))
    assert (timeout.outcome, timeout.exit_code) == ("timeout", None)
    assert r.to_dict()["scheduleTime"] == "2026-03-01T12:00:03Z"
    assert r.start_time == at(3) and r.completion_time == at(3)  # whole seconds, as on the wire


# --- the runner's decisions -----------------------------------------------------------------------


def test_forbid_skips_while_a_run_is_active_and_allow_never_does() -> None:
    assert may_start("Forbid", 0, 64) and not may_start("Forbid", 1, 64)
    assert may_start("Allow", 0, 64) and may_start("Allow", 3, 64)
    assert not may_start("Allow", 64, 64) and may_start("Allow", 0, 0)  # the app's maxConcurrency


def test_times_slept_through_are_skipped_not_caught_up() -> None:
    every3 = parse_schedule("*/3 * * * * *")
    assert following(every3, at(3), at(3.1)) == at(6)
    assert following(every3, at(3), at(13)) == at(15)  # 6, 9 and 12 passed while it slept


def test_sleeps_are_bounded_so_a_stepped_clock_is_noticed() -> None:
    assert wait_seconds(at(10), at(0)) == 10
    assert wait_seconds(at(3600), at(0)) == 30
    assert wait_seconds(at(0), at(5)) == 0


# --- the runner's loop under a fake clock ----------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = at(0.5)

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class Guest:
    """An invoker whose runs block until released, counting starts and cancellations."""

    def __init__(self, time: FakeTime, result: InvocationResult, *, block: bool) -> None:
        self.time, self.result = time, result
        self.release = asyncio.Event()
        if not block:
            self.release.set()
        self.requests: list[InvocationRequest] = []
        self.cancelled = 0

    async def __call__(self, request: InvocationRequest) -> InvocationResult:
        self.requests.append(request)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.time.now += timedelta(seconds=0.2)
        return self.result


def started(events: list[Any]) -> list[Due]:
    return [e for e in events if isinstance(e, Due) and e.started]


def skipped(events: list[Any]) -> list[Due]:
    return [e for e in events if isinstance(e, Due) and not e.started]


async def until(check: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def runner_for(cron: str, policy: Any, guest: Guest, events: list[Any], time: FakeTime) -> ScheduleRunner:
    return ScheduleRunner(
        parse_schedule(cron),
        policy,
        guest,
        events.append,
        node="n1",
        args=("0", "x"),
        max_wait_s=5.0,
        max_active=3,
        clock=time.clock,
        sleep=time.sleep,
    )


async def test_allow_starts_every_run_and_records_each() -> None:
    time, events = FakeTime(), list[Any]()
    guest = Guest(time, InvocationResult(Outcome.OK, stdout=b"job-c ran\n", exit_code=0), block=False)
    task = asyncio.create_task(runner_for("*/3 * * * * *", "Allow", guest, events, time).run())
    await until(lambda: sum(isinstance(e, Finished) for e in events) >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = [e.run for e in events if isinstance(e, Finished)]
    assert [r.schedule_time for r in finished[:3]] == [at(3), at(6), at(9)]
    assert all(r.exit_code == 0 and r.output == "job-c ran\n" and r.node == "n1" for r in finished)
    assert all(r.start_time >= r.schedule_time for r in finished)
    assert isinstance(events[0], Waiting) and events[0].due == at(3)
    assert guest.requests[0] == InvocationRequest(args=("0", "x"), max_wait_s=5.0)  # each run a fresh call


async def test_allow_overlaps_up_to_max_concurrency_and_cancelling_the_loop_cancels_its_runs() -> None:
    time, events = FakeTime(), list[Any]()
    guest = Guest(time, InvocationResult(Outcome.OK), block=True)
    task = asyncio.create_task(runner_for("* * * * * *", "Allow", guest, events, time).run())
    await until(lambda: len(skipped(events)) >= 2)
    assert [e.active for e in started(events)] == [1, 2, 3]  # max_active=3: then times are skipped
    assert all(e.active == 3 for e in skipped(events))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guest.cancelled == len(guest.requests) == 3
    assert not any(isinstance(e, Finished) for e in events)  # an interrupted run is not recorded


async def test_forbid_skips_the_times_that_come_while_a_run_is_active() -> None:
    time, events = FakeTime(), list[Any]()
    guest = Guest(time, InvocationResult(Outcome.EXIT, stderr=b"exiting with 3\n", exit_code=3), block=True)
    task = asyncio.create_task(runner_for("* * * * * *", "Forbid", guest, events, time).run())
    await until(lambda: len(skipped(events)) >= 3)
    guest.release.set()
    await until(lambda: any(isinstance(e, Finished) for e in events))
    await until(lambda: len(started(events)) >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kinds = [("started" if e.started else "skipped") for e in events if isinstance(e, Due)]
    assert kinds[:4] == ["started", "skipped", "skipped", "skipped"], kinds
    assert all(e.active == 1 for e in skipped(events))
    first = next(e for e in events if isinstance(e, Finished))
    assert (first.run.schedule_time, first.run.exit_code, first.run.outcome) == (at(1), 3, "exit")
    assert first.active == 0


# --- the operator ----------------------------------------------------------------------------------


def scheduled_app(status: WasmAppStatus | None = None) -> WasmApp:
    return WasmApp.model_validate(
        {
            "metadata": {"name": "tick", "namespace": "ns", "generation": 1},
            "spec": {
                "module": {"image": f"registry.test/job@{DIGEST}"},
                "trigger": {"schedule": {"cron": "*/3 * * * * *"}},
            },
            "status": status.to_dict() if status else None,
        }
    )


def placement_with(node: str, runs: list[ScheduledRun], *, active: int, last: datetime) -> WasmPlacement:
    app = scheduled_app()
    spec = adapt.placement_spec(app, node=node, digest=DIGEST, dependencies=[])
    return WasmPlacement.model_validate(
        {
            "metadata": {"name": f"tick-{node}", "namespace": "ns"},
            "spec": spec.to_dict(),
            "status": {
                "state": "Ready",
                "ready": True,
                "observedTemplateHash": spec.template_hash,
                "runs": [r.to_dict() for r in runs],
                "activeRuns": active,
                "lastScheduleTime": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }
    )


def test_app_status_merges_the_runs_of_its_placements_into_what_it_kept() -> None:
    kept = WasmAppStatus(runs=[run(0), run(3)], last_successful_time=at(3.5), last_schedule_time=at(3))
    placements = [
        placement_with("n1", [run(3), run(6, outcome="exit")], active=1, last=at(9)),
        placement_with("n2", [run(6, node="n2")], active=0, last=at(6)),
    ]
    status = adapt.app_status(
        scheduled_app(kept),
        placements=placements,
        fresh_agents=frozenset({"n1", "n2"}),
        decision=None,
        digest=DIGEST,
        dependencies=(True, "NoDependencies", ""),
        problem=None,
        now=NOW,
    )
    assert [(r.start_time, r.node) for r in status.runs or []] == [
        (at(0), "n1"),
        (at(3), "n1"),
        (at(6), "n1"),
        (at(6), "n2"),
    ]
    assert status.last_schedule_time == at(9)
    # n2's run at 6 succeeded (n1's failed); it completed at 6.5, kept at the second as metav1.Time is
    assert status.last_successful_time == at(6)
    assert status.active_runs == 1
    assert status.trigger_summary == "schedule */3 * * * * *"


def test_app_status_of_other_triggers_has_no_schedule_fields() -> None:
    app = scheduled_app().model_copy(deep=True)
    app.spec.trigger = Trigger.model_validate({"job": {}})
    status = adapt.app_status(
        app,
        placements=[],
        fresh_agents=frozenset(),
        decision=None,
        digest=DIGEST,
        dependencies=(True, "NoDependencies", ""),
        problem=None,
        now=NOW,
    )
    assert "runs" not in status.to_dict() and "activeRuns" not in status.to_dict()


async def test_operator_refuses_a_schedule_croniter_cannot_read_with_a_condition_and_an_event() -> None:
    cache = cluster()
    body = scheduled_app().to_k8s()
    body["metadata"] |= {"uid": "u2", "resourceVersion": "1"}
    body["spec"]["trigger"] = {"schedule": {"cron": "0 0 30 2 *"}}
    cache.apply_app("ADDED", body)
    kube = RecordingKube()
    reconciler = Reconciler(cache=cache, kube=kube, resolver=None, clock=lambda: NOW)  # type: ignore[arg-type]
    await reconciler.reconcile_batch(["ns/tick"])
    await reconciler.publish.drain()
    assert ("event", "InvalidSchedule") in kube.writes, kube.writes
    assert not any(what == "create placement" for what, _ in kube.writes)
    status = cache.apps["ns/tick"].status
    assert status is not None
    scheduled = status.condition("Scheduled")
    assert scheduled is not None and scheduled.status == "False" and scheduled.reason == "InvalidSchedule"
    assert scheduled.message is not None and "can never occur" in scheduled.message


def test_the_example_schedule_is_a_valid_wasmapp_croniter_reads() -> None:
    [doc] = examples.manifests(examples.EXAMPLES_DIR / "schedule.yaml", "registry.test:5000")
    app = WasmApp.from_k8s(doc)
    schedule = app.spec.trigger.schedule
    assert schedule is not None and schedule.concurrency_policy == "Forbid"
    assert parse_schedule(schedule.cron, schedule.time_zone).next_after(at(1)) == at(10)


def test_the_placement_status_tells_the_next_time_and_the_latest_news() -> None:
    view = ScheduleView.of(parse_schedule("*/3 * * * * *"), "Forbid")
    assert view.message == "schedule */3 * * * * * (UTC, Forbid): starting; no run yet"
    view, fields = view.observe(Waiting(at(3)), [])
    assert fields == {} and "next run at 2026-03-01T12:00:03Z; no run yet" in view.message
    view, fields = view.observe(Due(at(3), 1, started=True), [])
    assert fields == {"last_schedule_time": at(3), "active_runs": 1}
    assert view.message.endswith("; run of 2026-03-01T12:00:03Z started")
    view, fields = view.observe(Due(at(6), 1, started=False), [])
    assert fields == {}
    assert view.last == "skipped the run of 2026-03-01T12:00:06Z: 1 still running (concurrencyPolicy Forbid)"
    allow = ScheduleView.of(parse_schedule("*/3 * * * * *"), "Allow")
    assert allow.observe(Due(at(6), 64, started=False), [])[0].last.endswith("(resources.maxConcurrency)")
    history = [run(s) for s in range(MAX_RUNS)]
    failed = record("n1", at(9), at(9), at(11), InvocationResult(Outcome.EXIT, exit_code=3))
    view, fields = view.observe(Finished(failed, 0), history)
    assert fields["active_runs"] == 0 and fields["runs"][-1] == failed and len(fields["runs"]) == MAX_RUNS
    assert view.last == "run of 2026-03-01T12:00:09Z exited with code 3"
    timeout = record("n1", at(9), at(9), at(10), InvocationResult(Outcome.TIMEOUT))
    assert view.observe(Finished(timeout, 0), [])[0].last == "run of 2026-03-01T12:00:09Z timeout"
