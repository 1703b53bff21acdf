//! A SYNTHETIC OVMF image: pseudo-random bytes with an OVMF footer GUID table and SEV
//! metadata laid out where QEMU and sev-snp-measure look for them. Debian ships no AmdSev
//! OVMF (the only build with an SNP_KERNEL_HASHES section), so kernel-hash cases and the
//! malformed-firmware cases are measured on these images. It boots nothing; it only has to
//! be parsed and measured the same way by both implementations.

#![allow(dead_code)]

pub const FOOTER_GUID: &str = "96b582de-1fb2-45f7-baea-a366c55a082d";
pub const HASH_TABLE_RV_GUID: &str = "7255371f-3a3b-4b04-927b-1da6efa8d454";
pub const RESET_BLOCK_GUID: &str = "00f771de-1a7e-4fcb-890e-68c77e2fb44e";
pub const METADATA_GUID: &str = "dc886566-984a-4798-a75e-5585a7bf67cc";

pub const SEC_MEM: u32 = 1;
pub const SECRETS: u32 = 2;
pub const CPUID: u32 = 3;
pub const SVSM_CAA: u32 = 4;
pub const KERNEL_HASHES: u32 = 0x10;

/// A GUID's textual form to its on-disk (mixed-endian) bytes, written independently of the
/// crate's own `Guid::new`.
pub fn guid_le(s: &str) -> [u8; 16] {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    let b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex guid")).collect();
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    out[4..6].copy_from_slice(&[b[5], b[4]]);
    out[6..8].copy_from_slice(&[b[7], b[6]]);
    out[8..].copy_from_slice(&b[8..]);
    out
}

/// splitmix64: deterministic pseudo-random bytes, so a failing case can be rerun.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Printable ASCII, for a kernel command line.
    pub fn text(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b' ' + (self.next() % 95) as u8)).collect()
    }
}

/// What to put in the synthetic image.
#[derive(Clone)]
pub struct Synthetic {
    pub pages: usize,
    pub seed: u64,
    /// Footer table entries as (GUID text, data), in file order.
    pub entries: Vec<(&'static str, Vec<u8>)>,
    /// SEV metadata sections (gpa, size, type); written if `metadata_at` is set.
    pub sections: Vec<(u32, u32, u32)>,
    /// The metadata block's offset from the end of the image.
    pub metadata_at: Option<u32>,
    pub footer: bool,
}

impl Synthetic {
    /// An SNP-capable image: reset block, metadata with SEC_MEM, SECRETS, CPUID and
    /// (if `kernel_hashes`) an SNP_KERNEL_HASHES page holding the hashes table at `0x..c00`.
    pub fn snp(seed: u64, kernel_hashes: bool) -> Synthetic {
        let mut rng = Rng(seed ^ 0x5eed);
        let base = 0x80_0000 + (rng.next() % 16) as u32 * 0x1000;
        let reset_eip = 0x80_b004 + (rng.next() % 8) as u32 * 0x10;
        let mut sections = vec![
            (base, 0x9000, SEC_MEM),
            (base + 0xa000, 0x3000, SEC_MEM),
            (base + 0xd000, 0x1000, SECRETS),
            (base + 0xe000, 0x1000, CPUID),
        ];
        let hashes_page = base + 0xf000;
        if kernel_hashes {
            sections.push((hashes_page, 0x1000, KERNEL_HASHES));
        }
        sections.push((base + 0x10000, 0x11000, SEC_MEM));
        let table_gpa = hashes_page + 0xc00;
        Synthetic {
            pages: 64 + (rng.next() % 64) as usize,
            seed,
            entries: vec![
                (HASH_TABLE_RV_GUID, [table_gpa.to_le_bytes(), 0x400u32.to_le_bytes()].concat()),
                (RESET_BLOCK_GUID, reset_eip.to_le_bytes().to_vec()),
                (METADATA_GUID, Vec::new()), // filled in by `build` with the metadata offset
            ],
            sections,
            metadata_at: Some(0x2000 + (rng.next() % 0x100) as u32 * 16),
            footer: true,
        }
    }

    pub fn without_entry(mut self, guid: &str) -> Synthetic {
        self.entries.retain(|(g, _)| *g != guid);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut data = Rng(self.seed).bytes(self.pages * 4096);
        let len = data.len();
        if let Some(at) = self.metadata_at {
            let n = self.sections.len() as u32;
            let mut meta = Vec::new();
            meta.extend_from_slice(b"ASEV");
            meta.extend_from_slice(&(16 + 12 * n).to_le_bytes());
            meta.extend_from_slice(&1u32.to_le_bytes());
            meta.extend_from_slice(&n.to_le_bytes());
            for &(gpa, size, ty) in &self.sections {
                for v in [gpa, size, ty] {
                    meta.extend_from_slice(&v.to_le_bytes());
                }
            }
            let start = len - at as usize;
            data[start..start + meta.len()].copy_from_slice(&meta);
        }
        if self.footer {
            let mut table = Vec::new();
            for (guid, body) in &self.entries {
                let body = if *guid == METADATA_GUID && body.is_empty() {
                    self.metadata_at.unwrap_or(0).to_le_bytes().to_vec()
                } else {
                    body.clone()
                };
                table.extend_from_slice(&body);
                table.extend_from_slice(&((body.len() + 18) as u16).to_le_bytes());
                table.extend_from_slice(&guid_le(guid));
            }
            table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
            table.extend_from_slice(&guid_le(FOOTER_GUID));
            let end = len - 32;
            data[end - table.len()..end].copy_from_slice(&table);
        }
        data
    }
}
