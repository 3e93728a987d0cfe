"""Debian's Prometheus on 127.0.0.1:<free port>, scraping static targets; never the system service.

Each instance gets a generated config, its own TSDB folder and log under `workdir`, and is stopped by
PID. Targets carry the labels the chart's ServiceMonitors would set (`job=shoal-operator|shoal-agent`,
`node`), so the dashboards' and alerts' PromQL runs unchanged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import Proc, free_port, spawn, stop, wait_until

PROMETHEUS_BINARY = "/usr/bin/prometheus"


@dataclass(frozen=True)
class Target:
    """One scrape target: `host:port` (path /metrics) and its labels (job, node, ...)."""

    address: str
    labels: Mapping[str, str]


class PromQLError(RuntimeError):
    pass


@dataclass
class Prometheus:
    workdir: Path
    targets: Sequence[Target]
    scrape_interval: str = "1s"
    binary: str = PROMETHEUS_BINARY
    port: int = 0
    proc: Proc | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        jobs: dict[str, list[dict[str, Any]]] = {}
        for t in self.targets:
            job = t.labels.get("job", "shoal")
            labels = {k: v for k, v in t.labels.items() if k != "job"}
            jobs.setdefault(job, []).append({"targets": [t.address], "labels": labels})
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                # honor_labels: agent series carry the app's `namespace`, as the chart's ServiceMonitor keeps.
                {"job_name": job, "honor_labels": True, "static_configs": groups}
                for job, groups in sorted(jobs.items())
            ],
        }

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = self.port or free_port()
        self.proc = spawn(
            "prometheus",
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            log_dir=self.workdir,
        )
        wait_until(self.ready, what=f"prometheus {self.url}/-/ready", timeout=60, proc=self.proc)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def _api(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the result vector (`[{"metric": {...}, "value": [t, "v"]}, ...]`)."""
        data = self._api("query", {"query": expr})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> dict[str, bool]:
        """scrapeUrl -> whether its last scrape succeeded."""
        data = self._api("targets", {"state": "active"})
        return {t["scrapeUrl"]: t["health"] == "up" for t in data["activeTargets"]}

    def wait_for_scrapes(self, timeout: float = 60) -> None:
        """Until every target has been scraped successfully at least once."""

        def all_up() -> bool:
            try:
                up = self.targets_up()
            except (PromQLError, urllib.error.URLError, OSError):
                return False
            return len(up) == len(self.targets) and all(up.values())

        wait_until(all_up, what="every target scraped", timeout=timeout, proc=self.proc, interval=0.5)
