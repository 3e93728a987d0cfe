"""The agent shell's pure parts: flags/env, Host and path routing, status transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoal_agent.config import parse_args
from shoal_agent.routing import app_routes, mount
from shoal_agent.runtime import InvocationRequest, InvocationResult, Outcome
from shoal_agent.status import patch_body, transition
from shoal_agent.triggers import HttpRouter, HttpTarget
from shoal_api.wasmplacement import WasmPlacementStatus

pytestmark = pytest.mark.unit


def test_flags_fall_back_to_downward_api_env() -> None:
    env = {
        "NODE_NAME": "n1",
        "POD_NAMESPACE": "shoal",
        "POD_IP": "10.0.0.7",
        "CPU_REQUEST": "500",
        "MEMORY_REQUEST": "268435456",
        "SHOAL_CACHE": "/var/cache/shoal",
    }
    cfg = parse_args([], env)
    assert (cfg.node_name, cfg.namespace, cfg.advertise_host) == ("n1", "shoal", "10.0.0.7")
    assert (cfg.cpu_millis, cfg.memory_bytes) == (500, 256 << 20)
    assert cfg.cache_dir == Path("/var/cache/shoal/agent/n1")
    assert cfg.renew_seconds == 5
    cfg = parse_args(["--node-name=n2", "--cpu-millis=100", "--http-host=127.0.0.1"], env)
    assert (cfg.node_name, cfg.cpu_millis, cfg.advertise_host) == ("n2", 100, "10.0.0.7")
    assert parse_args(["--http-host=127.0.0.2"], {"NODE_NAME": "x"}).advertise_host == "127.0.0.2"


def test_node_name_is_required() -> None:
    with pytest.raises(SystemExit):
        parse_args([], {})


async def _ok(_req: InvocationRequest) -> InvocationResult:
    return InvocationResult(Outcome.OK)


def test_routes_by_path_and_by_service_host() -> None:
    router = HttpRouter()
    a = HttpTarget("ns1", "web", _ok)  # type: ignore[arg-type]
    b = HttpTarget("ns2", "web", _ok)  # type: ignore[arg-type]
    assert mount(router, a, app_routes("web", "ns1", "/web", "cluster.local")) == []
    taken = mount(router, b, app_routes("web", "ns2", "/web/", "cluster.local"))
    assert [r.route for r in taken] == ["/web/..."]  # same path, other namespace: Host only
    match = router.match
    assert match("10.0.0.1:8081", "/web/x")[1] is a  # type: ignore[index]
    assert match("web.ns2.svc.cluster.local:80", "/web/x")[1] is b  # type: ignore[index]
    assert match("web.ns2.svc", "/other")[1] is b  # type: ignore[index]
    assert match("web.ns2", "/web")[0].route == "/web/..."  # type: ignore[index]
    assert match("10.0.0.1", "/other") is None
    # Re-mounting replaces an app's routes in one step.
    mount(router, a, app_routes("web", "ns1", "/v2", "cluster.local"))
    assert match("x", "/web") is None and match("x", "/v2/y")[1] is a  # type: ignore[index]


def test_transition_moves_time_only_with_state_and_clears_job_fields() -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    s = transition(
        WasmPlacementStatus(), state="Pulling", ready=False, message="m", observed_template_hash="h", now=t0
    )
    s2 = transition(
        s, state="Pulling", ready=False, message="m2", observed_template_hash="h", now=t0 + timedelta(1)
    )
    assert s2.last_transition_time == t0
    s3 = transition(
        s2, state="Ready", ready=True, message="ok", observed_template_hash="h", now=t0 + timedelta(2)
    )
    assert s3.last_transition_time == t0 + timedelta(2)
    assert [(c.type, c.status) for c in s3.conditions] == [("Ready", "True")]
    body = patch_body(s3)["status"]
    assert body["exitCode"] is None and body["output"] is None and body["state"] == "Ready"
    s4 = transition(
        s3, state="Failed", ready=False, message="x", observed_template_hash="h", output="y" * 5000
    )
    assert s4.output is not None and len(s4.output) == 4096


def test_registration_backs_off_against_a_failing_apiserver() -> None:
    """Every round fails (apiserver down), the Lease was never renewed: the waits grow from 0.25-0.5 s
    to the renew interval instead of a 0.05 s tight loop (1,423 writes in 75 s before this fix)."""
    from shoal_agent.registration import next_wait

    clock, rounds, failures = 0.0, 0, 0
    waits = []
    while clock < 75.0:
        failures += 1  # this round failed
        rounds += 1
        wait = next_wait(failures=failures, now=clock, next_renew=0.0, renew_seconds=5.0, jitter=0.5)
        waits.append(wait)
        clock += wait
    assert waits[:4] == [0.375, 0.75, 1.5, 3.0]
    assert max(waits) == 3.75 and min(waits) >= 0.25
    assert rounds < 30
    # Jitter spreads a fleet between half and all of the backoff.
    assert next_wait(failures=3, now=0, next_renew=0, renew_seconds=5, jitter=0.0) == 1.0
    assert next_wait(failures=3, now=0, next_renew=0, renew_seconds=5, jitter=0.999) < 2.0
    # Healthy: wait for the renew time.
    assert next_wait(failures=0, now=10.0, next_renew=13.0, renew_seconds=5, jitter=0.3) == 3.0
