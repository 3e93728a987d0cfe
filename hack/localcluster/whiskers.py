"""Finicky Whiskers in `make demo`: examples/finicky-whiskers.yaml deployed, clicked and checked.

Every click is an HTTP request to an address of tally's EndpointSlices, answered by a fresh Wasm
instance that increments a counter in Redis and publishes the click; scoreboard (pub/sub trigger)
stores each one as a row in MariaDB, which leaderboard serves. Redis and MariaDB are the operator's
dependency StatefulSets, served for real at their pod IPs by `python -m localcluster.depservers`.
What a user or an admin would do by hand is done here the same way and said so: hostPath
PersistentVolumes for the two claims (no StorageClass here), and the read-only database user.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pymysql  # type: ignore[import-untyped, unused-ignore]
import redis

from . import examples
from .controlplane import ControlPlane
from .dbservers import sql_string
from .processes import Proc, log_tail

T = TypeVar("T")

YAML = examples.EXAMPLES_DIR / "finicky-whiskers.yaml"
APPS = ("tally", "scoreboard", "leaderboard")
REDIS_POD, DB_POD = "tally-cache-0", "scoreboard-db-0"
CLAIMS = ("data-tally-cache-0", "data-scoreboard-db-0")
SECRET, DATABASE, READER = "scoreboard-db", "whiskers", "leaderboard"
MARIADB_CLIENT = "/usr/bin/mariadb"


class WhiskersError(RuntimeError):
    """A step of the Finicky Whiskers demo failed; the message says which and why."""


def progress(message: str) -> None:
    print(f"    {message}", flush=True)


def poll(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    proc: Proc | None = None,
    every: float = 10.0,
) -> T:
    """`check()` until it returns a value, with a progress line every `every` seconds."""
    start = time.monotonic()
    shown = start
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        now = time.monotonic()
        if proc is not None and not proc.alive():
            raise WhiskersError(f"{proc.name} exited while waiting for {what}; log tail:\n{log_tail(proc)}")
        if now - start > timeout:
            tail = f"\n{proc.name} log tail:\n{log_tail(proc)}" if proc else ""
            raise WhiskersError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        if now - shown >= every:
            progress(f"... still waiting for {what} ({now - start:.0f}s)")
            shown = now
        time.sleep(0.5)


def accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def http_get(
    address: tuple[str, int], path: str, *, timeout: float = 10, host: str | None = None
) -> tuple[int, str]:
    """(status, body); status 0 when the connection itself failed. `host`: the Host header (an
    agent routes `<app>.<namespace>` to that app whatever the path)."""
    url = f"http://{address[0]}:{address[1]}{path}"
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def static_volume(name: str, namespace: str, claim: str, host_path: str) -> dict[str, Any]:
    """A hostPath PV with no class, pre-bound (claimRef) to one claim, as an admin without a provisioner
    would make it; pre-binding keeps claims of other namespaces from taking it."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": host_path},
        },
    }


def count_click_rows(conn: Any) -> int:
    """Rows in scoreboard's `clicks` table, 0 before scoreboard created it; closes `conn` either way."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM clicks")
            return int(cur.fetchone()[0])
    except pymysql.err.ProgrammingError:
        return 0
    finally:
        conn.close()


@dataclass
class Whiskers:
    """The three apps in `namespace` of `plane`, and what the demo reads back from them."""

    plane: ControlPlane
    namespace: str
    controller: Proc | None = None  # the dependency-servers process: its log tail explains failures

    # --- deploying ----------------------------------------------------------------------------------

    def volumes(self, root: Path) -> list[dict[str, Any]]:
        """hostPath PVs pre-bound to the dependency claims, as an admin without a provisioner would."""
        ns = self.namespace
        return [static_volume(f"{ns}-{claim}", ns, claim, str(root / claim)) for claim in CLAIMS]

    def deploy(self, registry: str, volume_root: Path) -> None:
        docs = examples.manifests(YAML, registry)
        examples.apply(self.plane, [*self.volumes(volume_root), *docs])

    # --- dependencies -------------------------------------------------------------------------------

    def pod_address(self, pod: str) -> tuple[str, int] | None:
        """podIP:containerPort of a Running pod, once something accepts connections there."""
        try:
            obj = self.plane.get_json(f"/api/v1/namespaces/{self.namespace}/pods/{pod}")
        except urllib.error.HTTPError:
            return None
        status = obj.get("status") or {}
        if (
            status.get("phase") != "Running"
            or not status.get("podIP")
            or obj["metadata"].get("deletionTimestamp")
        ):
            return None
        port = int(obj["spec"]["containers"][0]["ports"][0]["containerPort"])
        address = (str(status["podIP"]), port)
        return address if accepts(address) else None

    def wait_serving(self, pod: str, *, timeout: float = 180) -> tuple[str, int]:
        return poll(
            lambda: self.pod_address(pod),
            what=f"pod {pod} Running with a server at its pod IP",
            timeout=timeout,
            proc=self.controller,
        )

    def secret(self, key: str = "password") -> str | None:
        try:
            data = self.plane.get_json(f"/api/v1/namespaces/{self.namespace}/secrets/{SECRET}")["data"]
        except urllib.error.HTTPError:
            return None
        return base64.b64decode(data[key]).decode()

    def password(self) -> str:
        return poll(self.secret, what=f"the generated Secret {SECRET}", timeout=60)

    def create_reader(self, db: tuple[str, int], password: str) -> str:
        """The DBA step: user `leaderboard`, read-only on the database, with the Secret's password.
        Returns the SQL run (password elided)."""
        sql = (
            f"CREATE USER IF NOT EXISTS '{READER}'@'%' IDENTIFIED BY {{password}}; "
            f"GRANT SELECT ON {DATABASE}.* TO '{READER}'@'%'"
        )
        argv = [MARIADB_CLIENT, f"--host={db[0]}", f"--port={db[1]}", "--user=root", "-e"]
        env = {"MYSQL_PWD": password, "PATH": "/usr/bin:/bin"}

        errors: list[str] = []

        def run() -> bool:
            done = subprocess.run(
                [*argv, sql.format(password=sql_string(password))],
                env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if done.returncode != 0:
                errors.append(done.stderr.strip())
            return done.returncode == 0

        try:
            poll(run, what="MariaDB to accept root with the Secret's password", timeout=60)
        except WhiskersError as e:
            raise WhiskersError(f"{e}; last error: {errors[-1] if errors else '-'}") from None
        return sql.format(password=f"<password of Secret {SECRET}>")

    # --- apps ---------------------------------------------------------------------------------------

    def slice_addresses(self, service: str) -> list[tuple[str, int]] | None:
        """Ready addresses of the Service's EndpointSlices, as any client would read them."""
        selector = urllib.parse.quote(f"kubernetes.io/service-name={service}")
        listing = self.plane.get_json(
            f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices?labelSelector={selector}"
        )
        out = [
            (address, int(port["port"]))
            for s in listing["items"]
            for port in s.get("ports") or []
            for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready", True)
            for address in ep["addresses"]
        ]
        return sorted(out) or None

    def redis(self, address: tuple[str, int]) -> redis.Redis:
        return redis.Redis(host=address[0], port=address[1], socket_timeout=3)

    def subscribed(self, address: tuple[str, int]) -> bool:
        numsub: Any = self.redis(address).pubsub_numsub(f"{self.namespace}/clicks")
        return bool(numsub and numsub[0][1] >= 1)

    def counter(self, address: tuple[str, int]) -> int:
        value: Any = self.redis(address).get(f"{self.namespace}/tally:count")
        return int(value or 0)

    def rows(self, db: tuple[str, int], password: str) -> int:
        """Rows in `clicks` (0 before scoreboard created the table), as its owner `scoreboard`."""
        conn = pymysql.connect(
            host=db[0], port=db[1], user="scoreboard", password=password, database=DATABASE,
            connect_timeout=3, autocommit=True,
        )  # fmt: skip
        return count_click_rows(conn)

    def click(self, addresses: list[tuple[str, int]], n: int, *, workers: int = 8) -> list[tuple[int, str]]:
        """`n` GET /tally spread over `addresses`, `workers` at a time; (status, body) each."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda i: http_get(addresses[i % len(addresses)], "/tally"), range(n)))

    def leaderboard(self, address: tuple[str, int]) -> list[dict[str, Any]]:
        """GET /leaderboard?limit=1000 at `address` (one of its EndpointSlice addresses)."""
        status, body = http_get(address, "/leaderboard?limit=1000")
        if status != 200:
            raise WhiskersError(f"GET /leaderboard at {address[0]}:{address[1]}: {status} {body.strip()}")
        board: list[dict[str, Any]] = json.loads(body)
        return board
