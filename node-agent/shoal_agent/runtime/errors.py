"""Errors raised while loading an app; invocation failures are results, not exceptions."""

from __future__ import annotations


class LoadError(Exception):
    """An app could not be made ready to serve."""


class NotWasmError(LoadError):
    """The artifact is not a WebAssembly core module."""


class InvalidWasmError(LoadError):
    """The artifact looks like Wasm but wasmtime rejected it."""


class UnsupportedComponentError(InvalidWasmError):
    """A valid component this data plane cannot run: a WASI preview 3 one (Spin SDK 4+)."""

    PREFIX = "WASI preview 3"
    """How the data plane's refusal of such a component begins (dataplane/src/preview3.rs)."""


class DigestMismatchError(LoadError):
    """The bytes do not hash to the digest they were published under."""


class ImportError_(LoadError):
    """Base of the link failures: the module imports something this app may not have."""

    def __init__(self, module: str, name: str, message: str) -> None:
        super().__init__(message)
        self.module = module
        self.name = name


class UndeclaredCapabilityError(ImportError_):
    """The module imports a host function whose capability the app did not declare."""

    def __init__(self, module: str, name: str, capability: str) -> None:
        super().__init__(
            module,
            name,
            f"module imports {module}.{name}, provided by capability {capability!r}, "
            f"which the app does not declare",
        )
        self.capability = capability


class UnknownImportError(ImportError_):
    """The module imports something no WASI version or capability provides."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(module, name, f"module imports {module}.{name}, which no capability provides")
