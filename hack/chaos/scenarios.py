"""The scenarios: each sets up its own namespace and apps, breaks something under load, measures,
cleans up, and returns a Result (figures, goals). A step that cannot finish raises; the runner
records that as the scenario's error and goes on with the next one."""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from chaos.cluster import APPS, Cluster
from chaos.figures import (
    Goal,
    Op,
    Result,
    causes,
    failed,
    first_time,
    metric_sum,
    placement_audit,
    quantile,
    storm_plan,
)
from chaos.load import Load, Routes, get, get_text

T = TypeVar("T")

HELLO_PATH = "/hello"


@dataclass(frozen=True)
class Profile:
    """How long the scenarios run: `short` inside `make test`, full in `make chaos`."""

    short: bool

    @property
    def soak_seconds(self) -> float:
        return 45.0 if self.short else 600.0

    @property
    def storm(self) -> tuple[int, int]:
        """(operator kills, operations) of the kill storm."""
        return (6, 60) if self.short else (20, 200)


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
        seen: dict[str, float] = {}

        def up() -> bool:
            # Each watched on its own: the trigger port may serve (warm start) before /healthz
            # answers, which needs the agent's full start.
            probes = {
                "agent_restart_serving_s": (address, f"{HELLO_PATH}/probe", routes.host),
                "agent_restart_process_up_s": (health, "/healthz", None),
            }
            for name, (at, path, host) in probes.items():
                if name not in seen and get(at, path, host=host, timeout=1)[0] == 200:
                    seen[name] = time.monotonic() - restarted
            return len(seen) == len(probes)

        wait_for(up, within=60, what="restarted agent serving and healthy")
        result.figures.update(seen)
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


@contextmanager
def loaded_app(c: Cluster, namespace: str, app: str, spec: dict[str, Any], **load: Any) -> Iterator[Load]:
    """`app` applied and Ready, its addresses all routed, and bounded load on it; deleted afterwards."""
    c.apply_app(namespace, app, spec)
    c.wait_ready(namespace, app)
    routes = Routes(c.kube, namespace, app).start()
    traffic: Load | None = None
    try:
        want = int(str(spec["replicas"]))
        wait_for(lambda: len(routes.current()) == want, within=30, what=f"{want} routed addresses")
        traffic = Load(routes, f"{HELLO_PATH}/chaos", **{"workers": 2, "interval": 0.02, **load}).start()
        yield traffic
    finally:
        if traffic is not None:
            traffic.stop()
        routes.stop()
        c.kube.delete(f"{APPS}/namespaces/{namespace}/wasmapps/{app}")


def placement_ready(p: dict[str, Any]) -> bool:
    status = p.get("status") or {}
    return bool(status.get("ready")) and status.get("observedTemplateHash") == p["spec"]["templateHash"]


def rolling_update(c: Cluster, profile: Profile) -> Result:
    """Three replicas, maxUnavailable 1, under load; the image moves to another module (a new
    digest). rolling_update_dropped: load requests that failed from the update to 2 s after every
    placement serves the new template."""
    result = Result(
        "rolling_update",
        goals=[
            Goal("rolling_update_dropped", 0),
            Goal("rolling_update_new_version_addresses", 3, at_least=True),
        ],
    )
    ns = c.namespace("chaos-rollout")
    v1 = c.push("hello-c", "v1", repository="rollout")
    v2 = c.push("hello-wat", "v2", repository="rollout")
    spec = hello_spec(v1, 3, rollout={"maxUnavailable": 1})
    with loaded_app(c, ns, "hello", spec, max_seconds=300) as load:
        time.sleep(2.0)
        host = load.routes.host
        old_body = {a: get_text(a, f"{HELLO_PATH}/x", host=host) for a in load.routes.current()}
        generation = int(c.app(ns, "hello")["metadata"]["generation"])
        began = time.monotonic()
        c.apply_app(ns, "hello", {**spec, "module": {"image": v2}})

        def rolled() -> bool:
            app = c.app(ns, "hello")
            status = app.get("status") or {}
            if status.get("observedGeneration", 0) <= generation or status.get("readyReplicas", 0) < 3:
                return False
            placements = [p for p in c.placements(ns) if not p["metadata"].get("deletionTimestamp")]
            digest = status.get("resolvedDigest")
            return len(placements) == 3 and all(
                placement_ready(p) and p["spec"]["module"]["digest"] == digest for p in placements
            )

        wait_for(rolled, within=120, what="every placement on the new digest", interval=0.1)
        result.figures["rolling_update_s"] = time.monotonic() - began
        time.sleep(2.0)
        # Proof that the new module serves, not just that the status says so.
        result.figures["rolling_update_new_version_addresses"] = sum(
            get_text(a, f"{HELLO_PATH}/x", host=host) not in ("", old_body.get(a))
            for a in load.routes.current()
        )
        outcomes = load.stop()
    result.figures["rolling_update_requests"] = len([o for o in outcomes if o.started >= began])
    result.figures["rolling_update_dropped"] = failed(outcomes, start=began)
    if why := causes(outcomes, start=began):
        result.notes.append(f"failures: {why}")
    return result


def storm_driver(
    c: Cluster, ns: str, image: str, plan: list[Op], *, seconds: float, errors: list[str]
) -> None:
    """Run `plan` against the apiserver, spread over `seconds` (bounded by the plan's length)."""
    pause = seconds / max(1, len(plan))
    for op in plan:
        path = f"{APPS}/namespaces/{ns}/wasmapps/{op.app}"
        try:
            if op.verb in ("create", "update"):
                env = [{"name": "STORM", "value": str(op.generation)}]
                c.apply_app(ns, op.app, hello_spec(image, op.replicas, env=env))
            elif op.verb == "scale":
                c.kube.merge_patch(f"{path}/scale", {"spec": {"replicas": op.replicas}})
            else:
                c.kube.delete(path)
        except Exception as e:  # counted: the storm goes on, as a user's kubectl calls would
            errors.append(f"{op.verb} {op.app}: {e}")
        time.sleep(pause)


class LeaderWatch:
    """Samples which operators say they lead, every `every` seconds, in a thread (bounded in time)."""

    def __init__(self, c: Cluster, *, every: float = 0.1, max_seconds: float = 900.0) -> None:
        self.c = c
        self.every = every
        self.max_seconds = max_seconds
        self.samples = 0
        self.both = 0
        self.leaders: list[tuple[float, str]] = []
        """(time, name) each time the leader changed."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-watch", daemon=True)

    def start(self) -> LeaderWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            leading = [name for name, yes in self.c.leading().items() if yes]
            self.samples += 1
            self.both += len(leading) > 1
            if len(leading) == 1 and (not self.leaders or self.leaders[-1][1] != leading[0]):
                self.leaders.append((time.monotonic(), leading[0]))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def other_leads(c: Cluster, before: str) -> bool:
    """Another identity than `before` holds the Lease, and an operator says it leads."""
    return c.lease_holder() not in ("", before) and any(c.leading().values())


def operator_kills(c: Cluster, profile: Profile) -> Result:
    """SIGKILL the leading operator again and again (restarted each time, as its Deployment would)
    during a burst of creates, scales, updates and deletes, with a second operator (another
    identity) on standby all along. Then: placements that should not exist
    (operator_kills_duplicates) or are missing (operator_kills_lost) once it settles, and how long
    it took to settle after the last restart (operator_kills_converged_s). Both operators' leader
    gauges are sampled every 0.1 s: operator_kills_both_leading counts samples in which both said
    they lead (goal 0; only a leader writes). In the full run, the leader is once left down longer
    than its Lease, so the standby takes over (operator_kills_handover_s)."""
    kills, ops = profile.storm
    result = Result(
        "operator_kills",
        goals=[
            Goal("operator_kills_duplicates", 0),
            Goal("operator_kills_lost", 0),
            Goal("operator_kills_converged_s", 30),
            Goal("operator_kills_both_leading", 0),
        ],
    )
    ns = c.namespace("chaos-storm")
    image = c.push("hello-c", "v1", repository="storm")
    plan = storm_plan(ops, apps=max(10, ops // 6), seed=12)
    rng = random.Random(12)
    errors: list[str] = []
    c.start_standby_operator()
    watch = LeaderWatch(c).start()
    driver = threading.Thread(
        # Paced to last about as long as the kills (a kill and restart take ~5 s here), so the last
        # restarted operator still has changes to catch up with.
        target=storm_driver,
        args=(c, ns, image, plan),
        kwargs={"seconds": kills * 5.0, "errors": errors},
    )
    driver.start()
    restarts: list[float] = []
    handover = kills // 2 if not profile.short else -1
    try:
        for i in range(kills):
            time.sleep(rng.uniform(0.3, 2.0))
            # The leader by the Lease itself (a scrape of its metrics may time out under load).
            holder = c.lease_holder()
            victim = c.standby if holder.endswith("-standby") and c.standby is not None else c.shoal.operator
            c.kill_operator(victim)
            if i == handover:
                # Left down past its Lease (15 s): the other operator must take over, as it would
                # when a node dies with the leader on it.
                down = time.monotonic()
                try:
                    wait_for(
                        functools.partial(other_leads, c, holder),
                        within=40,
                        what="the other operator to lead",
                        interval=0.1,
                    )
                    result.figures["operator_kills_handover_s"] = time.monotonic() - down
                except TimeoutError:
                    result.figures["operator_kills_handover_s"] = None
            began = time.monotonic()
            if victim is c.standby:
                c.start_standby_operator()
            else:
                c.shoal.start_operator()  # returns once its metrics answer: not yet leading or warm
            restarts.append(time.monotonic() - began)
    finally:
        driver.join(timeout=kills * 5.0 + 120)
    settled_from = time.monotonic()
    desired: dict[str, int] = {}
    audit = (-1, -1)

    def converged() -> bool:
        nonlocal desired, audit
        try:
            apps = c.apps(ns)
            placements = c.placements(ns)
        except OSError:  # a read that timed out (a loaded apiserver) is no verdict: poll again
            return False
        desired = {a["metadata"]["name"]: int(a["spec"].get("replicas", 1)) for a in apps}
        live = [p for p in placements if not p["metadata"].get("deletionTimestamp")]
        audit = placement_audit(desired, [(p["spec"]["app"], p["spec"]["nodeName"]) for p in live])
        generations = all(
            (a.get("status") or {}).get("observedGeneration") == a["metadata"]["generation"]
            and (a.get("status") or {}).get("readyReplicas", 0) >= desired[a["metadata"]["name"]]
            for a in apps
        )
        return audit == (0, 0) and generations and all(placement_ready(p) for p in live)

    try:
        wait_for(converged, within=120, what="the storm's apps to converge", interval=0.25)
        result.figures["operator_kills_converged_s"] = time.monotonic() - settled_from
    except TimeoutError:
        result.figures["operator_kills_converged_s"] = None
        result.notes.append("did not converge within 120 s")
    result.figures["operator_kills"] = kills
    result.figures["operator_kills_operations"] = len(plan)
    result.figures["operator_kills_operation_errors"] = len(errors)
    result.figures["operator_kills_apps_left"] = len(desired)
    result.figures["operator_kills_duplicates"] = audit[0]
    result.figures["operator_kills_lost"] = audit[1]
    result.figures["operator_kills_restart_p50_s"] = (
        sorted(restarts)[len(restarts) // 2] if restarts else None
    )
    watch.stop()
    c.stop_standby_operator()
    result.figures["operator_kills_leader_samples"] = watch.samples
    result.figures["operator_kills_both_leading"] = watch.both
    result.figures["operator_kills_leader_changes"] = max(0, len(watch.leaders) - 1)
    for name in list(desired):
        c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{name}")
    return result


def loads(c: Cluster) -> float:
    """Module loads (compiles and cache loads) across the agents so far."""
    return sum(metric_sum(text, "shoal_module_compile_seconds_count") for text in c.scrape().values())


def apiserver_restart(c: Cluster, profile: Profile) -> Result:
    """Restart kube-apiserver, then etcd, under load. apiserver_restart_failed: load requests that
    failed meanwhile (the agents serve without the apiserver); apiserver_restart_reloads: modules
    loaded again afterwards (duplicate work; 0 expected); the operator, should it exit (a leader
    that cannot renew its Lease stops), is restarted as its Deployment would and counted."""
    result = Result("apiserver_restart", goals=[Goal("apiserver_restart_failed", 0)])
    ns = c.namespace("chaos-apiserver")
    spec = hello_spec(c.push("hello-c", "v1", repository="apiserver"), 3)
    with loaded_app(c, ns, "hello", spec, max_seconds=300) as load:
        time.sleep(2.0)
        before = loads(c)
        began = time.monotonic()
        result.figures["apiserver_restart_apiserver_down_s"] = c.plane.restart_server("kube-apiserver")
        time.sleep(3.0)
        result.figures["apiserver_restart_etcd_down_s"] = c.plane.restart_server("etcd")
        time.sleep(5.0)
        exits = 0
        agents_down = [n for n, a in c.shoal.agents.items() if a.proc is None or not a.proc.alive()]
        resynced = time.monotonic()

        def ready() -> bool:
            nonlocal exits
            # The leader may give up its Lease a few seconds after the outage: restart it then.
            exits += c.ensure_operator()
            return (c.app(ns, "hello").get("status") or {}).get("readyReplicas") == 3

        wait_for(ready, within=90, what="Ready", interval=0.25)
        result.figures["apiserver_restart_resync_s"] = time.monotonic() - resynced
        time.sleep(3.0)
        exits += c.ensure_operator()
        outcomes = load.stop()
        result.figures["apiserver_restart_reloads"] = loads(c) - before
        result.figures["apiserver_restart_operator_exits"] = exits
        result.figures["apiserver_restart_agents_down"] = len(agents_down)
    result.figures["apiserver_restart_requests"] = len([o for o in outcomes if o.started >= began])
    result.figures["apiserver_restart_failed"] = failed(outcomes, start=began)
    result.figures["apiserver_restart_no_route"] = load.no_route
    if why := causes(outcomes, start=began):
        result.notes.append(f"failures: {why}")
    return result


def condition(app: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in (app.get("status") or {}).get("conditions") or [] if c.get("type") == type_]
    return found[0] if found else {}


def registry_down(c: Cluster, profile: Profile) -> Result:
    """Stop the registry; scale a running app from 1 to 3 replicas (every node's agent has its bytes
    cached from when it ran 3 replicas before), and create an app whose tag was never resolved. Then
    start the registry again. Figures: the scaled app's ready replicas while the registry is down,
    whether the new app's condition names the registry, and how long the new app took to become
    Ready once the registry was back."""
    result = Result(
        "registry_down",
        goals=[
            Goal("registry_down_scaled_ready", 3, at_least=True),
            Goal("registry_down_uncached_names_registry", 1, at_least=True),
        ],
    )
    ns = c.namespace("chaos-registry")
    cached = c.push("hello-c", "v1", repository="registry-cached")
    fresh = c.push("cgi-echo", "v1", repository="registry-fresh")
    # Every node pulls it once, then it shrinks to one replica: the scale-out below needs no
    # registry at all, if the operator does not insist on asking it again.
    c.apply_app(ns, "cached", hello_spec(cached, 3))
    c.wait_ready(ns, "cached")
    c.kube.merge_patch(f"{APPS}/namespaces/{ns}/wasmapps/cached/scale", {"spec": {"replicas": 1}})
    wait_for(
        lambda: len([p for p in c.placements(ns) if not p["metadata"].get("deletionTimestamp")]) == 1,
        within=60,
        what="the scale-in",
        interval=0.25,
    )
    c.registry.stop()
    try:
        time.sleep(6.0)  # an outage outlasts the operator's 5 s memory of tag lookups
        c.kube.merge_patch(f"{APPS}/namespaces/{ns}/wasmapps/cached/scale", {"spec": {"replicas": 3}})
        c.apply_app(ns, "fresh", {**hello_spec(fresh, 1), "trigger": {"http": {"path": "/fresh"}}})
        began = time.monotonic()

        def settled() -> bool:
            ready = (c.app(ns, "cached").get("status") or {}).get("readyReplicas", 0)
            return ready >= 3 and bool(condition(c.app(ns, "fresh"), "Degraded").get("message"))

        with contextlib.suppress(TimeoutError):
            wait_for(settled, within=60, what="the scale-out placed and the new app degraded", interval=0.25)
        result.figures["registry_down_scaled_ready"] = (c.app(ns, "cached").get("status") or {}).get(
            "readyReplicas", 0
        )
        result.figures["registry_down_scale_s"] = time.monotonic() - began
        degraded = condition(c.app(ns, "fresh"), "Degraded")
        result.figures["registry_down_uncached_names_registry"] = int(
            c.registry.address in degraded.get("message", "")
        )
        result.notes.append(f"new app: {degraded.get('reason')}: {degraded.get('message', '')[:120]}")
    finally:
        c.registry.start_again()
    back = time.monotonic()
    try:
        wait_for(
            lambda: (c.app(ns, "fresh").get("status") or {}).get("readyReplicas", 0) >= 1,
            within=120,
            what="fresh Ready",
            interval=0.25,
        )
        result.figures["registry_down_recovered_s"] = time.monotonic() - back
    except TimeoutError:
        result.figures["registry_down_recovered_s"] = None
        result.notes.append("the new app was not Ready 120 s after the registry returned")
    for name in ("cached", "fresh"):
        c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{name}")
    return result


HOSTILE = (
    "infinite-loop",
    "memory-grow",
    "recursion",
    "unreachable",
    "stdout-flood",
    "undeclared-import",
    "not-wasm",
)


def hostile_modules(c: Cluster, profile: Profile) -> Result:
    """A 3-replica hello under load; next to it, one hostile module at a time (3 replicas, 1 s
    timeout, 16Mi) sent 4 concurrent streams of requests for 5 s. Per module: the hello's p99 and
    failures in that window; the hostile app's own answers are expected to fail and are not counted."""
    result = Result("hostile_modules", goals=[Goal("hostile_neighbour_failed", 0)])
    ns = c.namespace("chaos-hostile")
    spec = hello_spec(c.push("hello-c", "v1", repository="hostile-neighbour"), 3)
    with loaded_app(c, ns, "hello", spec, max_seconds=300) as load:
        time.sleep(3.0)
        base_end = time.monotonic()
        result.figures["hostile_baseline_p99_ms"] = 1000 * quantile(
            [o.seconds for o in load.outcomes if o.started >= base_end - 3.0], 0.99
        )
        total_failed = 0
        for name in HOSTILE:
            app = f"bad-{name}"
            try:
                image = c.push(name, "v1", repository=f"hostile-{name}")
            except Exception as e:  # not-wasm is refused by the pusher itself: nothing to place
                result.notes.append(f"{name}: not pushed ({type(e).__name__})")
                continue
            c.apply_app(ns, app, {**hello_spec(image, 3), "trigger": {"http": {"path": f"/{name}"}}})
            time.sleep(1.0)  # loaded (or failed to load) by now on a quiet machine
            began = time.monotonic()
            stop_at = began + 5.0
            host = f"{app}.{ns}.svc"

            def attack(stop_at: float = stop_at, host: str = host) -> None:
                for _ in range(200):  # bounded in count and time
                    if time.monotonic() >= stop_at:
                        return
                    routed = load.routes.current()
                    if routed:
                        get(routed[0], "/", host=host, timeout=2.0)

            attackers = [threading.Thread(target=attack) for _ in range(4)]
            for t in attackers:
                t.start()
            for t in attackers:
                t.join(timeout=10)
            window = [o for o in list(load.outcomes) if began <= o.started < stop_at]
            key = name.replace("-", "_")
            result.figures[f"hostile_{key}_p99_ms"] = 1000 * quantile([o.seconds for o in window], 0.99)
            result.figures[f"hostile_{key}_failed"] = failed(window)
            total_failed += failed(window)
            c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{app}")
        result.figures["hostile_neighbour_failed"] = total_failed
    return result
