"""A bounded load generator that routes the way a Service client does: to the ready addresses of
the app's EndpointSlices, read every `ROUTE_POLL_SECONDS` (a kube-proxy stand-in), round robin.

Every loop here ends on a count and a deadline, whatever happens. A request is sent once: no retry,
because the figures count what a client without retries would see. Only the addresses this process
reaches are used (the test network and loopback).
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field

from chaos.figures import Address, Outcome, RouteSample
from harness.kubehttp import KubeHttp
from harness.netcluster import slice_addresses

ROUTE_POLL_SECONDS = 0.1
REQUEST_TIMEOUT_SECONDS = 3.0


def ready_addresses(kube: KubeHttp, namespace: str, service: str) -> frozenset[Address]:
    return frozenset(slice_addresses(kube, namespace, service))


def get(
    address: Address, path: str, *, host: str | None = None, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> tuple[int, str]:
    """(status, error): one GET on a fresh connection, status 0 when it failed below HTTP. `host` is
    the Host header a client calling the Service by name sends (`<app>.<namespace>.svc`): apps in
    different namespaces may share a path on an agent, their Service names never collide."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        response.read()
        return response.status, ""
    except (OSError, http.client.HTTPException) as e:
        return 0, type(e).__name__
    finally:
        conn.close()


def get_text(address: Address, path: str, *, host: str | None = None, timeout: float = 5.0) -> str:
    """The body of a 200 answer, or "" (a scrape of a process that may be down)."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        body = response.read()
        return body.decode(errors="replace") if response.status == 200 else ""
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        conn.close()


@dataclass
class Routes:
    """Follows one app's ready addresses in a thread; every change is kept as a RouteSample."""

    kube: KubeHttp
    namespace: str
    service: str
    max_seconds: float = 900.0
    samples: list[RouteSample] = field(default_factory=list)
    poll_errors: int = 0
    _current: tuple[Address, ...] = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Routes:
        self._poll()
        self._thread = threading.Thread(target=self._run, name=f"routes-{self.service}", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        try:
            found = ready_addresses(self.kube, self.namespace, self.service)
        except Exception:  # the apiserver may be down on purpose: keep the last routes, as kube-proxy does
            self.poll_errors += 1
            return
        with self._lock:  # every poll is kept (10 a second, a few thousand in a soak)
            self.samples.append(RouteSample(time.monotonic(), found))
            self._current = tuple(sorted(found))

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._poll()
            self._stop.wait(ROUTE_POLL_SECONDS)

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.svc"

    def current(self) -> tuple[Address, ...]:
        with self._lock:
            return self._current

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class Load:
    """`workers` threads, each sending a GET every `interval` seconds to the next routed address,
    until stopped, `max_requests` were sent, or `max_seconds` passed."""

    routes: Routes
    path: str
    workers: int = 2
    interval: float = 0.02
    max_requests: int = 100_000
    max_seconds: float = 900.0
    outcomes: list[Outcome] = field(default_factory=list)
    no_route: int = 0
    """Sends skipped because no address was routed (counted, not failed: no client could send)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(deadline,), name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            n = next(self._counter)
            if n >= self.max_requests:
                return
            routed = self.routes.current()
            if not routed:
                with self._lock:
                    self.no_route += 1
                self._stop.wait(self.interval)
                continue
            address = routed[n % len(routed)]
            started = time.monotonic()
            status, error = get(address, self.path, host=self.routes.host)
            outcome = Outcome(started, address, status, time.monotonic() - started, error)
            with self._lock:
                self.outcomes.append(outcome)
            self._stop.wait(self.interval)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=REQUEST_TIMEOUT_SECONDS + 2)
        with self._lock:
            return list(self.outcomes)
