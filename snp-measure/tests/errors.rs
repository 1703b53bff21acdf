//! Every refusal by name, on SYNTHETIC firmware (tests/common) with one defect each, and
//! no panic on damaged tables.

mod common;

use common::*;
use snp_measure::{launch_digest, Error, KernelHashes, LaunchConfig, Ovmf, VcpuSignature, VmmType};

fn config(firmware: &[u8], kernel: bool, vcpus: u32) -> LaunchConfig<'_> {
    LaunchConfig {
        firmware,
        kernel_hashes: kernel.then(|| KernelHashes::new(b"kernel", Some(b"initrd"), Some("console=ttyS0"))),
        vcpus,
        vcpu_sig: VcpuSignature::from_type("EPYC-v4").expect("known type"),
        guest_features: snp_measure::DEFAULT_GUEST_FEATURES,
        vmm: VmmType::Qemu,
    }
}

fn digest(fw: &Synthetic, kernel: bool, vcpus: u32) -> Result<[u8; 48], Error> {
    launch_digest(&config(&fw.build(), kernel, vcpus))
}

#[test]
fn well_formed_synthetic_images_measure() {
    assert!(digest(&Synthetic::snp(1, true), true, 2).is_ok());
    assert!(digest(&Synthetic::snp(1, true), false, 2).is_ok());
    assert!(digest(&Synthetic::snp(1, false), false, 1).is_ok());
    // Without a kernel, the hashes-table entry is not needed.
    assert!(digest(&Synthetic::snp(1, false).without_entry(HASH_TABLE_RV_GUID), false, 1).is_ok());
}

#[test]
fn no_footer_table() {
    let fw = Synthetic { footer: false, ..Synthetic::snp(2, false) };
    assert_eq!(digest(&fw, false, 1), Err(Error::NoFooterTable));
}

#[test]
fn no_reset_block() {
    assert_eq!(digest(&Synthetic::snp(3, false).without_entry(RESET_BLOCK_GUID), false, 1), Err(Error::NoResetBlock));
}

#[test]
fn no_sev_metadata() {
    let fw = Synthetic::snp(4, false).without_entry(METADATA_GUID);
    assert_eq!(digest(&fw, false, 1), Err(Error::NoSevMetadata));
}

#[test]
fn malformed_sev_metadata() {
    let fw = Synthetic::snp(5, false);
    let mut bytes = fw.build();
    let start = bytes.len() - fw.metadata_at.expect("metadata") as usize;
    bytes[start] = b'X';
    assert_eq!(
        launch_digest(&config(&bytes, false, 1)),
        Err(Error::SevMetadataMalformed { reason: "signature is not ASEV" })
    );
    let mut bytes = fw.build();
    bytes[start + 8] = 2;
    assert_eq!(
        launch_digest(&config(&bytes, false, 1)),
        Err(Error::SevMetadataMalformed { reason: "version is not 1" })
    );
}

#[test]
fn unknown_section_type() {
    let mut fw = Synthetic::snp(6, false);
    fw.sections[2].2 = 7;
    assert_eq!(digest(&fw, false, 1), Err(Error::UnknownSectionType { index: 2, section_type: 7 }));
}

#[test]
fn section_not_page_multiple() {
    let mut fw = Synthetic::snp(7, false);
    fw.sections[0].1 = 0x1800;
    let gpa = fw.sections[0].0;
    assert_eq!(digest(&fw, false, 1), Err(Error::SectionNotPageMultiple { gpa, size: 0x1800 }));
}

#[test]
fn kernel_hashes_without_the_section() {
    assert_eq!(digest(&Synthetic::snp(8, false), true, 1), Err(Error::NoKernelHashesSection));
}

#[test]
fn kernel_hashes_without_the_table_entry() {
    let fw = Synthetic::snp(9, true).without_entry(HASH_TABLE_RV_GUID);
    assert_eq!(digest(&fw, true, 1), Err(Error::NoHashesTableEntry));
}

#[test]
fn kernel_hashes_section_of_two_pages() {
    let mut fw = Synthetic::snp(10, true);
    let s = fw.sections.iter_mut().find(|s| s.2 == KERNEL_HASHES).expect("section");
    s.1 = 0x2000;
    assert_eq!(digest(&fw, true, 1), Err(Error::KernelHashesSectionSize { size: 0x2000 }));
}

#[test]
fn hashes_table_outside_its_section() {
    let mut fw = Synthetic::snp(11, true);
    let section_gpa = fw.sections.iter().find(|s| s.2 == KERNEL_HASHES).expect("section").0;
    for table_gpa in [section_gpa + 0x1000, section_gpa + 0xf80] {
        fw.entries[0].1 = [table_gpa.to_le_bytes(), 0x400u32.to_le_bytes()].concat();
        assert_eq!(digest(&fw, true, 1), Err(Error::HashesTableOutsideSection { table_gpa, section_gpa }));
    }
}

#[test]
fn zero_vcpus() {
    assert_eq!(digest(&Synthetic::snp(12, false), false, 0), Err(Error::NoVcpus));
}

#[test]
fn zero_reset_eip_with_application_processors() {
    let mut fw = Synthetic::snp(13, false);
    fw.entries.iter_mut().find(|e| e.0 == RESET_BLOCK_GUID).expect("entry").1 = vec![0; 4];
    assert!(digest(&fw, false, 1).is_ok(), "one vCPU needs no AP start address");
    assert_eq!(digest(&fw, false, 2), Err(Error::ZeroResetEip { vcpus: 2 }));
}

#[test]
fn unknown_vcpu_and_vmm_type() {
    assert!(
        matches!(VcpuSignature::from_type("EPYC-Nope"), Err(Error::UnknownVcpuType { name, .. }) if name == "EPYC-Nope")
    );
    assert_eq!("kvm".parse::<VmmType>(), Err(Error::UnknownVmmType { name: "kvm".into() }));
    assert_eq!("QEMU".parse::<VmmType>(), Ok(VmmType::Qemu));
}

#[test]
fn vcpu_signatures() {
    // CPUID Fn0000_0001_EAX of the real parts: Naples, Rome, Milan, Genoa.
    assert_eq!(VcpuSignature::from_type("EPYC-v4"), Ok(VcpuSignature(0x0080_0f12)));
    assert_eq!(VcpuSignature::from_type("EPYC-Rome"), Ok(VcpuSignature(0x0083_0f10)));
    assert_eq!(VcpuSignature::from_type("EPYC-Milan"), Ok(VcpuSignature(0x00a0_0f11)));
    assert_eq!(VcpuSignature::from_type("EPYC-Genoa"), Ok(VcpuSignature(0x00a1_0f10)));
}

#[test]
fn bad_image_sizes() {
    assert_eq!(launch_digest(&config(&[0u8; 40], false, 1)), Err(Error::FirmwareTooSmall { len: 40 }));
    let mut bytes = Synthetic::snp(14, false).build();
    bytes.insert(0, 0);
    assert_eq!(launch_digest(&config(&bytes, false, 1)), Err(Error::FirmwareNotPageMultiple { len: bytes.len() }));
}

#[test]
fn malformed_and_duplicate_table_entries() {
    let fw = Synthetic::snp(15, false);
    let bytes = fw.build();
    // The last entry's size field sits just before the footer entry.
    let size_at = bytes.len() - 32 - 18 - 18;
    let mut bad = bytes.clone();
    bad[size_at..size_at + 2].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(
        launch_digest(&config(&bad, false, 1)),
        Err(Error::FooterTableMalformed { reason: "an entry's size is smaller than its header" })
    );
    let mut dup = fw.clone();
    dup.entries.push(dup.entries[1].clone());
    assert!(matches!(digest(&dup, false, 1), Err(Error::DuplicateTableEntry { .. })));
}

/// Damaged tables and metadata: any error, never a panic.
#[test]
fn damaged_images_never_panic() {
    let fw = Synthetic::snp(16, true);
    let bytes = fw.build();
    let meta = bytes.len() - fw.metadata_at.expect("metadata") as usize;
    let mut rng = Rng(99);
    for i in 0..5000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            // Hit the footer table (last 256 bytes) or the metadata block.
            let at =
                if i % 2 == 0 { b.len() - 1 - (rng.next() % 256) as usize } else { meta + (rng.next() % 96) as usize };
            b[at] = rng.next() as u8;
        }
        let _ = Ovmf::parse(&b);
    }
}
