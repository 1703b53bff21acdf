;; Uses the exception-handling proposal.
(module
  (tag $e)
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (throw $e))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
