"""Finicky Whiskers end to end: real operator, agents, registry, wasmtime, Redis and MariaDB.

How the three apps share one Redis and one database — what a user would write:
* `tally` (HTTP) declares the Redis (`cache`); the operator provisions it as Service `tally-cache`.
* `scoreboard` (pub/sub on `cache`/`clicks`) reaches that Redis by `serviceRef: tally-cache`, and
  declares the database (`db`, `retain: true`): the operator provisions `scoreboard-db` and
  generates Secret `scoreboard-db` (password of MariaDB's root and of user `scoreboard`).
* `leaderboard` (HTTP) reaches the database by `serviceRef: scoreboard-db` with `passwordSecret`
  of that Secret. A referenced server has its own users, and the agent connects as the app's name,
  so the database owner creates user `leaderboard` (read-only here) with that password, as a DBA
  would with `kubectl exec scoreboard-db-0 -- mariadb ...`; the test does it over the pod IP.
Pub/sub channels are namespace-wide, so tally's `clicks` is scoreboard's `clicks`.

Traffic goes to the addresses in the apps' EndpointSlices; Redis and MariaDB are checked at the
pod IPs the cluster gave their pods (hack/harness via localcluster.depservers).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]
import pytest
import redis

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import (
    apply_app,
    condition,
    eventually,
    http_get,
    is_ready,
    pod_of,
    slice_addresses,
)
from harness.operatorproc import OperatorProcess
from localcluster.depservers import DependencyServers
from localcluster.testnet import TestNet
from localcluster.whiskers import count_click_rows, static_volume
from shoal_api import GROUP, VERSION

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLICKS = 20
APP_TIMEOUT_S = 2.0
# A dependency pod waits on the PV controller and kube-scheduler (claim bound, then pod bound)
# and kwok; on a loaded 2-core machine that once took 91 s. On timeout the error says where the
# pod was stuck (depservers.describe_pod).
POD_WAIT_S = 180.0
APPS = f"/apis/{GROUP}/{VERSION}"


class Whiskers:
    """The deployed demo in one namespace, and what the tests read from it."""

    def __init__(self, kube: KubeHttp, namespace: str, servers: DependencyServers, images: dict[str, str]):
        self.kube = kube
        self.ns = namespace
        self.servers = servers
        self.images = images
        self.clicks_seen = 0

    def redis_ip(self) -> str:
        return self.servers.wait_serving(namespace=self.ns, pod="tally-cache-0", timeout=POD_WAIT_S).ip

    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.redis_ip(), port=6379, socket_timeout=2)

    def secret(self, name: str, key: str) -> str:
        data = self.kube.get(f"/api/v1/namespaces/{self.ns}/secrets/{name}")["data"]
        return base64.b64decode(data[key]).decode()

    def db(self, user: str = "scoreboard", password: str | None = None) -> Any:
        server = self.servers.wait_serving(namespace=self.ns, pod="scoreboard-db-0", timeout=POD_WAIT_S)
        return pymysql.connect(
            host=server.ip,
            port=server.port,
            user=user,
            password=password if password is not None else self.secret("scoreboard-db", "password"),
            database="whiskers",
            autocommit=True,
            connect_timeout=3,
        )

    def rows(self) -> int:
        try:
            conn = self.db()
        except pymysql.err.MySQLError:
            return -1
        return count_click_rows(conn)

    def count(self) -> int:
        value: Any = self.redis().get(f"{self.ns}/tally:count")
        return int(value or 0)

    def addresses(self, app: str) -> list[tuple[str, int]]:
        return eventually(lambda: slice_addresses(self.kube, self.ns, app), what=f"{app}'s slice addresses")

    def click(self, i: int = 0) -> tuple[int, str]:
        addresses = self.addresses("tally")
        return http_get(addresses[i % len(addresses)], "/tally", timeout=10)

    def scoreboard_spec(self, placement: dict[str, Any]) -> dict[str, Any]:
        return {
            "module": {"image": self.images["scoreboard"]},
            "trigger": {"redis": {"dependency": "cache", "channel": "clicks"}},
            "resources": {"memory": "128Mi", "timeout": "5s"},
            "dependencies": [
                {"name": "cache", "redis": {}, "serviceRef": {"name": "tally-cache", "port": 6379}},
                {"name": "db", "mysql": {"database": "whiskers", "storage": "1Gi"}, "retain": True},
            ],
            "placement": placement,
        }


@pytest.fixture(scope="module")
def namespace(net_kube: KubeHttp) -> Iterator[str]:
    name = f"whiskers-{uuid.uuid4().hex[:6]}"
    net_kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        net_kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def volumes(net_kube: KubeHttp, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Static PVs pre-bound (claimRef) to the two dependency claims: hostPath in our temp dir,
    which is the data directory the dependency servers use, as a kubelet would mount it."""
    root = tmp_path_factory.mktemp("volumes")
    names = []
    for claim in ("data-tally-cache-0", "data-scoreboard-db-0"):
        name = f"{namespace}-{claim}"
        names.append(name)
        pv = static_volume(name, namespace, claim, str(root / claim))
        net_kube.request("POST", "/api/v1/persistentvolumes", pv)
    try:
        yield root
    finally:
        for name in names:
            net_kube.delete(f"/api/v1/persistentvolumes/{name}")


@pytest.fixture(scope="module")
def whiskers(
    net_kube: KubeHttp,
    namespace: str,
    volumes: Path,
    testnet: TestNet,
    dependency_servers: DependencyServers,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    example_images: dict[str, str],
) -> Whiskers:
    w = Whiskers(net_kube, namespace, dependency_servers, example_images)
    placement = {"nodeSelector": {NET_LABEL: testnet.name}}
    apply_app(net_kube, namespace, "tally", {
        "module": {"image": example_images["tally"]},
        "replicas": 2,
        "trigger": {"http": {"path": "/tally"}},
        "resources": {"timeout": f"{APP_TIMEOUT_S:.0f}s"},
        "dependencies": [{"name": "cache", "redis": {}}],
        "placement": placement,
    })  # fmt: skip
    apply_app(net_kube, namespace, "scoreboard", w.scoreboard_spec(placement))
    eventually(
        lambda: net_kube.exists(f"/api/v1/namespaces/{namespace}/secrets/scoreboard-db"),
        what="the generated Secret scoreboard-db",
    )
    # The database owner lets the leaderboard read, with the Secret's password (see the docstring).
    password = w.secret("scoreboard-db", "password")
    conn = eventually(lambda: _try_connect(w, "root", password), within=120, what="MariaDB as root")
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'leaderboard'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute("GRANT SELECT ON whiskers.* TO 'leaderboard'@'%'")
    conn.close()
    apply_app(net_kube, namespace, "leaderboard", {
        "module": {"image": example_images["leaderboard"]},
        "trigger": {"http": {"path": "/leaderboard"}},
        "resources": {"timeout": f"{APP_TIMEOUT_S:.0f}s"},
        "dependencies": [{
            "name": "db",
            "mysql": {"database": "whiskers", "passwordSecret": {"name": "scoreboard-db", "key": "password"}},
            "serviceRef": {"name": "scoreboard-db", "port": 3306},
        }],
        "placement": placement,
    })  # fmt: skip
    for app in ("tally", "scoreboard", "leaderboard"):
        eventually(partial(is_ready, net_kube, namespace, app), within=90, what=f"{app} Ready")
    w.redis_ip()
    return w


def _try_connect(w: Whiskers, user: str, password: str) -> Any:
    try:
        return w.db(user, password)
    except pymysql.err.MySQLError:
        return None


def subscribed(w: Whiskers) -> bool:
    numsub: Any = w.redis().pubsub_numsub(f"{w.ns}/clicks")
    return bool(numsub and numsub[0][1] >= 1)


def leaderboard(w: Whiskers) -> list[Any]:
    status, body = http_get(w.addresses("leaderboard")[0], "/leaderboard?limit=1000")
    assert status == 200, body
    rows: list[Any] = json.loads(body)
    return rows


def test_clicks_count_in_redis_and_land_in_mysql(whiskers: Whiskers) -> None:
    w = whiskers
    eventually(lambda: subscribed(w), within=30, what="scoreboard subscribed to clicks")
    assert len(w.addresses("tally")) == 2
    counts = []
    for i in range(CLICKS):
        status, body = w.click(i)
        assert status == 200, body
        counts.append(json.loads(body)["count"])
    assert sorted(counts) == list(range(1, CLICKS + 1))
    assert w.count() == CLICKS
    eventually(lambda: w.rows() == CLICKS, within=30, what=f"{CLICKS} rows in clicks")
    board = leaderboard(w)
    assert len(board) == CLICKS, board
    w.clicks_seen = CLICKS


def test_module_importing_sql_without_a_mysql_dependency_is_refused(
    whiskers: Whiskers, net_kube: KubeHttp, testnet: TestNet
) -> None:
    ns = whiskers.ns
    apply_app(net_kube, ns, "mixed", {
        "module": {"image": whiskers.images["redis-and-sql"]},
        "trigger": {"http": {"path": "/mixed"}},
        "dependencies": [{"name": "cache", "redis": {}, "serviceRef": {"name": "tally-cache", "port": 6379}}],
        "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
    })  # fmt: skip

    def degraded() -> dict[str, Any] | None:
        cond = condition(net_kube, ns, "mixed", "Degraded")
        return cond if cond and cond["status"] == "True" and "sql" in cond["message"] else None

    cond = eventually(degraded, within=60, what="mixed Degraded naming the sql capability")
    assert cond is not None and cond["reason"] == "PlacementFailed", cond
    placements = net_kube.get(f"{APPS}/namespaces/{ns}/wasmplacements?labelSelector=shoal.dev%2Fapp%3Dmixed")
    status = placements["items"][0]["status"]
    assert status["state"] == "Failed" and "'sql'" in status["message"], status
    net_kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/mixed")


def test_redis_outage_fails_fast_and_recovers(
    whiskers: Whiskers, net_agents: dict[str, AgentProcess]
) -> None:
    w = whiskers
    results: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        i = worker
        while not stop.is_set():
            start = time.monotonic()
            status, body = w.click(i)
            results.append((time.monotonic() - start, status, body))
            i += 1

    threads = [threading.Thread(target=traffic, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        w.servers.stop_server(namespace=w.ns, pod="tally-cache-0")
        time.sleep(2.0)
        failed = [r for r in results if r[1] != 200]
        assert all(a.healthy() for a in net_agents.values())
        w.servers.start_server(namespace=w.ns, pod="tally-cache-0")
        mark = len(results)
        eventually(lambda: any(r[1] == 200 for r in results[mark:]), within=15, what="tally to recover")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failed, "stopping Redis should have failed some requests"
    assert all(status == 503 and "redis error" in body for _, status, body in failed), failed[:3]
    slowest = max(duration for duration, _, _ in results)
    assert slowest < APP_TIMEOUT_S + 1, f"a request took {slowest:.2f}s"
    # AOF kept the counter; the scoreboard resubscribes and stores new clicks again.
    assert w.count() >= CLICKS
    eventually(lambda: subscribed(w), within=30, what="scoreboard resubscribed")
    before = w.rows()
    status, _ = w.click()
    assert status == 200
    eventually(lambda: w.rows() > before, within=30, what="a click after the outage stored")


def test_retained_database_survives_deleting_its_app(
    whiskers: Whiskers, net_kube: KubeHttp, testnet: TestNet
) -> None:
    w, ns = whiskers, whiskers.ns
    rows = w.rows()
    assert rows >= CLICKS
    net_kube.request(
        "DELETE", f"{APPS}/namespaces/{ns}/wasmapps/scoreboard", {"propagationPolicy": "Foreground"}
    )
    eventually(
        lambda: (
            not net_kube.exists(f"{APPS}/namespaces/{ns}/wasmapps/scoreboard")
            and not net_kube.exists(f"/apis/apps/v1/namespaces/{ns}/statefulsets/scoreboard-db")
            and (ns, "scoreboard-db-0") not in w.servers.servers
        ),
        within=60,
        what="scoreboard, scoreboard-db and its server gone",
    )
    claim = net_kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-scoreboard-db-0")
    assert claim["status"]["phase"] == "Bound"
    # The same app again: a new pod on the retained claim, same data, same Secret.
    apply_app(net_kube, ns, "scoreboard", w.scoreboard_spec({"nodeSelector": {NET_LABEL: testnet.name}}))
    eventually(lambda: pod_of(net_kube, ns, "shoal.dev/dependency=db"), within=60, what="a new db pod")
    eventually(lambda: w.rows() == rows, within=90, what=f"the {rows} rows back")
    # The leaderboard's agent re-resolves the Service's slices to the new pod by itself.
    eventually(lambda: _board_rows(w) == rows, within=30, what="the leaderboard serving the kept rows")


def _board_rows(w: Whiskers) -> int:
    status, body = http_get(w.addresses("leaderboard")[0], "/leaderboard?limit=1000")
    return len(json.loads(body)) if status == 200 else -1
