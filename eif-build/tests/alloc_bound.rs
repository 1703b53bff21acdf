//! The reader never allocates from a declared size: hostile headers and CBOR lengths
//! cause no allocation larger than the input itself.
#![allow(unsafe_code)] // a counting global allocator

mod common;

use common::*;
use eif_build::eif::{fix_crc, MAX_SECTIONS};
use eif_build::{Eif, HashAlgorithm};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Tracking;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
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
static GLOBAL: Tracking = Tracking;

#[test]
fn hostile_sizes_do_not_allocate() {
    let golden = vector("golden_signed.eif");
    let sizes_at = 28 + 8 * MAX_SECTIONS;
    let mut hostile = Vec::new();
    for huge in [u64::MAX, 1 << 62, 1 << 40] {
        let mut img = golden.clone();
        img[sizes_at..sizes_at + 8].copy_from_slice(&huge.to_be_bytes());
        img[548 + 4..548 + 12].copy_from_slice(&huge.to_be_bytes());
        fix_crc(&mut img);
        hostile.push(img);
    }
    // a signature section whose CBOR claims 2^64-1 entries
    let sig_at = 220_977 + 12;
    let mut img = golden.clone();
    img[sig_at] = 0x9b;
    img[sig_at + 1..sig_at + 9].copy_from_slice(&[0xff; 8]);
    fix_crc(&mut img);
    hostile.push(img);

    for img in &hostile {
        LARGEST.store(0, Ordering::Relaxed);
        assert!(Eif::parse(img, HashAlgorithm::Sha384).is_err());
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest <= img.len(), "an allocation of {largest} bytes for a {}-byte input", img.len());
    }
}
