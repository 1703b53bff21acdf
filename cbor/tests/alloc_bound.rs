//! No allocation is sized from a declared length or count that the input does not
//! back: a counting global allocator records the largest single request.
#![allow(unsafe_code)] // a counting global allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cbor::decode;

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn declared_counts_reserve_nothing() {
    const N: usize = 1 << 16;
    let mut hostile = Vec::new();
    // an array, a map and a byte string that each declare as much as the rest of the
    // input, whose first item is broken (a break byte, or too little left)
    for head in [[0x9a, 0x00, 0x01, 0x00, 0x00], [0xba, 0x00, 0x00, 0x80, 0x00], [0x5a, 0x00, 0x01, 0x00, 0x01]] {
        let mut v = head.to_vec();
        v.extend(std::iter::repeat_n(0xff, N));
        hostile.push(v);
    }
    // the same inside an indefinite array, and nested arrays each declaring the rest
    let mut v = vec![0x9f, 0x9a, 0x00, 0x01, 0x00, 0x00];
    v.extend(std::iter::repeat_n(0xff, N));
    hostile.push(v);
    let mut v = Vec::new();
    for _ in 0..8 {
        v.extend([0x99, 0x7f, 0xff]);
    }
    v.extend(std::iter::repeat_n(0xff, N));
    hostile.push(v);
    for input in &hostile {
        LARGEST.store(0, Ordering::Relaxed);
        assert!(decode(input).is_err());
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest <= input.len(), "an allocation of {largest} bytes for a {}-byte input", input.len());
    }
}
