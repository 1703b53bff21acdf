;; Grows one page at a time until growth fails, then keeps going.
(module
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
