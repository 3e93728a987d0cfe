"""A loaded app version: its spec, its handle in the data plane, and the synchronous invoke.

Everything that can be computed once per app (linking, InstancePre, argv/env) is done in the data
plane at load; an invocation there only builds a store and instantiates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shoal_api.egress import AllowedHost

from .outcome import InvocationResult, Outcome

if TYPE_CHECKING:
    import shoal_dataplane

    from .metrics import AppRuntimeMetrics

MiB = 1024 * 1024


@dataclass(frozen=True)
class AppLimits:
    memory_bytes: int = 64 * MiB
    timeout_s: float = 1.0
    max_concurrency: int = 16
    max_wait_s: float = 0.1
    stdout_bytes: int = 1 * MiB
    stderr_bytes: int = 64 * 1024


@dataclass(frozen=True)
class AppSpec:
    namespace: str
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    limits: AppLimits = AppLimits()
    entrypoint: str = "_start"
    allowed_outbound: tuple[AllowedHost, ...] = ()
    """Where a component may send outbound HTTP (parsed `capabilities.allowedOutboundHosts`)."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Spin app variables (`fermyon:spin/variables`), resolved."""
    mounts: tuple[tuple[str, str], ...] = ()
    """(host directory, guest path) pairs every instance sees read-only (`spec.files`)."""
    scratch: tuple[str, int, str] | None = None
    """(guest path, bound in bytes, host root): a fresh writable directory per invocation."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class InvocationRequest:
    stdin: bytes = b""
    env: Sequence[tuple[str, str]] = ()
    args: Sequence[str] | None = None  # replaces the spec's args; argv[0] is always the app name
    max_wait_s: float | None = None
    """How long this invocation may wait for admission; None is the app's short budget (a client is
    waiting, and its deadline counts from now). A queued message can afford to wait longer, and
    then gets the app's whole timeout once it runs."""


class LoadedApp:
    def __init__(
        self,
        spec: AppSpec,
        plane: shoal_dataplane.DataPlane,
        native: shoal_dataplane.App,
        metrics: AppRuntimeMetrics,
        compile_result: str,
    ) -> None:
        self.spec = spec
        self.plane = plane
        self.native = native
        self.metrics = metrics
        self.compile_result = compile_result

    @property
    def kind(self) -> str:
        """ "module", "command" (a wasi:cli/run component) or "proxy" (a wasi:http component)."""
        return str(self.native.kind)

    @property
    def unimplemented(self) -> list[str]:
        """Spin interfaces the component imports that Shoal does not implement: it loads, and a
        call to one of them traps with the interface's name."""
        return list(self.native.unimplemented)

    @property
    def in_flight(self) -> int:
        """Invocations of this version admitted and not yet finished (HTTP ones included)."""
        return int(self.native.in_flight)

    def invoke_sync(self, request: InvocationRequest) -> InvocationResult:
        """Run the entrypoint in a fresh instance (blocks, without the GIL); never raises for guest
        misbehaviour."""
        r = self.plane.invoke(
            self.native,
            stdin=request.stdin,
            env=list(request.env),
            args=None if request.args is None else list(request.args),
            max_wait_s=request.max_wait_s,
        )
        outcome, stdout, stderr, code, message, out_cut, err_cut, inst_s, dur_s, _refusal = r
        return InvocationResult(
            outcome=Outcome(outcome),
            stdout=stdout,
            stderr=stderr,
            exit_code=code,
            message=message,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
            instantiate_seconds=inst_s,
            duration_seconds=dur_s,
        )
