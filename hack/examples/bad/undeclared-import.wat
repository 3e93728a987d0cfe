;; Imports a Redis capability host function; apps that do not declare "redis" must fail to load.
(module
  (import "shoal:redis" "get" (func $get (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $get (i32.const 0) (i32.const 0) (i32.const 0)))))
