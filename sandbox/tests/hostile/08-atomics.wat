;; Atomic instructions on an unshared memory (threads proposal).
(module
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
