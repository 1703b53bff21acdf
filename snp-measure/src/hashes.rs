//! The SEV hashes table QEMU writes into the firmware when it boots a kernel directly
//! (`-kernel`/`-initrd`/`-append` with `kernel-hashes=on`); OVMF checks the files it loads
//! against it, so measuring the table measures the kernel, initrd and command line.

use ring::digest::{digest, SHA256};

use crate::ovmf::Guid;

const TABLE_HEADER_GUID: Guid = Guid::new(0x9438d606, 0x4f22, 0x4cc9, [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21]);
const KERNEL_ENTRY_GUID: Guid = Guid::new(0x4de79437, 0xabd2, 0x427f, [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b]);
const INITRD_ENTRY_GUID: Guid = Guid::new(0x44baf731, 0x3a2f, 0x4bd7, [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d]);
const CMDLINE_ENTRY_GUID: Guid =
    Guid::new(0x97d02dd8, 0xbd20, 0x4c94, [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a]);

const ENTRY_LEN: usize = 16 + 2 + 32;
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// QEMU pads the table to a multiple of 16 bytes.
pub const PADDED_TABLE_LEN: usize = TABLE_LEN.next_multiple_of(16);

/// SHA-256 of the kernel, the initrd and the command line, as QEMU computes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelHashes {
    kernel: [u8; 32],
    initrd: [u8; 32],
    cmdline: [u8; 32],
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

impl KernelHashes {
    /// A missing initrd hashes as empty; the command line is hashed with its terminating NUL
    /// (a missing or empty one is the single byte 0), as QEMU passes it to the guest.
    pub fn new(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>) -> KernelHashes {
        let mut c = cmdline.unwrap_or("").as_bytes().to_vec();
        c.push(0);
        KernelHashes { kernel: sha256(kernel), initrd: sha256(initrd.unwrap_or(&[])), cmdline: sha256(&c) }
    }

    /// The padded table: header GUID and length, then the command-line, initrd and kernel
    /// entries (GUID, length, SHA-256), in that order.
    pub fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut t = [0u8; PADDED_TABLE_LEN];
        t[0..16].copy_from_slice(&TABLE_HEADER_GUID.0);
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries =
            [(CMDLINE_ENTRY_GUID, &self.cmdline), (INITRD_ENTRY_GUID, &self.initrd), (KERNEL_ENTRY_GUID, &self.kernel)];
        for (i, (guid, hash)) in entries.iter().enumerate() {
            let at = 18 + i * ENTRY_LEN;
            t[at..at + 16].copy_from_slice(&guid.0);
            t[at + 16..at + 18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            t[at + 18..at + ENTRY_LEN].copy_from_slice(*hash);
        }
        t
    }
}
