;; Calls through an empty table slot.
(module
  (type $t (func (result i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (call_indirect (type $t) (i32.const 2)))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
