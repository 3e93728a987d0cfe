;; A noisy neighbour: grows its memory to its limit (1 MiB at a time, then page by page), writes to
;; every page so all of it is really resident, then spins until its deadline stops it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (local $p i32) (local $end i32)
    (block $full
      (loop $grow
        (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (block $done
      (loop $touch
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (i32.store (local.get $p) (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 4096)))
        (br $touch)))
    (loop $spin (br $spin))))
