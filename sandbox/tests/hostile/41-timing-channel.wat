;; Encodes its input in its running time: spins x * 100 million iterations for the
;; first row's x. There is no clock to read and the job ends at the time limit.
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $n i64)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (local.set $n (i64.trunc_sat_f64_u (f64.mul (f64.load (i32.const 0)) (f64.const 1e8))))
    (block $done
      (loop $l
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $l)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
