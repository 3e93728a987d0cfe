;; A stand-in for what Spin SDK 4+ emits: a component whose world is WASI 0.3's (it imports
;; wasi:http/types@0.3.0 and exports wasi:http/handler@0.3.0). Shoal's data plane (wasmtime 48, a
;; WASI 0.2 host) must refuse it at load, saying so. The body is a placeholder: only the names count.
(component
  (import "wasi:http/types@0.3.0" (instance))
  (core module $m (func (export "handle") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $handle (result u32) (canon lift (core func $i "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/handler@0.3.0" (instance $handler)))
