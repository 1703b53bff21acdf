;; Tries to emit from its start function, outside any batch.
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func $start (call $emit (i32.const 0) (i32.const 1)))
  (start $start)
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
