;; Integer division by zero.
(module
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (i32.div_u (i32.const 1) (i32.sub (local.get $rows) (local.get $rows))))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
