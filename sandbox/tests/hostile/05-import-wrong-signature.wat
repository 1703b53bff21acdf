;; Imports read_f64 with a type that differs from the ABI's.
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
