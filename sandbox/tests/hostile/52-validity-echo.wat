;; Control: emits its f64 input where the validity byte says 1, and -1 where it says 0
;; (the corpus batch has no nulls, so the output is the input).
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "read_validity" (func $read_validity (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (drop (call $read_validity (i32.const 0) (i32.const 65536) (local.get $rows)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (if (i32.eqz (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
        (then (f64.store (i32.shl (local.get $i) (i32.const 3)) (f64.const -1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
