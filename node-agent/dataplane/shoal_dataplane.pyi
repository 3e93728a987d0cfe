"""Type stubs of the native data plane (node-agent/dataplane/src/python.rs)."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

def wasmtime_version() -> str: ...
def wat2wasm(text: str) -> bytes: ...

class GuestMemory:
    def read(self, ptr: int, length: int) -> bytes: ...
    def write(self, ptr: int, data: bytes) -> None: ...

class Compiled:
    digest: str
    result: str
    seconds: float
    @property
    def imports(self) -> list[tuple[str, str]]: ...
    @property
    def kind(self) -> str: ...

class App:
    @property
    def in_flight(self) -> int: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def unimplemented(self) -> list[str]: ...

InvokeResult = tuple[str, bytes, bytes, int | None, str, bool, bool, float, float, str | None]
MetricsRow = tuple[
    str, str, Mapping[str, tuple[Sequence[int], float]], Mapping[str, int], Mapping[str, int], int, int
]

class DataPlane:
    memory_budget: int
    memory_in_use: int
    def __init__(
        self,
        *,
        cache_dir: str | None,
        memory_budget: int,
        buckets: Sequence[float],
        memory_buckets: Sequence[float],
        guest_threads: int = ...,
        tick_ms: float = ...,
        keep_resident_bytes: int = ...,
        max_instances: int = ...,
        max_memory_bytes: int = ...,
        app_memory_share: float = ...,
        demote_after_ms: float = ...,
    ) -> None: ...
    def set_host(self, dispatch: Callable[..., Any], new_state: Callable[[str, str], Any]) -> None: ...
    def compile(self, wasm: bytes, digest: str | None = None) -> Compiled: ...
    def forget(self, digest: str) -> None: ...
    def load(
        self,
        compiled: Compiled,
        *,
        namespace: str,
        name: str,
        args: Sequence[str],
        env: Sequence[tuple[str, str]],
        entrypoint: str,
        memory_bytes: int,
        timeout_s: float,
        max_concurrency: int,
        max_wait_s: float,
        stdout_bytes: int,
        stderr_bytes: int,
        host_functions: Sequence[tuple[str, str, Sequence[str], Sequence[str], int]],
        allowed_outbound: Sequence[tuple[str, str, str]] = (),
        variables: Sequence[tuple[str, str]] = (),
        mounts: Sequence[tuple[str, str]] = (),
        scratch: tuple[str, int, str] | None = None,
    ) -> App: ...
    def set_spin_backend(self, backend: Callable[[str, str, str, tuple[Any, ...]], Any]) -> None: ...
    def invoke(
        self,
        app: App,
        stdin: bytes = b"",
        env: Sequence[tuple[str, str]] = ...,
        args: Sequence[str] | None = None,
        max_wait_s: float | None = None,
    ) -> InvokeResult: ...
    def set_routes(
        self, routes: Sequence[tuple[str, str | None, Any, Sequence[tuple[str, str]], int]]
    ) -> None: ...
    def listen(self, host: str, port: int) -> int: ...
    def stop_listening(self) -> None: ...
    def set_draining(self, draining: bool) -> None: ...
    def interrupt(self) -> None: ...
    def metrics(self) -> list[MetricsRow]: ...
    def close(self) -> None: ...
