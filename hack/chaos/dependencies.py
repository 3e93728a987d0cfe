"""Finicky Whiskers on the chaos cluster, and the scenario that takes its Redis and MariaDB away.

The apps are examples/finicky-whiskers.yaml as a user deploys it: `tally` (HTTP) counts a click in
Redis and publishes it on `clicks`; `scoreboard` (pub/sub trigger) stores each click as a row in
MariaDB. The operator provisions both servers as StatefulSets; `localcluster.depservers` runs a real
server for each pod at its pod IP. Delivery from Redis pub/sub to the scoreboard is at most once
(docs/chaos.md): a click published while the scoreboard is not subscribed, or that it cannot store,
is lost, and the figures say how many.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.cluster import Cluster
from chaos.figures import Goal, Result, causes, failed
from chaos.load import Load, Routes
from chaos.scenarios import Profile, wait_for
from localcluster import examples
from localcluster.whiskers import APPS, DB_POD, REDIS_POD, Whiskers

NAMESPACE = "shoal-demo"  # the YAML's
APP_TIMEOUT_S = 2.0  # tally's `resources.timeout` in the YAML
Address = tuple[str, int]


@dataclass
class Deployed:
    w: Whiskers
    redis_at: Address
    db_at: Address
    password: str

    def counter(self) -> int:
        return self.w.counter(self.redis_at)

    def rows(self) -> int:
        return self.w.rows(self.db_at, self.password)

    def settled_rows(self, *, quiet: float = 3.0, within: float = 60.0) -> int:
        """Rows once they stopped growing for `quiet` seconds (the scoreboard caught up)."""
        last, since = self.rows(), time.monotonic()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.rows()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last


def deploy(c: Cluster) -> Deployed:
    """Finicky Whiskers deployed and clickable; once per cluster (the soak reuses it)."""
    done: Deployed | None = c.shared.get("whiskers")
    if done is not None:
        return done
    c.dependency_servers()
    pushed = examples.push(c.registry.address, c.wasm, examples.WHISKERS)
    if missing := [g.name for g in examples.WHISKERS if g.name not in pushed]:
        raise RuntimeError(f"not built: {missing} (scoreboard needs Go; see hack/examples/build.sh)")
    w = Whiskers(c.plane, NAMESPACE)
    w.deploy(c.registry.address, c.workdir / "volumes")
    redis_at = w.wait_serving(REDIS_POD)
    db_at = w.wait_serving(DB_POD)
    password = w.password()
    w.create_reader(db_at, password)
    examples.wait_ready(c.plane, NAMESPACE, APPS, timeout=180)
    wait_for(lambda: w.subscribed(redis_at), within=60, what="scoreboard subscribed to clicks", interval=0.5)
    done = Deployed(w, redis_at, db_at, password)
    c.shared["whiskers"] = done
    return done


def click_load(c: Cluster, *, workers: int, interval: float, max_seconds: float) -> tuple[Routes, Load]:
    """Clicks as a browser sends them: GET /tally at tally's routed addresses, no retry."""
    routes = Routes(c.kube, NAMESPACE, "tally").start()
    wait_for(lambda: len(routes.current()) >= 1, within=30, what="tally routed")
    load = Load(routes, "/tally", workers=workers, interval=interval, max_seconds=max_seconds).start()
    return routes, load


def first_ok_after(load: Load, after: float, *, within: float) -> float | None:
    """Seconds from `after` until a request sent after it succeeded; None if none did in time."""

    def found() -> float | None:
        oks = [o.started for o in list(load.outcomes) if o.started >= after and o.ok]
        return min(oks) - after if oks else None

    try:
        return wait_for(found, within=within, what="a successful click", interval=0.1)
    except TimeoutError:
        return None


def server_outage(c: Cluster, pod: str, seconds: float) -> tuple[float, float]:
    """Stop the server of dependency pod `pod` (the pod stays, as when its container is killed) for
    `seconds`, then start it again on the same address and data; (stopped, serving again)."""
    deps = c.dependency_servers()
    down = time.monotonic()
    deps.stop_server(namespace=NAMESPACE, pod=pod)
    time.sleep(seconds)
    deps.start_server(namespace=NAMESPACE, pod=pod)
    return down, time.monotonic()


def seconds_until(check: Callable[[], bool], *, since: float, within: float) -> float | None:
    try:
        wait_for(check, within=within, what="recovery", interval=0.25)
    except TimeoutError:
        return None
    return time.monotonic() - since


def dependencies_down(c: Cluster, profile: Profile) -> Result:
    """Clicks under load; Redis stopped for `outage` seconds and started again, then MariaDB.

    Figures: the clicks sent, accepted (200), counted (Redis counter) and stored (MariaDB rows);
    failures and the slowest answer while each server was down (errors must come within the app's
    timeout: no hang); how long after each restart clicks succeed (Redis) or rows grow (MariaDB)."""
    outage = 4.0 if profile.short else 8.0
    result = Result(
        "dependencies_down",
        goals=[
            Goal("deps_slowest_answer_s", APP_TIMEOUT_S + 1.0),
            Goal("deps_accepted_not_counted", 0),
            Goal("deps_redis_recovered_s", 10.0),
            Goal("deps_db_recovered_s", 30.0),
        ],
    )
    ws = deploy(c)
    count0, rows0 = ws.counter(), ws.rows()
    routes, load = click_load(c, workers=2, interval=0.05, max_seconds=300)
    try:
        time.sleep(3.0)
        redis_down, redis_up = server_outage(c, REDIS_POD, outage)
        result.figures["deps_redis_recovered_s"] = first_ok_after(load, redis_up, within=30)
        result.figures["deps_scoreboard_resubscribed_s"] = seconds_until(
            lambda: ws.w.subscribed(ws.redis_at), since=redis_up, within=60
        )
        time.sleep(2.0)
        db_down, db_up = server_outage(c, DB_POD, outage)
        rows_at_up = ws.rows()
        result.figures["deps_db_recovered_s"] = seconds_until(
            lambda: ws.rows() > rows_at_up, since=db_up, within=60
        )
        time.sleep(2.0)
    finally:
        outcomes = load.stop()
        routes.stop()
    counted = ws.counter() - count0
    stored = ws.settled_rows() - rows0
    accepted = sum(o.ok for o in outcomes)
    f = result.figures
    f["deps_outage_s"] = outage
    f["deps_clicks_sent"] = len(outcomes)
    f["deps_clicks_accepted"] = accepted
    f["deps_clicks_counted"] = counted
    f["deps_clicks_stored"] = stored
    f["deps_clicks_lost"] = accepted - stored
    f["deps_accepted_not_counted"] = max(0, accepted - counted)
    redis_failed = failed(outcomes, start=redis_down, end=redis_up)
    db_failed = failed(outcomes, start=db_down, end=db_up)
    f["deps_redis_down_failed"] = redis_failed
    f["deps_db_down_failed"] = db_failed
    f["deps_failed_outside_outages"] = failed(outcomes) - redis_failed - db_failed
    f["deps_slowest_answer_s"] = max((o.seconds for o in outcomes), default=None)
    f["deps_redis_down_slowest_s"] = max(
        (o.seconds for o in outcomes if redis_down <= o.started <= redis_up), default=None
    )
    if why := causes(outcomes):
        result.notes.append(f"failures: {why}")
    result.notes.append("delivery to the scoreboard is at most once: deps_clicks_lost says how many")
    return result
