//! The expected SEV-SNP launch measurement of an OVMF guest, so a data owner can recompute
//! the MEASUREMENT field of an attestation report from the firmware, kernel, initrd and
//! command line it reviewed, instead of trusting the operator's number.
//!
//! The algorithm is that of the reference tool `sev-snp-measure` (virtee), mode `snp`:
//! 1. the whole firmware image as normal pages, from `4 GiB - len` upwards;
//! 2. each OVMF SEV metadata section in order (zero pages, the secrets page, the CPUID page,
//!    the kernel-hashes page or zero pages when no kernel is given);
//! 3. one VMSA page per vCPU (the BSP at the reset vector, the APs at the SEV-ES reset block).
//!
//! Pure logic: bytes in, 48 bytes out. Reading files is the caller's job, except in
//! [`guest`]: the typed launch description that a launcher and this measurement share,
//! which reads the three files it names. [`expectations`] writes the owner's
//! `MEASUREMENT.json` from a measurement.

mod error;
pub mod expectations;
mod gctx;
pub mod guest;
mod hashes;
mod ovmf;
mod policy;
mod vcpu;
mod vmsa;

pub use error::Error;
pub use expectations::{Expectations, MinTcb};
pub use guest::{LaunchError, SnpGuest};
pub use hashes::KernelHashes;
pub use ovmf::{Guid, Ovmf, Section, SectionKind};
pub use policy::GuestPolicy;
pub use vcpu::{VcpuSignature, VcpuType};
pub use vmsa::VmmType;

use gctx::{Gctx, PAGE_SIZE};

/// Length of the launch measurement (SHA-384).
pub const MEASUREMENT_LEN: usize = gctx::LD_LEN;

/// sev-snp-measure's default `--guest-features`: SEV_FEATURES with only SNPActive set.
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;

/// Everything that determines the launch measurement.
#[derive(Debug, Clone)]
pub struct LaunchConfig<'a> {
    /// The OVMF firmware image (OVMF_CODE or a combined OVMF.fd), as QEMU maps it.
    pub firmware: &'a [u8],
    /// The direct-boot kernel, initrd and command line, if QEMU boots one with kernel hashes.
    pub kernel_hashes: Option<KernelHashes>,
    /// Number of vCPUs (at least 1).
    pub vcpus: u32,
    /// The vCPU signature QEMU reports (from the vCPU type).
    pub vcpu_sig: VcpuSignature,
    /// The SEV_FEATURES the VMSAs carry (`--guest-features`).
    pub guest_features: u64,
    pub vmm: VmmType,
}

/// The launch measurement for `config`.
pub fn launch_digest(config: &LaunchConfig<'_>) -> Result<[u8; MEASUREMENT_LEN], Error> {
    if config.vcpus == 0 {
        return Err(Error::NoVcpus);
    }
    let ovmf = Ovmf::parse(config.firmware)?;
    let ap_eip = ovmf.reset_eip()?;
    // The reference cannot build an AP's VMSA without a reset address; refuse rather than guess.
    if ap_eip == 0 && config.vcpus > 1 {
        return Err(Error::ZeroResetEip { vcpus: config.vcpus });
    }
    // Checked before any hashing, so a bad request costs nothing.
    let hashes_page = match &config.kernel_hashes {
        Some(h) => Some(kernel_hashes_page(&ovmf, h)?),
        None => None,
    };
    for s in ovmf.sections() {
        let run = matches!(s.kind, SectionKind::SnpSecMem | SectionKind::SvsmCaa)
            || (s.kind == SectionKind::SnpKernelHashes && hashes_page.is_none());
        if run && !u64::from(s.size).is_multiple_of(PAGE_SIZE) {
            return Err(Error::SectionNotPageMultiple { gpa: s.gpa, size: s.size });
        }
    }

    let mut g = Gctx::new();
    g.normal_pages(ovmf.gpa(), ovmf.data());
    for s in ovmf.sections() {
        let (gpa, size) = (u64::from(s.gpa), u64::from(s.size));
        match s.kind {
            // GCE does not pre-validate this memory; it is recorded as unmeasured.
            SectionKind::SnpSecMem if config.vmm == VmmType::Gce => g.unmeasured_pages(gpa, size),
            SectionKind::SnpSecMem | SectionKind::SvsmCaa => g.zero_pages(gpa, size),
            SectionKind::SnpSecrets => g.secrets_page(gpa),
            // EC2 adds the CPUID page after every other section.
            SectionKind::Cpuid if config.vmm == VmmType::Ec2 => {}
            SectionKind::Cpuid => g.cpuid_page(gpa),
            SectionKind::SnpKernelHashes => match &hashes_page {
                Some(page) => g.normal_pages(gpa, page),
                None => g.zero_pages(gpa, size),
            },
        }
    }
    if config.vmm == VmmType::Ec2 {
        for s in ovmf.sections().iter().filter(|s| s.kind == SectionKind::Cpuid) {
            g.cpuid_page(u64::from(s.gpa));
        }
    }

    let bsp = vmsa::page(vmsa::BSP_EIP, config.guest_features, config.vcpu_sig.0, config.vmm);
    let ap = vmsa::page(ap_eip, config.guest_features, config.vcpu_sig.0, config.vmm);
    for i in 0..config.vcpus {
        g.vmsa_page(if i == 0 { &bsp } else { &ap });
    }
    Ok(g.digest())
}

/// The page QEMU adds for the SNP_KERNEL_HASHES section: zeros with the hashes table at the
/// table's offset in the page.
fn kernel_hashes_page(ovmf: &Ovmf<'_>, hashes: &KernelHashes) -> Result<Vec<u8>, Error> {
    let section =
        ovmf.sections().iter().find(|s| s.kind == SectionKind::SnpKernelHashes).ok_or(Error::NoKernelHashesSection)?;
    if u64::from(section.size) != PAGE_SIZE {
        return Err(Error::KernelHashesSectionSize { size: section.size });
    }
    let table_gpa = ovmf.hashes_table_gpa()?;
    let table = hashes.table();
    // The table must lie inside the (page-aligned) section's page, or QEMU would write it
    // where this page does not measure it.
    let offset = (table_gpa & 0xfff) as usize;
    if table_gpa & !0xfff != section.gpa || offset + table.len() > PAGE_SIZE as usize {
        return Err(Error::HashesTableOutsideSection { table_gpa, section_gpa: section.gpa });
    }
    let mut page = vec![0u8; PAGE_SIZE as usize];
    page[offset..offset + table.len()].copy_from_slice(&table);
    Ok(page)
}

/// The measurement as lowercase hex, as `sev-snp-measure --output-format hex` prints it.
pub fn to_hex(measurement: &[u8; MEASUREMENT_LEN]) -> String {
    hex::encode(measurement)
}
