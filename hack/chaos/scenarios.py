"""The scenarios: each sets up its own namespace and apps, breaks something under load, measures,
cleans up, and returns a Result (figures, goals). A step that cannot finish raises; the runner
records that as the scenario's error and goes on with the next one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from chaos.cluster import APPS, Cluster
from chaos.figures import Goal, Result, failed, first_time
from chaos.load import Load, Routes, get

T = TypeVar("T")

HELLO_PATH = "/hello"


@dataclass(frozen=True)
class Profile:
    """How long the scenarios run: `short` inside `make test`, full in `make chaos`."""

    short: bool

    @property
    def soak_seconds(self) -> float:
        return 60.0 if self.short else 600.0


def wait_for(check: Callable[[], T], *, within: float, what: str, interval: float = 0.02) -> T:
    """Poll until `check` returns something true; bounded by `within`."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        time.sleep(interval)


def hello_spec(image: str, replicas: int, **extra: object) -> dict[str, object]:
    return {
        "module": {"image": image},
        "replicas": replicas,
        "trigger": {"http": {"path": HELLO_PATH}},
        "resources": {"memory": "16Mi", "timeout": "2s"},
        **extra,
    }


def agent_crash(c: Cluster, profile: Profile) -> Result:
    """SIGKILL one of three agents serving an app under load; restart it as kubelet would.

    agent_crash_withdrawn_s: from the kill until no EndpointSlice routes to its address (and none does
    again before the restart). agent_restart_serving_s: from the restart until the app answers 200
    at that address (the modules come from the agent's caches). agent_restart_routed_s: until the
    slices route to it again. agent_crash_failed: load requests that failed, from start to end."""
    result = Result(
        "agent_crash", goals=[Goal("agent_crash_withdrawn_s", 3.0), Goal("agent_restart_serving_s", 2.0)]
    )
    ns = c.namespace("chaos-crash")
    app = "hello"
    c.apply_app(ns, app, hello_spec(c.push("hello-c"), 3))
    c.wait_ready(ns, app)
    routes = Routes(c.kube, ns, app).start()
    load: Load | None = None
    try:
        wait_for(lambda: len(routes.current()) == 3, within=30, what="3 routed addresses")
        load = Load(routes, f"{HELLO_PATH}/chaos", workers=2, interval=0.02, max_seconds=120).start()
        time.sleep(2.0)
        victim = sorted(c.shoal.agents)[0]
        address = c.agent_address(victim)
        killed = time.monotonic()
        c.kill_agent(victim)
        wait_for(lambda: address not in routes.current(), within=30, what=f"{victim}'s address withdrawn")
        withdrawn = first_time(routes.samples, after=killed, present=False, address=address)
        result.figures["agent_crash_withdrawn_s"] = None if withdrawn is None else withdrawn - killed
        time.sleep(0.5)  # a crashed container is restarted after a moment, not at once

        restarted = time.monotonic()
        c.restart_agent(victim)
        health = (address[0], c.shoal.agents[victim].metrics_port)
        wait_for(lambda: get(health, "/healthz", timeout=1)[0] == 200, within=60, what="agent process up")
        result.figures["agent_restart_process_up_s"] = time.monotonic() - restarted
        wait_for(
            lambda: get(address, f"{HELLO_PATH}/probe", timeout=1)[0] == 200,
            within=60,
            what="restarted agent serving",
        )
        result.figures["agent_restart_serving_s"] = time.monotonic() - restarted
        wait_for(lambda: address in routes.current(), within=60, what=f"{victim}'s address routed again")
        back = first_time(routes.samples, after=restarted, present=True, address=address)
        result.figures["agent_restart_routed_s"] = None if back is None else back - restarted
        time.sleep(2.0)
        outcomes = load.stop()
        result.figures["agent_crash_requests"] = len(outcomes)
        result.figures["agent_crash_failed"] = failed(outcomes)
        result.figures["agent_crash_failed_after_return"] = failed(outcomes, start=back or restarted)
        result.notes.append(
            "failures are requests sent to the killed agent before its address left the slices "
            "(no client retry)"
        )
    finally:
        if load is not None:
            load.stop()
        routes.stop()
        c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{app}")
    return result


SCENARIOS: dict[str, Callable[[Cluster, Profile], Result]] = {
    "agent_crash": agent_crash,
}
