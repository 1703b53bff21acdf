//! Every way an input can be refused. Each variant names one defect of one input, so an
//! owner who cannot recompute a measurement learns which file or setting is at fault.

use crate::ovmf::Guid;

/// Why a launch measurement could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The firmware is too short to hold the footer table at its end.
    #[error("firmware image is {len} bytes, too short to hold the OVMF footer table")]
    FirmwareTooSmall { len: usize },
    /// The firmware is measured page by page, so its length must be a whole number of pages.
    #[error("firmware image is {len} bytes, not a multiple of 4096")]
    FirmwareNotPageMultiple { len: usize },
    /// The firmware is mapped to end at 4 GiB, so it cannot be larger than that.
    #[error("firmware image is {len} bytes, larger than the 4 GiB it must fit below")]
    FirmwareTooLarge { len: usize },
    /// No OVMF footer GUID table before the last 32 bytes (not an OVMF image, or a VARS file).
    #[error("firmware has no OVMF footer GUID table (is it an OVMF_CODE image?)")]
    NoFooterTable,
    /// The footer table is present but its sizes do not fit the image.
    #[error("OVMF footer GUID table is malformed: {reason}")]
    FooterTableMalformed { reason: &'static str },
    /// Two entries with the same GUID: which one the VMM uses is ambiguous.
    #[error("OVMF footer GUID table has two entries with GUID {guid}")]
    DuplicateTableEntry { guid: Guid },
    /// No SEV-ES reset block: the APs' start address (and so their VMSA) is unknown.
    #[error("OVMF footer table has no SEV-ES reset block entry (firmware not built for SEV-ES/SNP)")]
    NoResetBlock,
    /// The reset block entry is shorter than its 4-byte address.
    #[error("OVMF SEV-ES reset block entry is {len} bytes, shorter than its 4-byte address")]
    ResetBlockTooShort { len: usize },
    /// The reset address is 0, which leaves the application processors without a start address.
    #[error("OVMF SEV-ES reset address is 0, so {vcpus} vCPUs cannot be started")]
    ZeroResetEip { vcpus: u32 },
    /// No SEV metadata entry: QEMU refuses to launch such firmware as an SNP guest.
    #[error("OVMF footer table has no SEV metadata entry (firmware not built for SEV-SNP)")]
    NoSevMetadata,
    /// The SEV metadata block is present but malformed.
    #[error("OVMF SEV metadata is malformed: {reason}")]
    SevMetadataMalformed { reason: &'static str },
    /// A metadata section of a type this crate (and the reference) does not know.
    #[error("OVMF SEV metadata section {index} has unknown type {section_type:#x}")]
    UnknownSectionType { index: usize, section_type: u32 },
    /// A section measured as a run of pages whose size is not a whole number of pages.
    #[error("OVMF SEV metadata section at {gpa:#x} has size {size:#x}, not a multiple of 4096")]
    SectionNotPageMultiple { gpa: u32, size: u32 },
    /// Kernel hashes were asked for, but the firmware has no SNP_KERNEL_HASHES section.
    #[error("kernel hashes requested, but the OVMF SEV metadata has no SNP_KERNEL_HASHES section (use an AmdSev OVMF build)")]
    NoKernelHashesSection,
    /// The SNP_KERNEL_HASHES section exists but the footer table does not say where the
    /// hashes table lies.
    #[error("kernel hashes requested, but the OVMF footer table has no SEV hashes table entry")]
    NoHashesTableEntry,
    /// The hashes table entry is shorter than its 4-byte address.
    #[error("OVMF SEV hashes table entry is {len} bytes, shorter than its 4-byte address")]
    HashesTableEntryTooShort { len: usize },
    /// The SNP_KERNEL_HASHES section must be exactly the one page holding the table.
    #[error("OVMF SNP_KERNEL_HASHES section has size {size:#x}, not one page")]
    KernelHashesSectionSize { size: u32 },
    /// The hashes table does not lie inside the SNP_KERNEL_HASHES page.
    #[error("SEV hashes table at {table_gpa:#x} does not fit in the SNP_KERNEL_HASHES page at {section_gpa:#x}")]
    HashesTableOutsideSection { table_gpa: u32, section_gpa: u32 },
    /// A guest has at least one vCPU.
    #[error("vCPU count must be at least 1")]
    NoVcpus,
    /// A vCPU type name not in QEMU's list of EPYC models.
    #[error("unknown vCPU type {name:?} (known: {known})")]
    UnknownVcpuType { name: String, known: String },
    /// A VMM type name other than QEMU, ec2 or gce.
    #[error("unknown VMM type {name:?} (known: QEMU, ec2, gce)")]
    UnknownVmmType { name: String },
    /// A guest policy that is not a number.
    #[error("guest policy {text:?} is not a number (write 0x30000 or 196608)")]
    PolicyNotANumber { text: String },
    /// Guest policy bit 17 is reserved and must be one; the secure processor refuses the launch otherwise.
    #[error("guest policy {policy:#x} has reserved bit 17 clear; it must be set (e.g. 0x30000)")]
    PolicyReservedBitClear { policy: u64 },
    /// Guest policy bits 26-63 are reserved and must be zero.
    #[error("guest policy {policy:#x} sets reserved bits (26-63 must be zero)")]
    PolicyReservedBitsSet { policy: u64 },
    /// DEBUG (bit 19) lets the host decrypt the guest's memory; the owner's verifier refuses such a report.
    #[error("guest policy {policy:#x} allows debugging (bit 19): the host could read the guest's memory, and the owner's verification refuses it")]
    PolicyDebug { policy: u64 },
    /// MIGRATE_MA (bit 18) lets a migration agent export the guest; the owner's verifier refuses such a report.
    #[error("guest policy {policy:#x} allows a migration agent (bit 18), which the owner's verification refuses")]
    PolicyMigrationAgent { policy: u64 },
    /// `min_tcb` for the owner's reference could not be read.
    #[error("--min-tcb {text:?}: {reason} (write bootloader=N,tee=N,snp=N,microcode=N[,fmc=N])")]
    MinTcbSyntax { text: String, reason: String },
    /// `max_vmpl` must be a VMPL, 0-3.
    #[error("max VMPL {0} is not a VMPL (0-3)")]
    VmplOutOfRange(u32),
}
