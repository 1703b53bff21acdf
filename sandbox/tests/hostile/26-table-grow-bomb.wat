;; Grows its table without bound at run time.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "cleanroom_process_batch") (param i32) (result i32)
    (loop $l
      (br_if $l (i32.ne (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1))))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))
