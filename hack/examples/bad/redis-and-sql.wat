;; Imports from both shoal:redis and shoal:sql (ABI v1 signatures): an app that declares only a
;; redis dependency must fail to load it, with a message naming the "sql" capability.
(module
  (import "shoal:redis" "get" (func $get (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "shoal:sql" "query" (func $query (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "cache")
  (func (export "_start")
    (drop (call $get (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 64)))))
