;; An active data segment placed beyond the end of its memory.
(module
  (memory (export "memory") 1)
  (data (i32.const 65530) "0123456789abcdef")
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
