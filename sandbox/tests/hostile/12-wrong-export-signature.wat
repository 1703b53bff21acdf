;; cleanroom_process_batch takes an i64.
(module
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i64) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
