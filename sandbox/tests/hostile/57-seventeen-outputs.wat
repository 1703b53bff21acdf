;; Declares 17 outputs per row, one more than the most a module may have.
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (call $emit (i32.const 0) (local.get $rows))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\11\00\00\00\01\00\00\00\00\01a\01b\01c\01d\01e\01f\01g\01h\01i\01j\01k\01l\01m\01n\01o\01p\01q"))
