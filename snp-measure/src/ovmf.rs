//! Parsing an OVMF image the way QEMU (and sev-snp-measure) read it: the GUID table that
//! ends 32 bytes before the end of the image, the SEV-ES reset block, the SEV hashes
//! table address, and the SEV metadata ("ASEV") that lists the pages the VMM must add.

use std::fmt;

use crate::error::Error;

/// A GUID in its on-disk (mixed-endian, "bytes_le") form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual fields `a-b-c-d[0..2]-d[2..8]`.
    pub const fn new(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            hex::encode(&g[8..10]),
            hex::encode(&g[10..16])
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub const FOOTER_TABLE_GUID: Guid =
    Guid::new(0x96b582de, 0x1fb2, 0x45f7, [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d]);
pub const SEV_HASH_TABLE_RV_GUID: Guid =
    Guid::new(0x7255371f, 0x3a3b, 0x4b04, [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54]);
pub const SEV_ES_RESET_BLOCK_GUID: Guid =
    Guid::new(0x00f771de, 0x1a7e, 0x4fcb, [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e]);
pub const SEV_METADATA_GUID: Guid =
    Guid::new(0xdc886566, 0x984a, 0x4798, [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc]);

/// Each table entry ends with a 2-byte size (covering the whole entry) and its GUID.
pub const ENTRY_HEADER_LEN: usize = 18;
/// The table's own footer entry sits this far before the end of the image (the reset vector
/// occupies the last 32 bytes).
pub const FOOTER_GAP: usize = 32;
const METADATA_HEADER_LEN: usize = 16;
const METADATA_ITEM_LEN: usize = 12;
const FOUR_GIB: u64 = 1 << 32;

/// Kinds of pages listed in the SEV metadata (edk2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Pre-validated memory the VMM adds as zero pages.
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The CPUID page.
    Cpuid,
    /// The SVSM calling area, added as zero pages.
    SvsmCaa,
    /// The page that holds the kernel, initrd and command-line hashes.
    SnpKernelHashes,
}

impl SectionKind {
    fn from_u32(v: u32) -> Option<SectionKind> {
        Some(match v {
            1 => SectionKind::SnpSecMem,
            2 => SectionKind::SnpSecrets,
            3 => SectionKind::Cpuid,
            4 => SectionKind::SvsmCaa,
            0x10 => SectionKind::SnpKernelHashes,
            _ => return None,
        })
    }
}

/// One SEV metadata section: a guest-physical range and what the VMM puts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub gpa: u32,
    pub size: u32,
    pub kind: SectionKind,
}

/// A parsed OVMF image (borrowing the bytes).
#[derive(Debug)]
pub struct Ovmf<'a> {
    data: &'a [u8],
    table: Vec<(Guid, &'a [u8])>,
    sections: Vec<Section>,
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Ovmf<'a> {
    /// Parses the footer table and SEV metadata. Refuses an image that cannot be launched as
    /// an SNP guest by QEMU: no footer table, no reset block, or no SEV metadata.
    pub fn parse(data: &'a [u8]) -> Result<Ovmf<'a>, Error> {
        let len = data.len();
        if len < FOOTER_GAP + ENTRY_HEADER_LEN {
            return Err(Error::FirmwareTooSmall { len });
        }
        if !(len as u64).is_multiple_of(crate::gctx::PAGE_SIZE) {
            return Err(Error::FirmwareNotPageMultiple { len });
        }
        if len as u64 > FOUR_GIB {
            return Err(Error::FirmwareTooLarge { len });
        }
        let table = parse_footer_table(data)?;
        let mut ovmf = Ovmf { data, table, sections: Vec::new() };
        ovmf.reset_eip()?;
        ovmf.sections = ovmf.parse_metadata()?;
        Ok(ovmf)
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The image is mapped so that it ends at 4 GiB.
    pub fn gpa(&self) -> u64 {
        FOUR_GIB - self.data.len() as u64
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The data of the table entry with this GUID.
    pub fn entry(&self, guid: Guid) -> Option<&'a [u8]> {
        self.table.iter().find(|(g, _)| *g == guid).map(|(_, d)| *d)
    }

    /// Where the application processors start (the SEV-ES reset block).
    pub fn reset_eip(&self) -> Result<u32, Error> {
        let entry = self.entry(SEV_ES_RESET_BLOCK_GUID).ok_or(Error::NoResetBlock)?;
        if entry.len() < 4 {
            return Err(Error::ResetBlockTooShort { len: entry.len() });
        }
        Ok(le_u32(entry))
    }

    /// Where QEMU writes the SEV hashes table.
    pub fn hashes_table_gpa(&self) -> Result<u32, Error> {
        let entry = self.entry(SEV_HASH_TABLE_RV_GUID).ok_or(Error::NoHashesTableEntry)?;
        if entry.len() < 4 {
            return Err(Error::HashesTableEntryTooShort { len: entry.len() });
        }
        Ok(le_u32(entry))
    }

    fn parse_metadata(&self) -> Result<Vec<Section>, Error> {
        let malformed = |reason| Error::SevMetadataMalformed { reason };
        let entry = self.entry(SEV_METADATA_GUID).ok_or(Error::NoSevMetadata)?;
        if entry.len() < 4 {
            return Err(malformed("metadata entry shorter than its 4-byte offset"));
        }
        let offset_from_end = le_u32(entry) as usize;
        let len = self.data.len();
        if offset_from_end > len || offset_from_end < METADATA_HEADER_LEN {
            return Err(malformed("metadata offset points outside the image"));
        }
        let start = len - offset_from_end;
        let header = &self.data[start..start + METADATA_HEADER_LEN];
        if &header[0..4] != b"ASEV" {
            return Err(malformed("signature is not ASEV"));
        }
        let size = le_u32(&header[4..8]) as usize;
        if le_u32(&header[8..12]) != 1 {
            return Err(malformed("version is not 1"));
        }
        let num_items = le_u32(&header[12..16]) as usize;
        if size > offset_from_end {
            return Err(malformed("metadata size runs past the end of the image"));
        }
        let needed = num_items.checked_mul(METADATA_ITEM_LEN).and_then(|n| n.checked_add(METADATA_HEADER_LEN));
        if needed.is_none_or(|n| n > size) {
            return Err(malformed("metadata size too small for its number of sections"));
        }
        let items = &self.data[start + METADATA_HEADER_LEN..start + size];
        items
            .chunks_exact(METADATA_ITEM_LEN)
            .take(num_items)
            .enumerate()
            .map(|(index, item)| {
                let section_type = le_u32(&item[8..12]);
                let kind =
                    SectionKind::from_u32(section_type).ok_or(Error::UnknownSectionType { index, section_type })?;
                Ok(Section { gpa: le_u32(&item[0..4]), size: le_u32(&item[4..8]), kind })
            })
            .collect()
    }
}

/// Reads the GUID table backwards from its footer entry: each entry's size and GUID come
/// last, its data before them.
fn parse_footer_table(data: &[u8]) -> Result<Vec<(Guid, &[u8])>, Error> {
    let malformed = |reason| Error::FooterTableMalformed { reason };
    let footer_start = data.len() - FOOTER_GAP - ENTRY_HEADER_LEN;
    let footer = &data[footer_start..footer_start + ENTRY_HEADER_LEN];
    if footer[2..18] != FOOTER_TABLE_GUID.0 {
        return Err(Error::NoFooterTable);
    }
    let table_len = (le_u16(footer) as usize)
        .checked_sub(ENTRY_HEADER_LEN)
        .ok_or(malformed("footer entry size is smaller than its header"))?;
    let table_start =
        footer_start.checked_sub(table_len).ok_or(malformed("table size runs past the start of the image"))?;
    let mut rest = &data[table_start..footer_start];
    let mut entries: Vec<(Guid, &[u8])> = Vec::new();
    while rest.len() >= ENTRY_HEADER_LEN {
        let header = &rest[rest.len() - ENTRY_HEADER_LEN..];
        let size = le_u16(header) as usize;
        if size < ENTRY_HEADER_LEN {
            return Err(malformed("an entry's size is smaller than its header"));
        }
        if size > rest.len() {
            return Err(malformed("an entry's size runs past the start of the table"));
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&header[2..18]);
        let guid = Guid(guid);
        if entries.iter().any(|(g, _)| *g == guid) {
            return Err(Error::DuplicateTableEntry { guid });
        }
        entries.push((guid, &rest[rest.len() - size..rest.len() - ENTRY_HEADER_LEN]));
        rest = &rest[..rest.len() - size];
    }
    Ok(entries)
}
