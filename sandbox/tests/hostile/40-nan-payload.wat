;; Hides bits of its input in NaN payloads: emits NaN with the low mantissa bits set
;; to row data, hoping they survive to the aggregator.
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (i64.store (i32.shl (local.get $i) (i32.const 3))
          (i64.or (i64.const 0x7ff8000000000000)
            (i64.and (i64.reinterpret_f64 (f64.load (i32.shl (local.get $i) (i32.const 3))))
                     (i64.const 0x0007ffffffffffff))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
