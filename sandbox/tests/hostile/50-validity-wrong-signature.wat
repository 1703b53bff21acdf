;; Imports read_validity with a type that differs from the ABI's (no result).
(module
  (import "cleanroom" "read_validity" (func $read_validity (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
