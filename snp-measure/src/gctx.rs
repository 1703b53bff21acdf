//! The launch digest chain of SNP_LAUNCH_UPDATE (SEV-SNP firmware ABI, "PAGE_INFO"):
//! every page the VMM adds replaces the digest with SHA-384 over the old digest, the page's
//! contents hash and its metadata, so both the contents and the order are measured.

use ring::digest::{digest, SHA384};

pub const PAGE_SIZE: u64 = 4096;
/// Length of a SHA-384 digest and of the launch measurement.
pub const LD_LEN: usize = 48;
const PAGE_INFO_LEN: usize = 0x70;

/// The RMP records a VMSA at GPA -1; the digest uses it page-aligned and cut to 52 bits.
const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// Page types of PAGE_INFO.
#[derive(Clone, Copy)]
#[repr(u8)]
enum PageType {
    Normal = 0x01,
    Vmsa = 0x02,
    Zero = 0x03,
    Unmeasured = 0x04,
    Secrets = 0x05,
    Cpuid = 0x06,
}

/// The guest context's running launch digest.
pub struct Gctx {
    ld: [u8; LD_LEN],
}

fn sha384(data: &[u8]) -> [u8; LD_LEN] {
    let mut out = [0u8; LD_LEN];
    out.copy_from_slice(digest(&SHA384, data).as_ref());
    out
}

impl Gctx {
    pub fn new() -> Self {
        Gctx { ld: [0u8; LD_LEN] }
    }

    pub fn digest(&self) -> [u8; LD_LEN] {
        self.ld
    }

    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; LD_LEN]) {
        let mut info = [0u8; PAGE_INFO_LEN];
        info[..48].copy_from_slice(&self.ld);
        info[48..96].copy_from_slice(contents);
        info[96..98].copy_from_slice(&(PAGE_INFO_LEN as u16).to_le_bytes());
        info[98] = page_type as u8;
        // 99: IS_IMI = 0; 100..103: VMPL3/2/1 permissions = 0; 103: reserved.
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        self.ld = sha384(&info);
    }

    /// Pages whose contents are measured. `data.len()` must be a multiple of the page size
    /// (callers check it and return a typed error before calling).
    pub fn normal_pages(&mut self, start_gpa: u64, data: &[u8]) {
        debug_assert!((data.len() as u64).is_multiple_of(PAGE_SIZE));
        for (i, page) in data.chunks(PAGE_SIZE as usize).enumerate() {
            self.update(PageType::Normal, start_gpa + i as u64 * PAGE_SIZE, &sha384(page));
        }
    }

    pub fn vmsa_page(&mut self, page: &[u8; PAGE_SIZE as usize]) {
        self.update(PageType::Vmsa, VMSA_GPA, &sha384(page));
    }

    pub fn zero_pages(&mut self, gpa: u64, len: u64) {
        self.run(PageType::Zero, gpa, len);
    }

    pub fn unmeasured_pages(&mut self, gpa: u64, len: u64) {
        self.run(PageType::Unmeasured, gpa, len);
    }

    pub fn secrets_page(&mut self, gpa: u64) {
        self.update(PageType::Secrets, gpa, &[0u8; LD_LEN]);
    }

    pub fn cpuid_page(&mut self, gpa: u64) {
        self.update(PageType::Cpuid, gpa, &[0u8; LD_LEN]);
    }

    /// A run of pages whose contents are not measured (their hash field is zero).
    fn run(&mut self, page_type: PageType, gpa: u64, len: u64) {
        debug_assert!(len.is_multiple_of(PAGE_SIZE));
        let mut offset = 0;
        while offset < len {
            self.update(page_type, gpa + offset, &[0u8; LD_LEN]);
            offset += PAGE_SIZE;
        }
    }
}
