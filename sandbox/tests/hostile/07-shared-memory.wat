;; A shared memory, the basis of threads.
(module
  (memory (export "memory") 1 1 shared)
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
