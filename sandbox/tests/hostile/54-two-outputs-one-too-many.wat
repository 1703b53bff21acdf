;; Declares two outputs per row and emits one value too many: rows * 2 + 1.
;; (The last value is read from memory past the outputs, still in bounds.)
(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32) (local $x f64)
    (if (i32.gt_u (local.get $rows) (i32.const 4096)) (then (return (i32.const 9))))
    ;; inputs at 0, outputs at 65536: row i's two values at 65536 + 16i
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $x (f64.load (i32.shl (local.get $i) (i32.const 3))))
        (f64.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 4))) (local.get $x))
        (f64.store (i32.add (i32.const 65544) (i32.shl (local.get $i) (i32.const 4))) (f64.neg (local.get $x)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $emit (i32.const 65536) (local.get $rows))
    (call $emit (i32.add (i32.const 65536) (i32.shl (local.get $rows) (i32.const 3)))
      (i32.add (local.get $rows) (i32.const 1)))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\02\00\00\00\01\00\00\00\00\01x\05neg_x"))
