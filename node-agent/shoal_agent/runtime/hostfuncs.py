"""Host functions implemented in Python, and which of them an app's module may link.

Capability imports live in Wasm modules named `shoal:<capability>` (e.g. `shoal:redis`.`get`).
An app may only link the capabilities it declares; anything else fails at load time with an
error naming the import and the capability. The data plane calls `dispatch` for every call of a
linked host function (with the GIL, off the event loop); `dispatch` never lets an exception
escape as anything but the `HostFailure` whose message becomes the guest's trap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .errors import UndeclaredCapabilityError, UnknownImportError
from .invocation import InvocationState, current, set_current

ValKind = Literal["i32", "i64", "f32", "f64"]
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")
CAPABILITY_PREFIX = "shoal:"


class HostTrap(Exception):
    """Raise from a host function to stop the guest with this message."""


class HostFailure(Exception):
    """What `dispatch` raises to the data plane: the guest traps with this message."""


class GuestMemory(Protocol):
    """The data plane's view of a guest's linear memory during one host call."""

    def read(self, ptr: int, length: int) -> bytes: ...

    def write(self, ptr: int, data: bytes) -> None: ...


class HostCall:
    """What a host function sees of its caller: the guest's linear memory and the invocation."""

    __slots__ = ("_memory", "_state")

    def __init__(self, memory: GuestMemory, state: InvocationState | None = None) -> None:
        self._memory = memory
        self._state = state

    def read(self, ptr: int, length: int) -> bytes:
        try:
            return self._memory.read(ptr, length)
        except IndexError as e:  # a guest bug: trap, never an error code
            raise HostTrap(str(e)) from None

    def write(self, ptr: int, data: bytes) -> None:
        try:
            self._memory.write(ptr, data)
        except IndexError as e:
            raise HostTrap(str(e)) from None

    @property
    def invocation(self) -> InvocationState | None:
        return self._state if self._state is not None else current()


HostImpl = Callable[..., Any]


@dataclass(frozen=True)
class HostFunction:
    """One import a capability provides: `impl(call: HostCall, *args)` returns None, a value or a tuple."""

    capability: str
    name: str
    params: tuple[ValKind, ...]
    results: tuple[ValKind, ...]
    impl: HostImpl
    module: str = ""

    @property
    def import_module(self) -> str:
        return self.module or CAPABILITY_PREFIX + self.capability

    @property
    def label(self) -> str:
        return f"{self.import_module}.{self.name}"


# What the data plane links: (module, name, params, results, index into the registry).
LinkedFunction = tuple[str, str, list[str], list[str], int]


@dataclass
class HostFunctionRegistry:
    """Host functions by (module, name); capability plug-ins register here at agent start."""

    _functions: dict[tuple[str, str], HostFunction] = field(default_factory=dict)
    _by_index: list[HostFunction] = field(default_factory=list)
    spin_backend: Callable[[str, str, str, tuple[Any, ...]], Any] | None = None
    """Serves components' Spin stores (`fermyon:spin/key-value`): `(namespace, app, op, args)`."""

    def register(self, fn: HostFunction) -> None:
        key = (fn.import_module, fn.name)
        if key in self._functions:
            raise ValueError(f"host function {key[0]}.{key[1]} is already registered")
        self._functions[key] = fn
        self._by_index.append(fn)

    def register_all(self, fns: Iterable[HostFunction]) -> None:
        for fn in fns:
            self.register(fn)

    def capabilities(self) -> set[str]:
        return {fn.capability for fn in self._functions.values()}

    def plan(self, imports: Sequence[tuple[str, str]], declared: frozenset[str]) -> list[LinkedFunction]:
        """The host functions `imports` need (WASI aside), or a LoadError naming what is not allowed."""
        linked: dict[tuple[str, str], LinkedFunction] = {}
        for mod, name in imports:
            if mod in WASI_MODULES or (mod, name) in linked:
                continue
            fn = self._functions.get((mod, name))
            capability = fn.capability if fn else self._capability_of_module(mod)
            if capability is None:
                raise UnknownImportError(mod, name)
            if capability not in declared:
                raise UndeclaredCapabilityError(mod, name, capability)
            if fn is None:
                raise UnknownImportError(mod, name)
            linked[(mod, name)] = (mod, name, list(fn.params), list(fn.results), self._by_index.index(fn))
        return list(linked.values())

    def _capability_of_module(self, module: str) -> str | None:
        for fn in self._functions.values():
            if fn.import_module == module:
                return fn.capability
        if module.startswith(CAPABILITY_PREFIX):
            return module[len(CAPABILITY_PREFIX) :]
        return None

    def dispatch(
        self, state: InvocationState | None, index: int, memory: GuestMemory, args: tuple[Any, ...]
    ) -> Any:
        """Run host function `index` for the data plane, with `state` current."""
        fn = self._by_index[index]
        set_current(state)
        try:
            return fn.impl(HostCall(memory, state), *args)
        except BaseException as e:  # must not unwind into the data plane as anything else
            message = f"host function {fn.label} failed: {e}"
            if state is not None:
                state.host_failure = message
            raise HostFailure(message) from None
        finally:
            set_current(None)

    @staticmethod
    def new_state(namespace: str, app: str) -> InvocationState:
        return InvocationState(app=(namespace, app))
