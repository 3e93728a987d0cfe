"""WAT guests of the cold-start benchmark; `shoal_dataplane.wat2wasm` turns them into Wasm."""

from __future__ import annotations

WASM_PAGE = 64 * 1024
OS_PAGE = 4096


def hello_wat(i: int) -> str:
    """A distinct tiny WAGI hello per `i` (one data segment, one fd_write)."""
    text = f"Content-Type: text/plain\\n\\nHello from app {i:05d}\\n"
    length = len(text.replace("\\n", "\n"))
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def hog_wat(memory_bytes: int) -> str:
    """The noisy neighbour: grow linear memory to one Wasm page under `memory_bytes`, store to every
    OS page of it (so it is resident, not just reserved), then spin until the deadline traps it.

    No imports and no output: all it does is hold memory and CPU for as long as it is allowed to.
    A failed grow traps (`unreachable`) so a too-tight limit shows up as 500s, not as a quiet guest.
    """
    pages = memory_bytes // WASM_PAGE - 1
    if pages < 1:
        raise ValueError(f"memory limit {memory_bytes} leaves no room to grow")
    return f"""(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $addr i32)
    (local $end i32)
    (if (i32.eq (memory.grow (i32.const {pages - 1})) (i32.const -1)) (then unreachable))
    (local.set $end (i32.mul (memory.size) (i32.const {WASM_PAGE})))
    (block $touched
      (loop $touch
        (br_if $touched (i32.ge_u (local.get $addr) (local.get $end)))
        (i32.store8 (local.get $addr) (i32.const 1))
        (local.set $addr (i32.add (local.get $addr) (i32.const {OS_PAGE})))
        (br $touch)))
    (loop $spin (br $spin))))
"""
