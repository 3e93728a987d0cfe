;; A stand-in for what Spin SDK 4+ emits: a component whose world is WASI 0.3's (it imports
;; wasi:http/types@0.3.0 and exports wasi:http/handler@0.3.0) and that uses a `stream` type, which
;; wasmtime 48 without component-model-async fails to compile ("`stream` requires the component
;; model async feature"). Shoal's data plane must refuse it before that, saying what it is. The
;; body is a placeholder.
(component
  (import "wasi:http/types@0.3.0" (instance))
  (type $body (stream u8))
  (core module $m (func (export "handle") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $handle (result u32) (canon lift (core func $i "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/handler@0.3.0" (instance $handler)))
