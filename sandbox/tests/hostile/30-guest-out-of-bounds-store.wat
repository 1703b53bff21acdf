;; Writes outside its own memory.
(module
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (i64.store (i32.const 1000000) (i64.const 42))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
