"""`shoal`: the developer CLI. Package a Wasm module as an OCI artifact, and scaffold a WasmApp for it."""
